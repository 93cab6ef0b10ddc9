//! The database: SeaORM entities, connection set-up and transactions.

pub mod entity;
