//! Database schema of astute-bridge as SeaORM migrations; every migration runs unchanged on
//! SQLite and PostgreSQL and is applied inside a transaction on both.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_releases;
mod m20261125_000002_create_clusters;
mod m20261125_000003_create_nodes;
mod m20261125_000004_create_tasks;
mod m20261125_000005_create_notifications;
mod m20261125_000006_create_outbox;
mod m20261125_000007_create_processed_requests;
mod m20261205_000008_outbox_parking;
mod m20261205_000009_create_audit;
mod m20261206_000010_indexes_for_scale;
mod m20261206_000011_lz4_casts;
mod m20261206_000012_outbox_deploy_plans;

/// All migrations of astute-bridge, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_releases::Migration),
            Box::new(m20261125_000002_create_clusters::Migration),
            Box::new(m20261125_000003_create_nodes::Migration),
            Box::new(m20261125_000004_create_tasks::Migration),
            Box::new(m20261125_000005_create_notifications::Migration),
            Box::new(m20261125_000006_create_outbox::Migration),
            Box::new(m20261125_000007_create_processed_requests::Migration),
            Box::new(m20261205_000008_outbox_parking::Migration),
            Box::new(m20261205_000009_create_audit::Migration),
            Box::new(m20261206_000010_indexes_for_scale::Migration),
            Box::new(m20261206_000011_lz4_casts::Migration),
            Box::new(m20261206_000012_outbox_deploy_plans::Migration),
        ]
    }
}
