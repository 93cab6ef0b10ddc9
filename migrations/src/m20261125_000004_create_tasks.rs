//! `tasks`: deployment/upgrade runs of a cluster, tracked from Astute's `deploy_resp` replies.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000001_create_releases::Releases;
use crate::m20261125_000002_create_clusters::Clusters;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Tasks {
    Table,
    Id,
    Uuid,
    ClusterId,
    Name,
    Status,
    Progress,
    Message,
    FromReleaseId,
    ToReleaseId,
    Cache,
    CreatedAt,
    UpdatedAt,
}

/// Name of the partial unique index allowing at most one `running` task per cluster.
const ONE_RUNNING_PER_CLUSTER: &str = "tasks_one_running_per_cluster";

/// `CREATE UNIQUE INDEX tasks_one_running_per_cluster ON tasks (cluster_id)
/// WHERE status = 'running'` (same SQL on SQLite and PostgreSQL).
fn one_running_per_cluster() -> IndexCreateStatement {
    Index::create()
        .name(ONE_RUNNING_PER_CLUSTER)
        .table(Tasks::Table)
        .col(Tasks::ClusterId)
        .unique()
        .and_where(Expr::col(Tasks::Status).eq("running"))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .col(pk_auto(Tasks::Id))
                    .col(string_len_uniq(Tasks::Uuid, 36))
                    .col(integer(Tasks::ClusterId))
                    .col(string_len(Tasks::Name, 20))
                    .col(string_len(Tasks::Status, 20))
                    .col(integer(Tasks::Progress))
                    .col(text_null(Tasks::Message))
                    .col(integer_null(Tasks::FromReleaseId))
                    .col(integer_null(Tasks::ToReleaseId))
                    .col(json_null(Tasks::Cache))
                    .col(timestamp_with_time_zone(Tasks::CreatedAt))
                    .col(timestamp_with_time_zone(Tasks::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("tasks_cluster_id_fkey")
                            .from(Tasks::Table, Tasks::ClusterId)
                            .to(Clusters::Table, Clusters::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("tasks_from_release_id_fkey")
                            .from(Tasks::Table, Tasks::FromReleaseId)
                            .to(Releases::Table, Releases::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("tasks_to_release_id_fkey")
                            .from(Tasks::Table, Tasks::ToReleaseId)
                            .to(Releases::Table, Releases::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("tasks_cluster_id_idx")
                    .table(Tasks::Table)
                    .col(Tasks::ClusterId)
                    .to_owned(),
            )
            .await?;
        manager.create_index(one_running_per_cluster()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(ONE_RUNNING_PER_CLUSTER)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Tasks::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_index_sql_is_the_same_on_both_backends() {
        let expected = r#"CREATE UNIQUE INDEX "tasks_one_running_per_cluster" ON "tasks" ("cluster_id") WHERE "status" = 'running'"#;
        assert_eq!(
            one_running_per_cluster().to_string(PostgresQueryBuilder),
            expected
        );
        assert_eq!(
            one_running_per_cluster().to_string(SqliteQueryBuilder),
            expected
        );
    }
}
