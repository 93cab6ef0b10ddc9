//! The table of request methods (contract section 4): a method name picks the operation, whose
//! typed args are parsed from the request's `args`.

use sea_orm::ConnectionTrait;
use serde_json::{Map, Value};

use serde::Deserialize;

use super::{
    answer, clusters, notifications, parse_args, patching, releases, tasks, Answer, Context,
    ServiceResult,
};
use crate::core::refusal::{ErrorCode, Refusal};

/// Every method a request may name.
pub const METHODS: &[&str] = &[
    "create_release",
    "delete_release",
    "list_releases",
    "create_cluster",
    "add_nodes",
    "get_cluster",
    "update_cluster",
    "check_update",
    "rollback_cluster",
    "add_notification",
    "list_notifications",
    "list_clusters",
    "get_task",
    "mark_notification",
];

/// Runs `method` with `args` inside the caller's transaction; its answer comes serialized.
pub async fn dispatch<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    method: &str,
    args: Map<String, Value>,
) -> ServiceResult<Answer> {
    if method == "check_update" {
        // The verdict carries the cast as it is; it is serialized once, never parsed.
        let verdict = patching::check_update(db, ctx, parse_args(args)?).await?;
        return answer(&verdict);
    }
    let value = match method {
        "create_release" => releases::create_release(db, ctx, parse_args(args)?).await,
        "delete_release" => releases::delete_release(db, parse_args(args)?).await,
        "list_releases" => {
            no_args(args)?;
            releases::list_releases(db).await
        }
        "create_cluster" => {
            clusters::create_cluster(db, parse_args(args)?, &ctx.fuel_version).await
        }
        "add_nodes" => clusters::add_nodes(db, parse_args(args)?).await,
        "get_cluster" => clusters::get_cluster(db, parse_args(args)?).await,
        "update_cluster" => patching::update_cluster(db, ctx, parse_args(args)?).await,
        "rollback_cluster" => patching::rollback_cluster(db, ctx, parse_args(args)?).await,
        "add_notification" => notifications::add_notification(db, ctx, parse_args(args)?).await,
        "list_notifications" => notifications::list_notifications(db, parse_args(args)?).await,
        "list_clusters" => clusters::list_clusters(db, parse_args(args)?).await,
        "get_task" => {
            let TaskRef { task_uuid } = parse_args(args)?;
            tasks::get_task(db, &task_uuid).await
        }
        "mark_notification" => {
            let NotificationRef {
                notification_id,
                status,
            } = parse_args(args)?;
            notifications::mark_notification(
                db,
                notification_id,
                notifications::NotificationMark { status },
            )
            .await
        }
        other => Err(Refusal::new(
            ErrorCode::UnknownMethod,
            format!(
                "unknown method '{other}'; known methods: {}",
                METHODS.join(", ")
            ),
        )
        .into()),
    }?;
    answer(&value)
}

/// `get_task` args.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskRef {
    task_uuid: String,
}

/// `mark_notification` args.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationRef {
    notification_id: i32,
    status: crate::core::enums::NotificationStatus,
}

fn no_args(args: Map<String, Value>) -> Result<(), Refusal> {
    match args.keys().next() {
        None => Ok(()),
        Some(key) => Err(Refusal::invalid_request(format!(
            "invalid args: unknown field `{key}`"
        ))),
    }
}
