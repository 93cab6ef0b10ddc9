//! Indexes that keep the hot paths flat as the tables grow: every list is read newest first (or
//! by id) through an index on its filter and its order, the watchdog reads only the silent
//! running tasks, retention reads only the tasks that still keep a cast, and the checks that a
//! release is in use read the clusters naming it. Every foreign key's referencing column is
//! indexed too, so that deleting a release (or a node or task) checks its references through an
//! index rather than by reading the whole referencing table.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Id,
    ClusterId,
    NodeId,
    TaskId,
    Status,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    ClusterId,
    Status,
    UpdatedAt,
    Cache,
    FromReleaseId,
    ToReleaseId,
}

#[derive(DeriveIden)]
enum Clusters {
    Table,
    ReleaseId,
    PendingReleaseId,
}

#[derive(DeriveIden)]
enum Audit {
    Table,
    Id,
    ClusterId,
}

/// Single-column indexes the composite ones below replace (their first column is the same).
const REPLACED: [(&str, &str); 3] = [
    ("notifications_cluster_id_idx", "notifications"),
    ("tasks_cluster_id_idx", "tasks"),
    ("audit_cluster_id_idx", "audit"),
];

/// The indexes `added` creates, for `down`.
const ADDED: [(&str, &str); 13] = [
    ("notifications_cluster_id_id_idx", "notifications"),
    ("notifications_status_id_idx", "notifications"),
    ("notifications_cluster_id_status_id_idx", "notifications"),
    ("tasks_cluster_id_id_idx", "tasks"),
    ("tasks_status_updated_at_idx", "tasks"),
    ("tasks_cached_updated_at_idx", "tasks"),
    ("clusters_release_id_idx", "clusters"),
    ("clusters_pending_release_id_idx", "clusters"),
    ("audit_cluster_id_id_idx", "audit"),
    ("tasks_from_release_id_idx", "tasks"),
    ("tasks_to_release_id_idx", "tasks"),
    ("notifications_node_id_idx", "notifications"),
    ("notifications_task_id_idx", "notifications"),
];

fn index(name: &str, table: impl IntoIden, columns: Vec<DynIden>) -> IndexCreateStatement {
    let mut statement = Index::create();
    statement.name(name).table(table);
    for column in columns {
        statement.col(column);
    }
    statement.to_owned()
}

fn added() -> Vec<IndexCreateStatement> {
    vec![
        // list_notifications: of a cluster, of a status, of both; newest first, by cursor.
        index(
            "notifications_cluster_id_id_idx",
            Notifications::Table,
            vec![
                Notifications::ClusterId.into_iden(),
                Notifications::Id.into_iden(),
            ],
        ),
        index(
            "notifications_status_id_idx",
            Notifications::Table,
            vec![
                Notifications::Status.into_iden(),
                Notifications::Id.into_iden(),
            ],
        ),
        index(
            "notifications_cluster_id_status_id_idx",
            Notifications::Table,
            vec![
                Notifications::ClusterId.into_iden(),
                Notifications::Status.into_iden(),
                Notifications::Id.into_iden(),
            ],
        ),
        // A cluster's latest task.
        index(
            "tasks_cluster_id_id_idx",
            Tasks::Table,
            vec![Tasks::ClusterId.into_iden(), Tasks::Id.into_iden()],
        ),
        // The watchdog: running tasks silent since before a cutoff.
        index(
            "tasks_status_updated_at_idx",
            Tasks::Table,
            vec![Tasks::Status.into_iden(), Tasks::UpdatedAt.into_iden()],
        ),
        // Retention: ended tasks that still keep their cast, oldest first.
        Index::create()
            .name("tasks_cached_updated_at_idx")
            .table(Tasks::Table)
            .col(Tasks::UpdatedAt)
            .and_where(Expr::col(Tasks::Cache).is_not_null())
            .to_owned(),
        // delete_release: is a release some cluster's current or pending one?
        index(
            "clusters_release_id_idx",
            Clusters::Table,
            vec![Clusters::ReleaseId.into_iden()],
        ),
        index(
            "clusters_pending_release_id_idx",
            Clusters::Table,
            vec![Clusters::PendingReleaseId.into_iden()],
        ),
        // The audit trail of a cluster, newest first, by cursor.
        index(
            "audit_cluster_id_id_idx",
            Audit::Table,
            vec![Audit::ClusterId.into_iden(), Audit::Id.into_iden()],
        ),
        // The referencing side of foreign keys.
        index(
            "tasks_from_release_id_idx",
            Tasks::Table,
            vec![Tasks::FromReleaseId.into_iden()],
        ),
        index(
            "tasks_to_release_id_idx",
            Tasks::Table,
            vec![Tasks::ToReleaseId.into_iden()],
        ),
        index(
            "notifications_node_id_idx",
            Notifications::Table,
            vec![Notifications::NodeId.into_iden()],
        ),
        index(
            "notifications_task_id_idx",
            Notifications::Table,
            vec![Notifications::TaskId.into_iden()],
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for statement in added() {
            manager.create_index(statement).await?;
        }
        for (name, table) in REPLACED {
            manager
                .drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in REPLACED {
            let column = Alias::new("cluster_id");
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Alias::new(table))
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        for (name, table) in ADDED {
            manager
                .drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
