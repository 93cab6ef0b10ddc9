//! SeaORM entities, one per table.
