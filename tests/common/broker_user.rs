//! A RabbitMQ user of the test's own, made with `rabbitmqctl` and deleted when dropped, that
//! publishes requests on a connection of its own (so the broker checks their `user_id`).

use std::process::Command;

use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use serde_json::{json, Value};

use super::PATIENCE;

fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| format!("rabbitmqctl could not run ({e}); it comes with rabbitmq-server"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rabbitmqctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A broker user with full permissions on vhost `/`, deleted on drop.
pub struct BrokerUser {
    pub name: String,
    password: String,
}

impl BrokerUser {
    pub fn create(label: &str) -> BrokerUser {
        let name = format!(
            "{label}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let password = uuid::Uuid::new_v4().simple().to_string();
        rabbitmqctl(&["add_user", &name, &password]).unwrap_or_else(|e| panic!("{e}"));
        let user = BrokerUser { name, password };
        rabbitmqctl(&["set_permissions", "-p", "/", &user.name, ".*", ".*", ".*"])
            .unwrap_or_else(|e| panic!("{e}"));
        user
    }

    /// Connects as this user, with a private reply queue.
    pub async fn connect(&self, request_exchange: &str) -> Sender {
        let url = format!("amqp://{}:{}@127.0.0.1:5672/%2f", self.name, self.password);
        let connection = Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("connect as {}: {e}", self.name));
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("reply queue");
        let reply_queue = queue.name().to_string();
        let answers = channel
            .basic_consume(
                reply_queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume answers");
        Sender {
            _connection: connection,
            channel,
            reply_queue,
            answers,
            exchange: request_exchange.to_string(),
        }
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        if let Err(e) = rabbitmqctl(&["delete_user", &self.name]) {
            eprintln!("{e}");
        }
    }
}

/// One user's connection, publishing requests and reading their answers.
pub struct Sender {
    _connection: Connection,
    pub channel: Channel,
    reply_queue: String,
    answers: Consumer,
    exchange: String,
}

impl Sender {
    /// Publishes a request with `user_id` (none if `None`) and waits for the broker's confirm;
    /// the error is the broker's when it refuses it.
    pub async fn publish(
        &self,
        method: &str,
        args: Value,
        user_id: Option<&str>,
        message_id: &str,
        correlation_id: &str,
    ) -> Result<(), lapin::Error> {
        let mut properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(message_id.into())
            .with_correlation_id(correlation_id.into())
            .with_reply_to(self.reply_queue.as_str().into());
        if let Some(user) = user_id {
            properties = properties.with_user_id(user.into());
        }
        let body = json!({"method": method, "args": args}).to_string();
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                format!("request.{method}").as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                properties,
            )
            .await?
            .await?;
        assert!(confirm.is_ack(), "the broker took the request");
        Ok(())
    }

    /// Sends a request with `user_id` and returns its answer.
    pub async fn request(
        &mut self,
        method: &str,
        args: Value,
        user_id: Option<&str>,
        message_id: &str,
    ) -> Value {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        self.publish(method, args, user_id, message_id, &correlation_id)
            .await
            .expect("the broker took the request");
        self.next_answer(&correlation_id).await
    }

    /// The next answer, which must carry `correlation_id`.
    pub async fn next_answer(&mut self, correlation_id: &str) -> Value {
        let delivery = tokio::time::timeout(PATIENCE, self.answers.next())
            .await
            .unwrap_or_else(|_| panic!("no answer within {PATIENCE:?}"))
            .expect("consumer open")
            .expect("delivery");
        assert_eq!(
            delivery
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str()),
            Some(correlation_id),
            "the answer to this request, and no other"
        );
        serde_json::from_slice(&delivery.data).expect("an answer is JSON")
    }
}
