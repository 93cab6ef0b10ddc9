//! The pure core: cluster statuses and their transitions, the release compatibility rule, the
//! deploy-message serializer, the release sources a cast carries and the rules for Astute's replies. Nothing here does I/O; every
//! function takes plain values and returns the changes to apply, so it can be tested exhaustively.

pub mod access;
pub mod audit;
pub mod compact;
pub mod compatibility;
pub mod deploy_message;
pub mod enums;
pub mod refusal;
pub mod release_sources;
pub mod reply;
pub mod source_allowlist;
pub mod storable;
pub mod transitions;
