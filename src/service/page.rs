//! Pages of a list: at most a limit of rows after a cursor (the last id of the previous page),
//! read through an index on the list's filter and order, so that a page costs the same whatever
//! the table holds.

use crate::core::refusal::Refusal;

/// Most rows one page holds.
pub const MAX_PAGE: u64 = 1000;

/// The page size asked for, or `default`; refused outside 1..=`MAX_PAGE`.
pub fn page_limit(requested: Option<u64>, default: u64) -> Result<u64, Refusal> {
    match requested.unwrap_or(default) {
        limit @ 1..=MAX_PAGE => Ok(limit),
        other => Err(Refusal::invalid_request(format!(
            "limit must be between 1 and {MAX_PAGE}, not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_taken_or_defaulted_within_bounds() {
        assert_eq!(page_limit(None, 100).ok(), Some(100));
        assert_eq!(page_limit(Some(1), 100).ok(), Some(1));
        assert_eq!(page_limit(Some(MAX_PAGE), 100).ok(), Some(MAX_PAGE));
        for refused in [0, MAX_PAGE + 1, u64::MAX] {
            let refusal = page_limit(Some(refused), 100).expect_err("out of bounds");
            assert!(
                refusal.message.contains(&refused.to_string()),
                "{refusal:?}"
            );
        }
    }
}
