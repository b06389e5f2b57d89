//! Reading one event in one pass: a `Plan` (a trie of the JSON Pointers a schema names) walks the
//! event, captures the values it names as slices of the event's text, checks their JSON types where
//! they stand, and skips everything else without copying it. Two walks do it: `fast`, over the
//! bytes, reads the events it can; serde_json's walks the rest, so that a wrong type or bad JSON is
//! reported in serde_json's words, with its line and column.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor,
};
use serde_json::value::RawValue;

use crate::pointer;

mod fast;

/// The byte walk alone (`None`: it leaves the text to serde_json's walk); for the tests.
pub use fast::walk as walk_fast;

/// JSON kinds as bits: what a slot accepts.
pub type Kinds = u8;
/// A JSON string.
pub const STRING: Kinds = 1;
/// A JSON number with a fraction or an exponent.
pub const FRACTION: Kinds = 2;
/// A JSON number without one.
pub const INTEGER: Kinds = 4;
/// true or false.
pub const BOOLEAN: Kinds = 8;
/// A JSON object.
pub const OBJECT: Kinds = 16;
/// A JSON array.
pub const ARRAY: Kinds = 32;
/// Anything but null.
pub const ANY: Kinds = STRING | FRACTION | INTEGER | BOOLEAN | OBJECT | ARRAY;

/// What `kinds` accepts, in words: "a string or a number".
pub fn expecting(kinds: Kinds) -> String {
    if kinds == ANY {
        return "a value".into();
    }
    let mut words = Vec::new();
    if kinds & STRING != 0 {
        words.push("a string");
    }
    if kinds & FRACTION != 0 {
        words.push("a number");
    } else if kinds & INTEGER != 0 {
        words.push("an integer");
    }
    for (bit, word) in [(BOOLEAN, "a boolean"), (OBJECT, "an object"), (ARRAY, "an array")] {
        if kinds & bit != 0 {
            words.push(word);
        }
    }
    words.join(" or ")
}

/// A value the plan captured, borrowed from the event's text where it can be.
#[derive(Debug, Clone, PartialEq)]
pub enum Found<'a> {
    /// A string, unescaped.
    Str(Cow<'a, str>),
    /// A number, as written.
    Num(&'a str),
    /// true or false.
    Bool(bool),
    /// An object or an array, as written.
    Raw(&'a str),
}

impl Found<'_> {
    /// The text of a string or a number; `None` for other kinds.
    pub fn text(&self) -> Option<&str> {
        match self {
            Found::Str(s) => Some(s),
            Found::Num(n) => Some(n),
            _ => None,
        }
    }
}

struct Node {
    segment: Box<str>,
    pointer: Box<str>,
    children: Vec<usize>,
    slot: Option<usize>,
    /// Some child segment is an array index: an array here is walked, not refused.
    indexed: bool,
}

/// The pointers of a schema as a trie, each ending in a slot that accepts some JSON kinds.
pub struct Plan {
    nodes: Vec<Node>,
    accepts: Vec<Kinds>,
    /// The deepest pointer's segments.
    depth: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            nodes: vec![Node {
                segment: "".into(),
                pointer: "".into(),
                children: Vec::new(),
                slot: None,
                indexed: false,
            }],
            accepts: Vec::new(),
            depth: 0,
        }
    }
}

impl Plan {
    /// Adds `pointer` accepting `kinds` and returns its slot; a pointer added twice keeps one slot,
    /// which accepts only what both uses accept (`Err` when that is nothing).
    pub fn add(&mut self, pointer: &str, kinds: Kinds) -> Result<usize, Kinds> {
        let segments = pointer::parse(pointer).unwrap_or_default();
        self.depth = self.depth.max(segments.len());
        let mut node = 0;
        for (i, segment) in segments.iter().enumerate() {
            let found = self.nodes[node].children.iter().copied().find(|&c| *self.nodes[c].segment == **segment);
            node = match found {
                Some(c) => c,
                None => {
                    let id = self.nodes.len();
                    let text = segments[..=i]
                        .iter()
                        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
                        .collect::<String>();
                    self.nodes.push(Node {
                        segment: segment.as_str().into(),
                        pointer: text.into(),
                        children: Vec::new(),
                        slot: None,
                        indexed: false,
                    });
                    self.nodes[node].children.push(id);
                    self.nodes[node].indexed |= pointer::array_index(segment).is_some();
                    id
                }
            };
        }
        match self.nodes[node].slot {
            Some(slot) => {
                let both = self.accepts[slot] & kinds;
                if both == 0 {
                    return Err(self.accepts[slot]);
                }
                self.accepts[slot] = both;
                Ok(slot)
            }
            None => {
                self.accepts.push(kinds);
                self.nodes[node].slot = Some(self.accepts.len() - 1);
                Ok(self.accepts.len() - 1)
            }
        }
    }

    /// Slots in all.
    pub fn slots(&self) -> usize {
        self.accepts.len()
    }

    /// The child of `node` that names array element `index`, if the plan names it.
    fn element(&self, node: usize, index: usize) -> Option<usize> {
        self.nodes[node].children.iter().copied().find(|&c| pointer::array_index(&self.nodes[c].segment) == Some(index))
    }
}

/// Which of an object's named fields were met, so that one given twice is refused as serde_json
/// refuses a field given twice — every one of them, however many the plan names there: one word
/// for the first 64 (every schema seen so far), more words beyond, allocated only then.
struct Seen {
    word: u64,
    more: Vec<u64>,
}

impl Seen {
    fn new(fields: usize) -> Seen {
        Seen { word: 0, more: vec![0; fields.saturating_sub(64).div_ceil(64)] }
    }

    /// Marks field `i` met; `false` when it was met before.
    fn first(&mut self, i: usize) -> bool {
        let word = if i < 64 { &mut self.word } else { &mut self.more[(i - 64) / 64] };
        let bit = 1u64 << (i % 64);
        let first = *word & bit == 0;
        *word |= bit;
        first
    }
}

/// Why an event could not be read: serde_json's words, with its line and column, and the field's
/// path in front when its type was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread(pub String);

/// Walks `text` (one JSON object) and returns the value of every slot (`None`: absent or null).
pub fn walk<'a>(plan: &Plan, text: &'a str) -> Result<Vec<Option<Found<'a>>>, Unread> {
    match fast::walk(plan, text) {
        Some(caps) => Ok(caps),
        None => walk_serde(plan, text),
    }
}

/// `walk` with serde_json alone: what it reads, and in its words why not.
pub fn walk_serde<'a>(plan: &Plan, text: &'a str) -> Result<Vec<Option<Found<'a>>>, Unread> {
    let mut w = Walk { plan, caps: vec![None; plan.accepts.len()], failed_at: None };
    let mut de = serde_json::Deserializer::from_str(text);
    let walked = NodeSeed { walk: &mut w, node: 0 }.deserialize(&mut de).and_then(|()| de.end());
    match walked {
        Ok(()) => Ok(w.caps),
        Err(e) => Err(Unread(match w.failed_at {
            Some(node) => format!("{}: {e}", pointer::display(&plan.nodes[node].pointer)),
            None => e.to_string(),
        })),
    }
}

struct Walk<'p, 'a> {
    plan: &'p Plan,
    caps: Vec<Option<Found<'a>>>,
    failed_at: Option<usize>,
}

impl<'a> Walk<'_, 'a> {
    /// Keeps `raw` in `slot` when its kind is accepted; otherwise says what it is.
    fn capture(&mut self, node: usize, slot: usize, raw: &'a str) -> Result<(), (String, String)> {
        let accepts = self.plan.accepts[slot];
        let refuse = |shown: String| Err((shown, expecting(accepts)));
        let found = match raw.as_bytes().first() {
            Some(b'"') => {
                let s = unescape(raw).map_err(|e| (e, String::new()))?;
                if accepts & STRING == 0 {
                    self.failed_at = Some(node);
                    return refuse(format!("string {s:?}"));
                }
                Found::Str(s)
            }
            Some(b'n') => return Ok(()),
            Some(b't' | b'f') => {
                if accepts & BOOLEAN == 0 {
                    self.failed_at = Some(node);
                    return refuse(format!("boolean `{raw}`"));
                }
                Found::Bool(raw == "true")
            }
            Some(b'{' | b'[') => {
                let (bit, word) = if raw.starts_with('{') { (OBJECT, "map") } else { (ARRAY, "sequence") };
                if accepts & bit == 0 {
                    self.failed_at = Some(node);
                    return refuse(word.to_string());
                }
                Found::Raw(raw)
            }
            _ => {
                let integer = !raw.contains(['.', 'e', 'E']);
                let ok = if integer { accepts & INTEGER != 0 } else { accepts & FRACTION != 0 };
                if !ok {
                    self.failed_at = Some(node);
                    let word = if integer { "integer" } else { "floating point" };
                    return refuse(format!("{word} `{raw}`"));
                }
                Found::Num(raw)
            }
        };
        self.caps[slot] = Some(found);
        Ok(())
    }
}

/// A JSON string's content (`raw` is the string with its quotes); borrowed unless it has escapes.
fn unescape(raw: &str) -> Result<Cow<'_, str>, String> {
    let inner = &raw[1..raw.len() - 1];
    if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw).map(Cow::Owned).map_err(|e| e.to_string())
}

struct NodeSeed<'w, 'p, 'a> {
    walk: &'w mut Walk<'p, 'a>,
    node: usize,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let (slot, has_children) = {
            let n = &self.walk.plan.nodes[self.node];
            (n.slot, !n.children.is_empty())
        };
        let Some(slot) = slot else {
            return d.deserialize_any(NodeVisitor { walk: self.walk, node: self.node });
        };
        let raw: &'de RawValue = serde::Deserialize::deserialize(d)?;
        let text = raw.get();
        self.walk.capture(self.node, slot, text).map_err(|(shown, expected)| match expected.is_empty() {
            // A string that does not unescape (a lone surrogate): serde_json's own words.
            true => D::Error::custom(shown),
            false => D::Error::custom(format_args!("invalid type: {shown}, expected {expected}")),
        })?;
        if has_children && matches!(text.as_bytes().first(), Some(b'{' | b'[')) {
            // A pointer and a pointer inside it: the inner ones are read from the captured text.
            let mut de = serde_json::Deserializer::from_str(text);
            NodeVisitorSeed { walk: self.walk, node: self.node }.deserialize(&mut de).map_err(D::Error::custom)?;
        }
        Ok(())
    }
}

/// Walks a node's children in a value whose slot was captured too.
struct NodeVisitorSeed<'w, 'p, 'a> {
    walk: &'w mut Walk<'p, 'a>,
    node: usize,
}

impl<'de> DeserializeSeed<'de> for NodeVisitorSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(NodeVisitor { walk: self.walk, node: self.node })
    }
}

struct NodeVisitor<'w, 'p, 'a> {
    walk: &'w mut Walk<'p, 'a>,
    node: usize,
}

impl NodeVisitor<'_, '_, '_> {
    fn refuse<E: de::Error>(self, unexpected: Unexpected<'_>) -> Result<(), E> {
        if self.node != 0 {
            self.walk.failed_at = Some(self.node);
        }
        Err(E::invalid_type(unexpected, &self))
    }
}

impl<'de> Visitor<'de> for NodeVisitor<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.walk.plan.nodes[self.node].indexed { "an object or an array" } else { "an object" })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (walk, node) = (self.walk, self.node);
        let plan = walk.plan;
        let children = &plan.nodes[node].children;
        let mut seen = Seen::new(children.len());
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match children.iter().position(|&c| *plan.nodes[c].segment == *key) {
                Some(i) => {
                    if !seen.first(i) {
                        return Err(A::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    map.next_value_seed(NodeSeed { walk: &mut *walk, node: children[i] })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.walk.plan.nodes[self.node].indexed {
            return self.refuse(Unexpected::Seq);
        }
        let (walk, node) = (self.walk, self.node);
        let plan = walk.plan;
        let mut index = 0;
        loop {
            let more = match plan.element(node, index) {
                Some(c) => seq.next_element_seed(NodeSeed { walk: &mut *walk, node: c })?.is_some(),
                None => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        // A null on the way to a field means the field is absent; the event itself must be an object.
        if self.node == 0 { self.refuse(Unexpected::Unit) } else { Ok(()) }
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.refuse(Unexpected::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.refuse(Unexpected::Signed(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.refuse(Unexpected::Unsigned(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.refuse(Unexpected::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.refuse(Unexpected::Str(v))
    }
}

/// An object's key, borrowed from the text unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}
