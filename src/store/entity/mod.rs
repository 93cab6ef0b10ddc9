//! SeaORM entities, one per table.

pub mod audit;
pub mod cluster;
pub mod node;
pub mod notification;
pub mod outbox;
pub mod processed_request;
pub mod release;
pub mod task;
