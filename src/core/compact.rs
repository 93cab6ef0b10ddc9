//! Compact JSON of a known size: the size is counted first, without keeping anything, then the
//! text is written once into a buffer of exactly that size (no regrowth, no spare capacity).

use serde::Serialize;

/// Counts the bytes written to it and drops them.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many bytes the compact JSON of `value` takes.
pub fn size_of<T: Serialize + ?Sized>(value: &T) -> Result<usize, serde_json::Error> {
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, value)?;
    Ok(counter.0)
}

/// The compact JSON of `value`, written into a buffer of its exact `size` (from [`size_of`]).
pub fn write_sized<T: Serialize + ?Sized>(
    value: &T,
    size: usize,
) -> Result<String, serde_json::Error> {
    let mut bytes = Vec::with_capacity(size);
    serde_json::to_writer(&mut bytes, value)?;
    // serde_json writes valid UTF-8 only; this check does not copy.
    String::from_utf8(bytes).map_err(serde::ser::Error::custom)
}

/// The compact JSON of `value`, counted then written once.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    write_sized(value, size_of(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_text_as_serde_json_and_exact_capacity() {
        let value = json!({"b": [1, 2.5, null, "é\"\n"], "a": {"x": true}});
        let text = to_string(&value).unwrap();
        assert_eq!(text, serde_json::to_string(&value).unwrap());
        assert_eq!(size_of(&value).unwrap(), text.len());
        assert_eq!(text.capacity(), text.len());
    }
}
