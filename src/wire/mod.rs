//! Wire formats in one place: Astute's replies, requests and their answers, and the
//! notification envelope operators' listeners parse.

pub mod astute_reply;
pub mod notification_envelope;
pub mod request;
