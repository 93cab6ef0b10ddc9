//! SQLite serves one bridge: a second bridge on the same file is refused with a clear error,
//! and the file is free again once the first one stops.

mod common;

use common::{fresh_prefix, isolated_settings};

use astute_bridge::app::{AppError, Application};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_second_bridge_on_one_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = isolated_settings(
        &fresh_prefix('s'),
        format!("sqlite://{}?mode=rwc", dir.path().join("one.db").display()),
    );

    let first = Application::build(settings.clone()).await.unwrap_or_else(|e| {
        panic!("the first bridge did not start ({e}); is RabbitMQ running? rabbitmq-server -detached")
    });
    let second = Application::build(settings.clone()).await;
    match second {
        Err(err @ AppError::SecondWriter(_)) => {
            assert!(!err.is_retryable());
            assert!(err.to_string().contains("one bridge at a time"), "{err}");
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a second bridge opened the same SQLite file"),
    }

    let stop = CancellationToken::new();
    stop.cancel();
    first
        .run_until_stopped(stop)
        .await
        .expect("the first bridge stops cleanly");
    let again = Application::build(settings.clone())
        .await
        .expect("the file is free once the first stopped");
    drop(again);

    let (conn, channel) = {
        let conn =
            lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", Default::default())
                .await
                .expect("broker");
        let channel = conn.create_channel().await.expect("channel");
        (conn, channel)
    };
    let a = &settings.amqp;
    for q in [
        &a.naily_queue,
        &a.nailgun_queue,
        &a.dead_letter_queue,
        &a.request_queue,
    ] {
        let _ = channel
            .queue_delete(q.as_str().into(), Default::default())
            .await;
    }
    drop(conn);
}
