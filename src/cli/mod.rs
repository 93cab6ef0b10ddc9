//! The command line's operator tools: the `fuel`-style client, `watch`, `simulate-astute` and
//! `demo`, with exit codes scripts can rely on.

pub mod audit;
pub mod commands;
pub mod demo;
pub mod outbox;
pub mod table;
pub mod watch;

use std::process::ExitCode;

use astute_bridge::client::ClientError;

/// How a command ended, when it ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Exit 0.
    Success,
    /// Exit 1: the bridge refused, or the followed task failed.
    Refused,
}

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user's input is wrong: exit 2.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Failed(String),
}

/// The exit codes: 0 done, 1 refused (or the task failed), 2 usage, 3 no answer.
pub fn exit_code(outcome: Result<Done, CliError>) -> ExitCode {
    match outcome {
        Ok(Done::Success) => ExitCode::SUCCESS,
        Ok(Done::Refused) => ExitCode::from(1),
        Err(CliError::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(CliError::Client(ClientError::Refused { code, message })) => {
            eprintln!("refused ({code}): {message}");
            ExitCode::from(1)
        }
        Err(CliError::Client(
            err @ (ClientError::NoAnswer(_) | ClientError::Broker(_) | ClientError::NoBridge(_)),
        )) => {
            eprintln!("error: {err}");
            eprintln!("hint: start RabbitMQ with `rabbitmq-server -detached` and the bridge with `scripts/run`; check [amqp] url");
            ExitCode::from(3)
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(1)
        }
    }
}
