//! A minimal CBOR (RFC 8949) reader and writer for the COSE code.
//!
//! Why not decode COSE into `ciborium::Value`s? Signatures cover bytes, not
//! values: the protected header must be hashed exactly as it arrived, and a
//! countersignature must leave the sensor's protected header, payload and
//! signature byte-for-byte untouched. So the reader works on spans of the
//! input: it checks that an item is well formed and says where it ends,
//! without allocating anything from a length field (a claimed length is
//! checked against the bytes that are actually there before it is used).

use std::ops::Range;

/// How deep arrays, maps and tags may nest. COSE needs about six levels
/// (Sign1 → unprotected map → countersignature array → its unprotected map
/// → ...); the cap keeps recursion on hostile input shallow.
const MAX_DEPTH: usize = 32;

pub(crate) const UINT: u8 = 0;
pub(crate) const NINT: u8 = 1;
pub(crate) const BSTR: u8 = 2;
pub(crate) const TSTR: u8 = 3;
pub(crate) const ARRAY: u8 = 4;
pub(crate) const MAP: u8 = 5;
pub(crate) const TAG: u8 = 6;
pub(crate) const SIMPLE: u8 = 7;

/// Why bytes are not one well-formed CBOR item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// The input ends inside an item.
    Truncated,
    /// Additional information 28–30, or a break/indefinite length where none may be.
    Reserved(usize),
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Bytes after the item.
    Trailing(usize),
    /// A chunk of an indefinite-length string that is not a definite string of the same type.
    BadChunk(usize),
    /// A two-byte simple value below 32 (RFC 8949 §3.3).
    BadSimple(usize),
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Truncated => write!(f, "truncated"),
            Malformed::Reserved(at) => write!(f, "reserved or misplaced encoding at byte {at}"),
            Malformed::TooDeep => write!(f, "nested deeper than {MAX_DEPTH} levels"),
            Malformed::Trailing(at) => write!(f, "unexpected bytes after the item at byte {at}"),
            Malformed::BadChunk(at) => write!(f, "bad indefinite-length string chunk at byte {at}"),
            Malformed::BadSimple(at) => write!(f, "invalid simple value at byte {at}"),
        }
    }
}

/// The initial byte and argument of an item (RFC 8949 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// Major type 0–7.
    pub major: u8,
    /// The additional information (low five bits of the initial byte).
    pub info: u8,
    /// The argument; `None` for an indefinite length (additional information 31).
    pub arg: Option<u64>,
    /// Where the item's content starts (just after the head).
    pub body: usize,
}

/// Reads the head of the item at `pos`.
pub(crate) fn head(bytes: &[u8], pos: usize) -> Result<Head, Malformed> {
    let first = *bytes.get(pos).ok_or(Malformed::Truncated)?;
    let (major, info) = (first >> 5, first & 0x1f);
    let (arg, body) = match info {
        0..=23 => (Some(u64::from(info)), pos + 1),
        24..=27 => {
            let n = 1usize << (info - 24);
            let end = pos.checked_add(1 + n).ok_or(Malformed::Truncated)?;
            let raw = bytes.get(pos + 1..end).ok_or(Malformed::Truncated)?;
            (Some(raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))), end)
        }
        28..=30 => return Err(Malformed::Reserved(pos)),
        // 31: indefinite length, only for strings, arrays and maps; for major
        // type 7 it is the "break" stop code, which callers handle.
        _ => match major {
            BSTR | TSTR | ARRAY | MAP | SIMPLE => (None, pos + 1),
            _ => return Err(Malformed::Reserved(pos)),
        },
    };
    Ok(Head { major, info, arg, body })
}

/// True if the byte at `pos` is the "break" stop code (0xff).
fn is_break(bytes: &[u8], pos: usize) -> bool {
    bytes.get(pos) == Some(&0xff)
}

/// Where the item starting at `pos` ends (exclusive), checking it is well formed.
pub(crate) fn skip(bytes: &[u8], pos: usize) -> Result<usize, Malformed> {
    skip_at(bytes, pos, 0)
}

fn skip_at(bytes: &[u8], pos: usize, depth: usize) -> Result<usize, Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed::TooDeep);
    }
    let h = head(bytes, pos)?;
    match (h.major, h.arg) {
        (UINT | NINT, _) => Ok(h.body),
        (BSTR | TSTR, Some(len)) => definite_end(bytes, h.body, len),
        (BSTR | TSTR, None) => {
            let mut at = h.body;
            while !is_break(bytes, at) {
                let chunk = head(bytes, at)?;
                let Some(len) = chunk.arg.filter(|_| chunk.major == h.major) else {
                    return Err(Malformed::BadChunk(at));
                };
                at = definite_end(bytes, chunk.body, len)?;
            }
            Ok(at + 1)
        }
        (ARRAY | MAP, count) => {
            // A map item is a key and a value; each item is at least one
            // byte, so a huge count runs out of input long before it runs up
            // any cost (nothing is allocated here).
            let per_entry = if h.major == MAP { 2 } else { 1 };
            let mut at = h.body;
            match count {
                Some(n) => {
                    for _ in 0..n {
                        for _ in 0..per_entry {
                            at = skip_at(bytes, at, depth + 1)?;
                        }
                    }
                }
                None => {
                    while !is_break(bytes, at) {
                        for _ in 0..per_entry {
                            if is_break(bytes, at) {
                                return Err(Malformed::Reserved(at));
                            }
                            at = skip_at(bytes, at, depth + 1)?;
                        }
                    }
                    at += 1;
                }
            }
            Ok(at)
        }
        (TAG, _) => skip_at(bytes, h.body, depth + 1),
        (_, None) => Err(Malformed::Reserved(pos)),
        (_, Some(value)) => {
            // Additional information 24 carries a simple value in one byte;
            // values below 32 must use the one-byte form (RFC 8949 §3.3).
            if h.info == 24 && value < 32 {
                return Err(Malformed::BadSimple(pos));
            }
            Ok(h.body)
        }
    }
}

/// The end of `len` bytes of string content starting at `body`, if they are there.
fn definite_end(bytes: &[u8], body: usize, len: u64) -> Result<usize, Malformed> {
    let end = usize::try_from(len).ok().and_then(|len| body.checked_add(len)).ok_or(Malformed::Truncated)?;
    if end > bytes.len() {
        return Err(Malformed::Truncated);
    }
    Ok(end)
}

/// Checks that `bytes` is exactly one well-formed item.
pub(crate) fn check_single(bytes: &[u8]) -> Result<(), Malformed> {
    let end = skip(bytes, 0)?;
    if end != bytes.len() {
        return Err(Malformed::Trailing(end));
    }
    Ok(())
}

/// The spans of the elements of the (well-formed) array at `pos`.
pub(crate) fn array_items(bytes: &[u8], pos: usize) -> Result<Vec<Range<usize>>, Malformed> {
    let h = head(bytes, pos)?;
    debug_assert_eq!(h.major, ARRAY);
    let mut items = Vec::new();
    let mut at = h.body;
    loop {
        let done = match h.arg {
            Some(n) => items.len() as u64 == n,
            None => is_break(bytes, at),
        };
        if done {
            return Ok(items);
        }
        let end = skip(bytes, at)?;
        items.push(at..end);
        at = end;
    }
}

/// The key and value spans of one map entry.
pub(crate) type Entry = (Range<usize>, Range<usize>);

/// The (key, value) spans of the entries of the (well-formed) map at `pos`.
pub(crate) fn map_entries(bytes: &[u8], pos: usize) -> Result<Vec<Entry>, Malformed> {
    let h = head(bytes, pos)?;
    debug_assert_eq!(h.major, MAP);
    let mut entries = Vec::new();
    let mut at = h.body;
    loop {
        let done = match h.arg {
            Some(n) => entries.len() as u64 == n,
            None => is_break(bytes, at),
        };
        if done {
            return Ok(entries);
        }
        let key_end = skip(bytes, at)?;
        let value_end = skip(bytes, key_end)?;
        entries.push((at..key_end, key_end..value_end));
        at = value_end;
    }
}

/// The content of the (well-formed) byte or text string at `pos`, chunks joined.
pub(crate) fn string_content(bytes: &[u8], pos: usize) -> Result<Vec<u8>, Malformed> {
    let h = head(bytes, pos)?;
    match h.arg {
        Some(len) => Ok(bytes[h.body..definite_end(bytes, h.body, len)?].to_vec()),
        None => {
            let mut out = Vec::new();
            let mut at = h.body;
            while !is_break(bytes, at) {
                let chunk = head(bytes, at)?;
                let end = definite_end(bytes, chunk.body, chunk.arg.ok_or(Malformed::BadChunk(at))?)?;
                out.extend_from_slice(&bytes[chunk.body..end]);
                at = end;
            }
            Ok(out)
        }
    }
}

/// The value of an integer head (major type 0 or 1), in i128 so that every CBOR integer fits.
pub(crate) fn integer(h: Head) -> Option<i128> {
    match (h.major, h.arg) {
        (UINT, Some(n)) => Some(i128::from(n)),
        (NINT, Some(n)) => Some(-1 - i128::from(n)),
        _ => None,
    }
}

/// A short name of the CBOR type of an item, for error messages.
pub(crate) fn type_name(h: Head) -> &'static str {
    match h.major {
        UINT => "an unsigned integer",
        NINT => "a negative integer",
        BSTR => "a byte string",
        TSTR => "a text string",
        ARRAY => "an array",
        MAP => "a map",
        TAG => "a tagged item",
        _ => match h.info {
            20 | 21 => "a boolean",
            22 => "null",
            23 => "undefined",
            25..=27 => "a float",
            _ => "a simple value",
        },
    }
}

// ---- writing: deterministic (RFC 8949 §4.2.1) heads, shortest form ----

/// Appends the shortest head for `major` with argument `n`.
pub(crate) fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u64::from(u8::MAX) {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= u64::from(u16::MAX) {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u64::from(u32::MAX) {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends an integer.
pub(crate) fn write_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        write_head(out, UINT, n as u64);
    } else {
        // -1 - n cannot overflow for any negative i64.
        write_head(out, NINT, (-1 - n) as u64);
    }
}

/// Appends a byte string.
pub(crate) fn write_bstr(out: &mut Vec<u8>, b: &[u8]) {
    write_head(out, BSTR, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends a text string.
pub(crate) fn write_tstr(out: &mut Vec<u8>, s: &str) {
    write_head(out, TSTR, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer produces the shortest heads, matching ciborium's encoder.
    #[test]
    fn heads_are_shortest_form() {
        for n in [0i64, 23, 24, 255, 256, 65535, 65536, -1, -24, -25, -65537, i64::MAX, i64::MIN] {
            let mut ours = Vec::new();
            write_int(&mut ours, n);
            let mut theirs = Vec::new();
            ciborium::into_writer(&ciborium::Value::Integer(n.into()), &mut theirs).unwrap();
            assert_eq!(ours, theirs, "{n}");
        }
    }

    /// Reserved encodings, truncation, deep nesting and trailing bytes are rejected.
    #[test]
    fn rejects_malformed() {
        assert_eq!(check_single(&[]), Err(Malformed::Truncated));
        assert_eq!(check_single(&[0x1c]), Err(Malformed::Reserved(0)));
        assert_eq!(check_single(&[0x5a, 0xff, 0xff, 0xff, 0xff]), Err(Malformed::Truncated));
        assert_eq!(
            check_single(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(Malformed::Truncated)
        );
        assert_eq!(check_single(&[0x01, 0x02]), Err(Malformed::Trailing(1)));
        assert_eq!(check_single(&[0xf8, 0x10]), Err(Malformed::BadSimple(0)));
        assert_eq!(check_single(&[0xff]), Err(Malformed::Reserved(0)));
        assert_eq!(check_single(&[0x5f, 0x61, 0x61, 0xff]), Err(Malformed::BadChunk(1)));
        assert_eq!(check_single(&[0xbf, 0x01, 0xff]), Err(Malformed::Reserved(2)));
        assert_eq!(check_single(&[0x81; 100]), Err(Malformed::TooDeep));
        assert_eq!(check_single(&[0x5f, 0x41, 0x61, 0x40, 0xff]), Ok(()));
    }
}
