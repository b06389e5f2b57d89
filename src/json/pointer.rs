//! JSON Pointers (RFC 6901) as schemas name fields: parsed into segments once, and shown in
//! reasons as dotted paths (`/user/name` → `user.name`), the way people read them.
//! <https://www.rfc-editor.org/rfc/rfc6901>

/// The segments of `pointer`: "" is the whole document; otherwise it starts with `/`, and `~1` and
/// `~0` stand for `/` and `~`.
pub fn parse(pointer: &str) -> Result<Vec<String>, &'static str> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("does not start with /");
    };
    rest.split('/')
        .map(|segment| {
            let mut out = String::with_capacity(segment.len());
            let mut chars = segment.chars();
            while let Some(c) = chars.next() {
                match (c, c == '~') {
                    (_, true) => match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err("has a ~ that is not ~0 or ~1"),
                    },
                    (c, false) => out.push(c),
                }
            }
            Ok(out)
        })
        .collect()
}

/// How a reason names the field at `pointer`: its segments joined by dots (`user.name`).
pub fn display(pointer: &str) -> String {
    match parse(pointer) {
        Ok(segments) if !segments.is_empty() => segments.join("."),
        _ => pointer.to_string(),
    }
}

/// True when `segment` can index an array: digits without a leading zero (RFC 6901, section 4).
pub fn array_index(segment: &str) -> Option<usize> {
    let ok = !segment.is_empty()
        && segment.bytes().all(|b| b.is_ascii_digit())
        && (segment == "0" || !segment.starts_with('0'));
    if ok { segment.parse().ok() } else { None }
}
