//! Operator tools for the dead-letter queue: a reply for a task the bridge did not know yet is
//! dead-lettered, listed with its reason, and applied once replayed after the task exists.

mod common;

use common::{load_fixture, release_id, Backend, Bridge, AMQP_URL};
use serde_json::json;

use astute_bridge::amqp::dead_letters;

async fn a_dead_letter_is_listed_and_replayed(backend: Backend) {
    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let to = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": to}),
        )
        .await;
    let uuid = task["uuid"].as_str().expect("uuid").to_string();
    bridge.next_cast().await;

    let early = uuid::Uuid::new_v4().to_string();
    bridge
        .reply(json!({"task_uuid": early, "status": "running", "progress": 40}))
        .await;
    let dlq = bridge.settings.amqp.dead_letter_queue.clone();
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while bridge.queue_depth(&dlq).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reply was never dead-lettered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let connection = lapin::Connection::connect(AMQP_URL, Default::default())
        .await
        .expect("broker");
    let shown = dead_letters::list(&connection, &bridge.settings.amqp, 10)
        .await
        .expect("list");
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["reason"], format!("unknown task '{early}'"));
    assert!(shown[0]["body"]
        .as_str()
        .unwrap_or_default()
        .contains(&early));
    assert_eq!(
        bridge.queue_depth(&dlq).await,
        1,
        "listing leaves the message in place"
    );

    // The task the reply was meant for now exists under that uuid.
    bridge
        .execute(&format!(
            "UPDATE tasks SET uuid = '{early}' WHERE uuid = '{uuid}'"
        ))
        .await;
    let replayed = dead_letters::replay(&connection, &bridge.settings.amqp, 10)
        .await
        .expect("replay");
    assert_eq!(replayed, 1);
    let seen = bridge
        .cluster_until(cluster, "the replayed reply applied", |c| {
            c["latest_task"]["progress"] == 40
        })
        .await;
    assert_eq!(seen["latest_task"]["uuid"], early.as_str());
    assert_eq!(
        bridge.queue_depth(&dlq).await,
        0,
        "replayed and applied, not dead-lettered again"
    );
    let _ = connection.close(200, "done".into()).await;
    bridge.stop().await;
}

/// A quorum queue with a `delivery-limit` that dead-letters into the bridge's dead-letter
/// queue (the policy of a clustered deployment, see the README): a reply redelivered past the
/// limit is not lost. `dlq list` shows the broker's reason, and `dlq replay` sends it to
/// Astute's reply exchange, where the bridge applies it.
async fn a_reply_over_the_delivery_limit_is_replayed(backend: Backend) {
    use lapin::options::{
        BasicGetOptions, BasicNackOptions, QueueDeclareOptions, QueueDeleteOptions,
    };
    use lapin::types::{AMQPValue, FieldTable};

    let mut bridge = Bridge::start(backend).await;
    let (cluster, releases) = load_fixture(&mut bridge, "env-multinode").await;
    let to = release_id(&releases, "Icehouse on Ubuntu 12.04.4", "2014.1.1-5.0.2");
    let task = bridge
        .ok(
            "update_cluster",
            json!({"cluster_id": cluster, "release_id": to}),
        )
        .await;
    let uuid = task["uuid"].as_str().expect("uuid").to_string();
    bridge.next_cast().await;

    // A quorum queue standing in for `nailgun` under the policy: one redelivery allowed.
    let dlq = bridge.settings.amqp.dead_letter_queue.clone();
    let limited = format!("{dlq}.limited");
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(1));
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(dlq.as_str().into()),
    );
    bridge
        .channel
        .queue_declare(
            limited.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .expect("a quorum queue (RabbitMQ 3.8 or later)");
    let body = json!({"method": "deploy_resp",
                      "args": {"task_uuid": uuid, "status": "running", "progress": 40}});
    let confirm = bridge
        .channel
        .basic_publish(
            "".into(),
            limited.as_str().into(),
            Default::default(),
            body.to_string().as_bytes(),
            lapin::BasicProperties::default().with_content_type("application/json".into()),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack());

    // Taken and handed back until the broker gives up on it.
    let deadline = std::time::Instant::now() + common::PATIENCE;
    let mut handed_back = 0;
    while bridge.queue_depth(&dlq).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "never dead-lettered after {handed_back} redeliveries"
        );
        if let Some(message) = bridge
            .channel
            .basic_get(limited.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .expect("basic.get")
        {
            message
                .delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await
                .expect("nack");
            handed_back += 1;
        }
    }
    assert!(handed_back >= 2, "the limit allowed one redelivery");

    let connection = lapin::Connection::connect(AMQP_URL, Default::default())
        .await
        .expect("broker");
    let shown = dead_letters::list(&connection, &bridge.settings.amqp, 10)
        .await
        .expect("list");
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(
        shown[0]["reason"],
        format!("delivery_limit in queue '{limited}' (dead-lettered by the broker)")
    );
    let replayed = dead_letters::replay(&connection, &bridge.settings.amqp, 10)
        .await
        .expect("replay");
    assert_eq!(replayed, 1);
    bridge
        .cluster_until(cluster, "the replayed reply applied", |c| {
            c["latest_task"]["progress"] == 40
        })
        .await;
    assert_eq!(
        bridge.queue_depth(&dlq).await,
        0,
        "applied, not parked again"
    );
    bridge
        .channel
        .queue_delete(limited.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete the quorum queue");
    let _ = connection.close(200, "done".into()).await;
    bridge.stop().await;
}

on_both_backends!(
    a_dead_letter_is_listed_and_replayed,
    a_reply_over_the_delivery_limit_is_replayed
);
