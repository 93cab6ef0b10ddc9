//! The envelope a notification is published in: oslo.messaging's notification shape, which
//! OpenStack's notification listeners already parse (contract section 5).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::core::enums::NotificationTopic;

/// A stored notification, as published in `payload`.
#[derive(Debug, Clone)]
pub struct NotificationPayload {
    pub id: i32,
    pub topic: NotificationTopic,
    pub message: String,
    pub cluster_id: Option<i32>,
    pub node_id: Option<i32>,
    pub task_id: Option<i32>,
    pub status: String,
    pub datetime: DateTime<Utc>,
}

/// The routing key: `notifications.info`, `notifications.warn` or `notifications.error`.
pub fn routing_key(topic: NotificationTopic) -> String {
    format!("notifications.{}", topic.priority().to_ascii_lowercase())
}

/// The full envelope; `message_id` is fresh, `timestamp` is the time of building it.
pub fn envelope(publisher_id: &str, message_id: &str, n: &NotificationPayload) -> Value {
    json!({
        "message_id": message_id,
        "publisher_id": publisher_id,
        "event_type": format!("notification.{}", n.topic),
        "priority": n.topic.priority(),
        "payload": {
            "id": n.id,
            "topic": n.topic,
            "message": n.message,
            "cluster_id": n.cluster_id,
            "node_id": n.node_id,
            "task_id": n.task_id,
            "status": n.status,
            "datetime": rfc3339(n.datetime),
        },
        "timestamp": rfc3339(Utc::now()),
    })
}

/// RFC 3339 with microseconds and a `Z`, as every timestamp this service writes.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_oslo_shape() {
        let payload = NotificationPayload {
            id: 1,
            topic: NotificationTopic::Error,
            message: "Failed to deploy node 'node-7': boom".into(),
            cluster_id: Some(1),
            node_id: Some(7),
            task_id: Some(3),
            status: "unread".into(),
            datetime: DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        let env = envelope("astute-bridge.host", "m-1", &payload);
        assert_eq!(env["event_type"], "notification.error");
        assert_eq!(env["priority"], "ERROR");
        assert_eq!(env["publisher_id"], "astute-bridge.host");
        assert_eq!(env["payload"]["node_id"], 7);
        assert_eq!(env["payload"]["datetime"], "2026-11-25T10:00:00.000000Z");
        assert!(DateTime::parse_from_rfc3339(env["timestamp"].as_str().unwrap()).is_ok());
        assert_eq!(routing_key(NotificationTopic::Error), "notifications.error");
        assert_eq!(
            routing_key(NotificationTopic::Warning),
            "notifications.warn"
        );
        assert_eq!(routing_key(NotificationTopic::Done), "notifications.info");
        assert_eq!(
            routing_key(NotificationTopic::Discover),
            "notifications.info"
        );
    }
}
