//! Where a JSON string's plain run ends: the next `"`, `\` or control character (below 0x20), the
//! bytes that end a string or need a look. 16 bytes a step in vector registers (`wide`: SSE2 on any
//! x86-64, NEON on arm64; the `unsafe` is the crate's): a record's base64 data is most of an event,
//! and a tweet's text most of a tweet. The compiler does not vectorize a plain loop here: the binary
//! is linked with LTO at opt-level "z", whose passes leave loops scalar. Against the word-at-a-time
//! scan (SWAR) it replaced, at "z" with LTO: 19.6 against 7.5 GB/s on a 4.6 KB run, 3.6 against
//! 7.4 ns on 40 bytes, 2.0 against 3.0 ns on 7.

use wide::u8x16;

/// Whether `b` ends a plain run.
fn is_special(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The index of the first `"`, `\` or control character in `bytes` at or after `from`; `None` when
/// there is none.
#[inline]
pub fn special(bytes: &[u8], mut from: usize) -> Option<usize> {
    let (quote, backslash, control) = (u8x16::splat(b'"'), u8x16::splat(b'\\'), u8x16::splat(0x1f));
    while let Some(chunk) = bytes.get(from..).and_then(|b| b.first_chunk::<16>()) {
        let v = u8x16::new(*chunk);
        // A byte below 0x20 is the minimum of itself and 0x1f.
        let hits = v.simd_eq(quote) | v.simd_eq(backslash) | v.min(control).simd_eq(v);
        let mask = hits.to_bitmask();
        if mask != 0 {
            return Some(from + mask.trailing_zeros() as usize);
        }
        from += 16;
    }
    // The last bytes of the text.
    bytes.get(from..)?.iter().position(|&b| is_special(b)).map(|i| from + i)
}
