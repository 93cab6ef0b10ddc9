//! astute-bridge: Nailgun's patching flow as a standalone service.
//!
//! `core` is pure (no I/O); `store` is the SeaORM database; `service` holds one function per
//! operation, shared by the AMQP request consumer and the HTTP API; `amqp` is the broker adapter.

pub mod amqp;
pub mod app;
pub mod client;
pub mod config;
pub mod core;
pub mod health;
pub mod http;
pub mod retention;
pub mod security;
pub mod service;
pub mod simulator;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod watchdog;
pub mod wire;
