//! Free text from Astute (a task's `error`, a node's `error_msg`: often a Puppet log line) made
//! storable before it reaches the database, so the failure it reports is recorded instead of
//! refused.
//!
//! PostgreSQL's TEXT in a UTF-8 database refuses exactly one thing a Rust string can hold: the
//! NUL character ("invalid byte sequence for encoding UTF8: 0x00"); invalid UTF-8 and lone
//! surrogates cannot occur in a `String`. JSONB (the outbox) refuses `\u0000` as well. The rule
//! goes a little further than the database needs, for the people who read the text: every
//! control character but tab, newline and carriage return is written out as a visible `\u00XX`
//! escape (nothing is silently lost), and a text longer than a bound is cut on a character
//! boundary with a marker saying how much was cut.

use std::borrow::Cow;
use std::fmt::Write;

/// The longest text kept from one field of a reply, in bytes (a whole Puppet run pasted into
/// `error` must not become a megabyte in every notification).
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// `text` made storable: control characters escaped, then cut to `MAX_TEXT_BYTES`.
pub fn storable(text: &str) -> Cow<'_, str> {
    storable_within(text, MAX_TEXT_BYTES)
}

/// `text` made storable, at most `max_bytes` long plus the truncation marker.
pub fn storable_within(text: &str, max_bytes: usize) -> Cow<'_, str> {
    let escaped = escape_controls(text);
    if escaped.len() <= max_bytes {
        return escaped;
    }
    let cut = floor_char_boundary(&escaped, max_bytes);
    let mut kept = escaped[..cut].to_string();
    let _ = write!(kept, "… [{} more bytes cut]", escaped.len() - cut);
    Cow::Owned(kept)
}

/// Whether a character is written out as an escape: every Unicode control character (C0, DEL,
/// C1) except the three that shape a log's layout.
fn is_escaped(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_escaped(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The largest index `<= at` that lies on a character boundary of `text`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut cut = at.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "Puppet failed on node-1:\n\terr: exit 1\r\n";
        assert!(matches!(storable(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn nul_is_written_out_visibly() {
        assert_eq!(storable("a\u{0}b"), "a\\u0000b");
        assert!(!storable("\u{0}\u{0}").contains('\u{0}'));
    }

    #[test]
    fn every_other_control_character_is_escaped_but_layout_is_kept() {
        assert_eq!(
            storable("\u{1b}[31mred\u{1b}[0m"),
            "\\u001b[31mred\\u001b[0m"
        );
        assert_eq!(storable("del\u{7f}"), "del\\u007f");
        assert_eq!(storable("c1\u{85}"), "c1\\u0085");
        assert_eq!(storable("bell\u{7}"), "bell\\u0007");
        assert_eq!(storable("tab\tnl\ncr\r"), "tab\tnl\ncr\r");
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            let text = c.to_string();
            let out = storable_within(&text, 64);
            assert!(
                out.chars().all(|o| !is_escaped(o)),
                "{c:?} came out as {out:?}"
            );
        }
    }

    #[test]
    fn other_unicode_is_kept() {
        let text = "Ошибка: 失败 — ✓ \u{feff} \u{fffd}";
        assert_eq!(storable(text), text);
    }

    #[test]
    fn long_text_is_cut_with_a_marker() {
        let text = "x".repeat(100);
        let out = storable_within(&text, 10);
        assert_eq!(out, "xxxxxxxxxx… [90 more bytes cut]");
        assert_eq!(
            storable_within(&text, 100),
            text,
            "exactly the bound is kept"
        );
    }

    #[test]
    fn the_cut_falls_on_a_character_boundary() {
        // "é" is two bytes: a cut at byte 3 would split the second one.
        let out = storable_within("éééé", 3);
        assert_eq!(out, "é… [6 more bytes cut]");
        let out = storable_within("🦀🦀", 5);
        assert_eq!(out, "🦀… [4 more bytes cut]");
        let out = storable_within("🦀", 2);
        assert_eq!(out, "… [4 more bytes cut]");
    }

    #[test]
    fn escapes_count_towards_the_bound() {
        let out = storable_within("\u{0}\u{0}\u{0}", 8);
        assert_eq!(out, "\\u0000\\u… [10 more bytes cut]");
        assert!(!out.contains('\u{0}'));
    }

    #[test]
    fn the_default_bound_holds() {
        let text = "y".repeat(MAX_TEXT_BYTES * 3);
        let out = storable(&text);
        assert!(out.len() < MAX_TEXT_BYTES + 40);
        assert!(out.ends_with(&format!("[{} more bytes cut]", MAX_TEXT_BYTES * 2)));
    }
}
