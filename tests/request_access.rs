//! `[requests] allowed_users` on SQLite and PostgreSQL, with broker users made for the test:
//! an operator may call anything, a reader only the read methods; a request without `user_id`,
//! from a user not listed, or from a reader changing something is answered `forbidden` and
//! nothing runs; a `user_id` naming another user is refused by the broker itself.

mod common;

use std::collections::BTreeMap;

use astute_bridge::core::access::Role;
use common::broker_user::BrokerUser;
use common::{Backend, Bridge};
use serde_json::{json, Value};

fn release(version: &str) -> Value {
    json!({"name": "Icehouse on Ubuntu 12.04", "version": version, "operating_system": "Ubuntu"})
}

fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or_default()
}

async fn only_listed_users_may_send_requests_and_readers_only_read(backend: Backend) {
    let operator = BrokerUser::create("ops");
    let reader = BrokerUser::create("monitor");
    let stranger = BrokerUser::create("stranger");
    let mut bridge = Bridge::start_with(backend, |s| {
        s.requests.allowed_users = BTreeMap::from([
            (operator.name.clone(), Role::Operator),
            (reader.name.clone(), Role::Reader),
        ]);
    })
    .await;
    let exchange = bridge.settings.amqp.request_exchange.clone();
    let mut ops = operator.connect(&exchange).await;
    let mut monitor = reader.connect(&exchange).await;
    let mut outsider = stranger.connect(&exchange).await;
    let id = || uuid::Uuid::new_v4().to_string();

    // The operator changes things.
    let created = ops
        .request(
            "create_release",
            release("2014.1-5.0"),
            Some(&operator.name),
            &id(),
        )
        .await;
    assert_eq!(created["ok"], true, "{created}");

    // The reader reads, and the dry run is a read.
    let listed = monitor
        .request("list_releases", json!({}), Some(&reader.name), &id())
        .await;
    assert_eq!(
        listed["result"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );

    // The reader may not change anything, and a repeat of its refused request is answered the
    // same way from the idempotency record.
    let message_id = id();
    for _ in 0..2 {
        let refused = monitor
            .request(
                "create_release",
                release("2014.1.1-5.1"),
                Some(&reader.name),
                &message_id,
            )
            .await;
        assert_eq!(code(&refused), "forbidden", "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("reader"),
            "{refused}"
        );
    }
    let recorded = bridge
        .rows_until(
            &format!(
                "SELECT COUNT(*) AS n FROM processed_requests WHERE message_id = '{message_id}'"
            ),
            "the refusal's idempotency record",
            |n| n == 1,
        )
        .await;
    assert_eq!(recorded, 1);

    // A user the broker knows but the list does not, even for a read.
    let refused = outsider
        .request("list_releases", json!({}), Some(&stranger.name), &id())
        .await;
    assert_eq!(code(&refused), "forbidden", "{refused}");

    // No user_id at all (the harness's own guest connection sets none).
    let refused = bridge.request("list_releases", json!({})).await;
    assert_eq!(code(&refused), "forbidden", "{refused}");
    let refused = bridge
        .request("create_release", release("2014.2-6.0"))
        .await;
    assert_eq!(code(&refused), "forbidden", "{refused}");

    assert_eq!(
        bridge.count("releases").await,
        1,
        "only the operator's release"
    );

    // A forged user_id: the broker checks it against the connection's user and closes the
    // channel; the request never reaches the bridge.
    let forged = monitor
        .publish(
            "create_release",
            release("2014.2-6.0"),
            Some(&operator.name),
            &id(),
            &id(),
        )
        .await
        .expect_err("the broker refuses a user_id that is not the connection's user");
    let text = forged.to_string();
    eprintln!("the broker's answer to a forged user_id: {text}");
    assert!(
        text.contains("PRECONDITION_FAILED") && text.contains("user_id property set to"),
        "{text}"
    );
    // The operator's next request is answered, and it is the only answer: the forged one was
    // never executed (requests are consumed in order).
    let after = ops
        .request("list_releases", json!({}), Some(&operator.name), &id())
        .await;
    assert_eq!(after["result"].as_array().map(Vec::len), Some(1), "{after}");
    assert_eq!(bridge.count("releases").await, 1, "nothing was created");
    bridge.stop().await;
}

on_both_backends!(only_listed_users_may_send_requests_and_readers_only_read);
