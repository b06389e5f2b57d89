//! The walk without serde: one pass over the bytes that accepts only what serde_json accepts and
//! gives up (`None`) at anything else — malformed JSON, a wrong type, a duplicate field, an escaped
//! key, nesting deeper than `MAX_DEPTH` — so that `walk` runs serde_json's walk on that text and
//! every reason stays serde_json's own, with its line and column. When it does read a text, it
//! captures what serde_json's walk captures (a property test in src/schema holds the two to it).
//! It skips what the plan does not name without serde's visitor calls and scans strings 16 bytes a
//! step (`crate::scan`): on full-size tweets the walk alone takes 17 % less time than serde_json's (both at
//! opt-level 3), and the function 4 % less CPU per record on a 6 MB event (issue 21's note).

use super::{Found, Plan, Seen, Walk};

/// Pointers deeper than this, and nesting this deep inside a skipped value, are left to serde_json
/// (its own limit is 128 for the values it visits; it skips without one).
const MAX_DEPTH: usize = 64;

/// The captured slots of `text`, or `None` to let serde_json walk it.
pub fn walk<'a>(plan: &Plan, text: &'a str) -> Option<Vec<Option<Found<'a>>>> {
    if plan.depth > MAX_DEPTH {
        return None;
    }
    let mut f = Fast { walk: Walk { plan, caps: vec![None; plan.accepts.len()], failed_at: None }, text, pos: 0 };
    f.ws();
    f.value(0)?;
    f.ws();
    (f.pos == text.len()).then_some(f.walk.caps)
}

struct Fast<'p, 'a> {
    walk: Walk<'p, 'a>,
    text: &'a str,
    pos: usize,
}

impl<'a> Fast<'_, 'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Reads the value of trie node `node`: captured into its slot if it has one, walked into if it
    /// has children.
    fn value(&mut self, node: usize) -> Option<()> {
        let plan = self.walk.plan;
        let n = &plan.nodes[node];
        let Some(slot) = n.slot else {
            return self.container(node);
        };
        let start = self.pos;
        match self.peek()? {
            b'{' | b'[' if !n.children.is_empty() => self.container(node)?,
            _ => self.skip()?,
        }
        let raw = &self.text[start..self.pos];
        self.walk.capture(node, slot, raw).ok()
    }

    /// Walks the object (or, where the plan indexes it, the array) at `node`; null is absent,
    /// except for the event itself.
    fn container(&mut self, node: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(node),
            b'[' if self.walk.plan.nodes[node].indexed => self.array(node),
            b'n' if node != 0 => self.literal(b"null"),
            _ => None,
        }
    }

    fn object(&mut self, node: usize) -> Option<()> {
        let plan = self.walk.plan;
        let children = &plan.nodes[node].children;
        let mut seen = Seen::new(children.len());
        if self.empty(b'}')? {
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.ws();
            (self.peek()? == b':').then_some(())?;
            self.pos += 1;
            self.ws();
            match children.iter().position(|&c| *plan.nodes[c].segment == *key) {
                Some(i) => {
                    seen.first(i).then_some(())?;
                    self.value(children[i])?;
                }
                None => self.skip()?,
            }
            if !self.more(b'}')? {
                return Some(());
            }
        }
    }

    fn array(&mut self, node: usize) -> Option<()> {
        let plan = self.walk.plan;
        if self.empty(b']')? {
            return Some(());
        }
        let mut index = 0;
        loop {
            match plan.element(node, index) {
                Some(c) => self.value(c)?,
                None => self.skip()?,
            }
            if !self.more(b']')? {
                return Some(());
            }
            index += 1;
        }
    }

    /// Past the opening bracket: `Some(true)` past `close` when the container is empty.
    fn empty(&mut self, close: u8) -> Option<bool> {
        self.pos += 1;
        self.ws();
        let empty = self.peek()? == close;
        if empty {
            self.pos += 1;
        }
        Some(empty)
    }

    /// After a member or an element: `Some(true)` past a comma, `Some(false)` past `close`.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.ws();
        let b = self.peek()?;
        self.pos += 1;
        if b == b',' {
            self.ws();
            Some(true)
        } else {
            (b == close).then_some(false)
        }
    }

    /// An object's key without escapes (serde_json compares keys unescaped: an escaped one is left
    /// to it), the cursor after its closing quote.
    fn key(&mut self) -> Option<&'a str> {
        (self.peek()? == b'"').then_some(())?;
        let start = self.pos + 1;
        self.pos = start;
        match self.seek_special()? {
            b'"' => {
                let key = &self.text[start..self.pos];
                self.pos += 1;
                Some(key)
            }
            _ => None,
        }
    }

    /// Moves the cursor to the next `"`, `\` or control character of a string and returns it.
    fn seek_special(&mut self) -> Option<u8> {
        match crate::scan::special(self.bytes(), self.pos) {
            Some(at) => {
                self.pos = at;
                Some(self.bytes()[at])
            }
            None => {
                self.pos = self.text.len();
                None
            }
        }
    }

    /// Skips a string whose opening quote is at the cursor, checking escapes as serde_json does when
    /// it skips one (`\u` needs four hex digits, surrogates are not paired).
    fn string(&mut self) -> Option<()> {
        self.pos += 1;
        loop {
            match self.seek_special()? {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\' => {
                    let bytes = self.bytes();
                    match *bytes.get(self.pos + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 2,
                        b'u' => {
                            let hex = bytes.get(self.pos + 2..self.pos + 6)?;
                            hex.iter().all(u8::is_ascii_hexdigit).then_some(())?;
                            self.pos += 6;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.bytes().get(self.pos..)?.starts_with(word).then_some(())?;
        self.pos += word.len();
        Some(())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number as JSON writes it: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            (self.digits() > 0).then_some(())?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            (self.digits() > 0).then_some(())?;
        }
        Some(())
    }

    /// Skips one value of any kind, its nesting tracked in a bit stack.
    fn skip(&mut self) -> Option<()> {
        // Bit d set: the container at depth d is an object.
        let mut objects = 0u64;
        let mut depth = 0usize;
        loop {
            // A value.
            match self.peek()? {
                b'"' => self.string()?,
                b'{' | b'[' => {
                    let object = self.peek()? == b'{';
                    self.pos += 1;
                    (depth < MAX_DEPTH).then_some(())?;
                    objects = (objects & !(1 << depth)) | (u64::from(object) << depth);
                    depth += 1;
                    self.ws();
                    let close = if object { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.pos += 1;
                        depth -= 1;
                    } else {
                        if object {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => self.number()?,
            }
            // After a value: a comma and the next one, or the ends of containers.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let object = objects & (1 << (depth - 1)) != 0;
                self.ws();
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        self.ws();
                        if object {
                            self.member_key()?;
                        }
                        break;
                    }
                    b'}' if object => {
                        self.pos += 1;
                        depth -= 1;
                    }
                    b']' if !object => {
                        self.pos += 1;
                        depth -= 1;
                    }
                    _ => return None,
                }
            }
        }
    }

    /// A skipped object's key and its colon, the cursor at the value.
    fn member_key(&mut self) -> Option<()> {
        (self.peek()? == b'"').then_some(())?;
        self.string()?;
        self.ws();
        (self.peek()? == b':').then_some(())?;
        self.pos += 1;
        self.ws();
        Some(())
    }
}
