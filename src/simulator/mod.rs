//! A stand-in for Astute on the real broker, for demos and rehearsals: it declares what Astute
//! declares, takes `deploy` casts from `naily` and answers `deploy_resp` as Astute's reporter
//! does. It is a simulator: it runs no Puppet and touches no node.

pub mod runner;
pub mod script;

pub use runner::Simulator;
pub use script::{Cast, Scenario};
