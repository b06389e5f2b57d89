//! Event schemas: what a record of the stream is, as data. A schema file (`spec`: TOML or JSON,
//! checked once, every problem named) says where the table's keys are in an event (JSON Pointers),
//! the Kinesis partition key, what the item stores (the whole event as a document, or a
//! projection), the event time, the TTL, a version for ordering, and the fields every record needs.
//! `Schema` is that file compiled: `item` reads one event in one pass (`decode`) into a compact
//! item (`item`), or says why it can never be written (`Refusal`); `kinesis_key` is what producers
//! key records by. The built-in `tweets` schema is today's pipeline, as data, not a code path.

mod compile;
pub mod doc;
mod fits;
pub mod item;
mod load;
pub mod number;
mod refusal;
pub mod spec;

/// The one-pass walk and JSON Pointers, from the `stream-json` package (src/json), which is
/// compiled at opt-level 3.
pub use stream_json::{decode, pointer};

use std::fmt;
use std::sync::{Arc, OnceLock};

use base64::Engine;

pub use decode::Found;
pub use item::{Item, Val};
pub use load::{Loaded, built_in, from_text, load};
pub use refusal::{Field, Refusal};
pub use spec::{KeyType, Problem, Spec, StoreMode, VersionKind};

use crate::template;
use crate::time::{self, Format};
use decode::{Kinds, Plan};
use doc::Numbers;

/// DynamoDB: a partition key value holds at most 2,048 bytes.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB: a sort key value holds at most 1,024 bytes.
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// DynamoDB: an item holds at most 400 KB (names and values, UTF-8).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Kinesis: a partition key holds at most 256 Unicode characters.
pub const MAX_KINESIS_KEY_CHARS: usize = 256;

/// The schema `stream` uses when none is given: the v1.1 tweet pipeline.
pub const DEFAULT: &str = "tweets";
/// The built-in schemas, embedded from template/schemas/.
pub const BUILT_IN: [&str; 4] = ["tweets", "clickstream", "iot", "orders"];

/// Where one value comes from: its sources' slots, tried in order, and the reason when all are absent.
#[derive(Debug, Clone)]
struct Sources {
    slots: Vec<usize>,
    pointers: Vec<String>,
    missing: String,
}

#[derive(Debug, Clone)]
struct KeyPlan {
    attribute: Arc<str>,
    key_type: KeyType,
    max_bytes: usize,
    sources: Sources,
}

#[derive(Debug, Clone)]
enum TtlPlan {
    Field(Sources, Format),
    After(i64),
}

#[derive(Debug, Clone)]
struct Projected {
    sources: Sources,
    default: Option<Val>,
    required: bool,
}

/// A schema, compiled: reads events into items.
pub struct Schema {
    spec: Spec,
    noun: Arc<str>,
    plan: Plan,
    names: Vec<Box<str>>,
    partition: KeyPlan,
    sort: Option<KeyPlan>,
    kinesis: Sources,
    time: Option<(Sources, Vec<Format>, bool)>,
    ttl: Option<TtlPlan>,
    version: Option<(Sources, VersionKind, Vec<Format>)>,
    projected: Vec<Projected>,
    required: Vec<Sources>,
    numbers: Numbers,
    /// Index in `names` of the time, TTL and version attributes.
    at: Positions,
}

#[derive(Debug, Clone, Copy, Default)]
struct Positions {
    time: usize,
    ttl: usize,
    version: usize,
    projected: usize,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema").field("name", &self.spec.name).finish_non_exhaustive()
    }
}

/// "a, b or c".
fn either(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

impl Schema {
    /// Compiles a checked spec. Problems only a compiled schema shows (one pointer read as two
    /// types that never meet) are returned like the spec's own.
    pub fn compile(spec: Spec) -> Result<Schema, Vec<Problem>> {
        let mut c = compile::Compiler::default();
        let schema = c.schema(spec);
        if c.problems.is_empty() { Ok(schema) } else { Err(c.problems) }
    }

    /// Reads and compiles schema text (`toml`: TOML, else JSON).
    pub fn parse(text: &str, toml: bool) -> Result<Schema, Vec<Problem>> {
        Schema::compile(spec::read(text, toml)?)
    }

    /// A built-in schema by name (`tweets`, `clickstream`, `iot`, `orders`).
    pub fn built_in(name: &str) -> Option<&'static Schema> {
        static CACHE: OnceLock<Vec<Schema>> = OnceLock::new();
        let all = CACHE.get_or_init(|| {
            BUILT_IN
                .iter()
                .map(|n| {
                    let text = template::schema_file(n).unwrap_or_default();
                    // template/schemas/ is embedded at build time and checked by this module's tests.
                    Schema::parse(text, true).unwrap_or_else(|p| panic!("built-in schema {n} is invalid: {p:?}"))
                })
                .collect()
        });
        BUILT_IN.iter().position(|n| *n == name).map(|i| &all[i])
    }

    /// The built-in `tweets` schema: the default.
    pub fn tweets() -> &'static Schema {
        // BUILT_IN names it; `built_in` panics only on a bad embedded file, which the tests catch.
        Schema::built_in(DEFAULT).expect("tweets is built in")
    }

    /// The schema as read.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The names of the schema's own attributes, in the order `Item` holds them: partition key,
    /// sort key, time, TTL, version, projected attributes.
    pub fn attribute_names(&self) -> &[Box<str>] {
        &self.names
    }

    /// The partition key's attribute and type.
    pub fn partition_key(&self) -> (&str, KeyType) {
        (&self.partition.attribute, self.partition.key_type)
    }

    /// The sort key's attribute and type, if the table has one.
    pub fn sort_key(&self) -> Option<(&str, KeyType)> {
        self.sort.as_ref().map(|k| (&*k.attribute, k.key_type))
    }

    /// The TTL attribute, if items expire.
    pub fn ttl_attribute(&self) -> Option<&str> {
        self.spec.ttl.as_ref().map(|t| t.attribute.as_str())
    }

    /// The version attribute and its kind, when writes are ordered by version.
    pub fn version(&self) -> Option<(&str, VersionKind)> {
        self.spec.version.as_ref().map(|v| (v.attribute.as_str(), v.kind))
    }

    /// The sort key's value of an item, if the table has one.
    pub fn sort_value<'i>(&self, item: &'i Item) -> Option<&'i Val> {
        self.sort.as_ref().and_then(|_| item.fixed(1))
    }

    /// The version of an item (its number text), when the schema orders by version.
    pub fn version_value<'i>(&self, item: &'i Item) -> Option<&'i str> {
        self.version.as_ref().and_then(|_| match item.fixed(self.at.version)? {
            Val::N(n) => Some(&**n),
            _ => None,
        })
    }

    /// The schema in words: keys, contents, time, TTL, ordering, Kinesis key.
    pub fn describe(&self) -> Vec<(String, String)> {
        let spec = &self.spec;
        let key = |k: &spec::KeySpec, role: &str| {
            let from: Vec<String> = k.from.iter().map(|src| pointer::display(&src.pointer)).collect();
            format!("{} ({}) {role} ← {}", k.attribute, k.key_type.as_str(), from.join(" | "))
        };
        let mut keys = vec![key(&spec.partition_key, "HASH")];
        keys.extend(spec.sort_key.as_ref().map(|k| key(k, "RANGE")));
        let mut out = vec![("table keys".to_string(), keys.join(", "))];
        let stored = match spec.item.store {
            StoreMode::Document => "the whole event (document: objects → M, arrays → L, numbers → N)".to_string(),
            StoreMode::Projection => {
                let names: Vec<&str> = spec.item.attributes.iter().map(|a| a.attribute.as_str()).collect();
                format!("projection: {}", if names.is_empty() { "the keys only".to_string() } else { names.join(", ") })
            }
        };
        out.push(("stores".into(), stored));
        if let Some(t) = &spec.time {
            let formats: Vec<&str> = t.formats.iter().map(|f| f.name()).collect();
            let from: Vec<String> = t.from.iter().map(|src| pointer::display(&src.pointer)).collect();
            out.push(("time".into(), format!("{} ← {} ({})", t.attribute, from.join(" | "), formats.join(", "))));
        }
        if let Some(t) = &spec.ttl {
            let how = match (&t.after, t.from.first()) {
                (Some(after), _) => format!("event time + {after}"),
                (None, Some(src)) => {
                    format!("{} ({})", pointer::display(&src.pointer), t.format.map_or("epoch_seconds", |f| f.name()))
                }
                (None, None) => String::new(),
            };
            out.push(("TTL".into(), format!("{} = {how}; the table's TTL is enabled on it", t.attribute)));
        }
        let ordering = match &spec.version {
            Some(v) => format!(
                "by {} ({}): a write never replaces a newer version",
                v.attribute,
                if v.kind == VersionKind::Time { "a time" } else { "a number" }
            ),
            None => "none: the last record read wins".into(),
        };
        out.push(("ordering".into(), ordering));
        let from: Vec<String> = spec.kinesis.partition_key.iter().map(|src| pointer::display(&src.pointer)).collect();
        out.push(("kinesis key".into(), from.join(" | ")));
        out
    }

    /// The item one record's payload becomes, or why it never can.
    pub fn item(&self, payload: &[u8]) -> Result<Item, Refusal> {
        let text = utf8(payload)?;
        let caps = decode::walk(&self.plan, text).map_err(|e| self.not_json(e.0))?;
        let rest = match self.spec.item.store {
            StoreMode::Projection => Box::default(),
            StoreMode::Document => match doc::members(text, self.numbers) {
                Some(Ok(members)) => self.without_own_names(members),
                Some(Err(e)) => return Err(unstorable("", e)),
                None => return Err(self.not_json("not an object".into())),
            },
        };
        self.build(&caps, rest)
    }

    /// For producers, from one read: the Kinesis partition key of a payload (cut to 256
    /// characters), after checking that the function would write it.
    pub fn kinesis_key(&self, payload: &[u8]) -> Result<String, Refusal> {
        let text = utf8(payload)?;
        let caps = decode::walk(&self.plan, text).map_err(|e| self.not_json(e.0))?;
        if self.spec.item.store == StoreMode::Document
            && let Some(Err(e)) = doc::members(text, self.numbers)
        {
            return Err(unstorable("", e));
        }
        if !self.surely_fits(&caps) {
            self.build(&caps, Box::default())?;
        }
        let key = self
            .kinesis
            .slots
            .iter()
            .filter_map(|&s| caps[s].as_ref().and_then(Found::text))
            .find(|t| !t.is_empty())
            .ok_or_else(|| Refusal::Missing { field: Field::KinesisKey, message: self.kinesis.missing.clone() })?;
        Ok(match key.char_indices().nth(MAX_KINESIS_KEY_CHARS) {
            Some((cut, _)) => key[..cut].to_string(),
            None => key.to_string(),
        })
    }

    fn not_json(&self, detail: String) -> Refusal {
        Refusal::NotJson { noun: self.noun.clone(), detail }
    }

    /// The event's fields, less those the schema's own attributes name (the schema's win).
    fn without_own_names(&self, mut members: Vec<(Box<str>, Val)>) -> Box<[(Box<str>, Val)]> {
        members.retain(|(n, _)| !self.names.contains(n));
        members.into_boxed_slice()
    }

    /// The item from the captured values; `rest` holds the event's fields (document mode).
    fn build(&self, caps: &[Option<Found<'_>>], rest: Box<[(Box<str>, Val)]>) -> Result<Item, Refusal> {
        let mut fixed: Vec<Option<Val>> = vec![None; self.names.len()];
        // The sort key is looked for first: with both keys missing, the reason names the sort key,
        // as the tweet pipeline always has ("no tweet id").
        let sort = self.sort.as_ref().map(|k| self.key(k, caps, Field::SortKey)).transpose()?;
        let partition = self.key(&self.partition, caps, Field::PartitionKey)?;
        check_key_size(&self.partition, &partition)?;
        if let (Some(k), Some(v)) = (&self.sort, &sort) {
            check_key_size(k, v)?;
        }
        fixed[0] = Some(partition);
        if let Some(v) = sort {
            fixed[1] = Some(v);
        }
        let event_time = self.event_time(caps)?;
        if let Some(ttl) = self.expiry(caps, event_time.as_ref())? {
            fixed[self.at.ttl] = Some(ttl);
        }
        if let Some(t) = event_time {
            fixed[self.at.time] = Some(Val::S(t.iso.into_boxed_str()));
        }
        if let Some(v) = self.version_of(caps)? {
            fixed[self.at.version] = Some(v);
        }
        for (i, p) in self.projected.iter().enumerate() {
            fixed[self.at.projected + i] = self.projected_value(p, caps)?;
        }
        for r in &self.required {
            if first(caps, &r.slots).is_none() {
                return Err(Refusal::Missing { field: Field::Required, message: r.missing.clone() });
            }
        }
        let item = Item { fixed: fixed.into_boxed_slice(), rest };
        let bytes = item.size(&self.names);
        if bytes > MAX_ITEM_BYTES {
            return Err(Refusal::ItemTooLarge { bytes });
        }
        Ok(item)
    }

    /// A key's value: the first source present and not empty, as the key's type.
    fn key(&self, k: &KeyPlan, caps: &[Option<Found<'_>>], field: Field) -> Result<Val, Refusal> {
        for (&slot, pointer) in k.sources.slots.iter().zip(&k.sources.pointers) {
            let Some(found) = &caps[slot] else { continue };
            let value = match (k.key_type, found) {
                (KeyType::S, Found::Str(s)) if !s.is_empty() => Val::S(s.as_ref().into()),
                (KeyType::S, Found::Num(n)) => Val::S((*n).into()),
                (KeyType::N, Found::Num(n)) => match number::canonical(n) {
                    Some(c) => Val::N(c.into()),
                    None => return Err(self.bad_number(pointer, n)),
                },
                (KeyType::B, Found::Str(s)) if !s.is_empty() => {
                    // Not empty, so it decodes to at least one byte or is refused (padding alone is).
                    match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                        Ok(bytes) => Val::B(bytes.into()),
                        Err(_) => {
                            return Err(Refusal::Unstorable {
                                path: pointer::display(pointer),
                                why: "is not base64 (a binary key is written in base64)".into(),
                            });
                        }
                    }
                }
                _ => continue,
            };
            return Ok(value);
        }
        Err(Refusal::Missing { field, message: k.sources.missing.clone() })
    }

    fn bad_number(&self, pointer: &str, text: &str) -> Refusal {
        let why = number::check(text).err().unwrap_or(number::Unfit::NotANumber);
        Refusal::Unstorable { path: pointer::display(pointer), why: format!("{text} {why}") }
    }

    /// The event time, when the schema has one and the event gives it.
    fn event_time(&self, caps: &[Option<Found<'_>>]) -> Result<Option<time::EventTime>, Refusal> {
        let Some((sources, formats, required)) = &self.time else { return Ok(None) };
        match first_with_pointer(caps, sources) {
            Some((found, pointer)) => read_time(found, pointer, formats).map(Some),
            None if *required => Err(Refusal::Missing { field: Field::Time, message: sources.missing.clone() }),
            None => Ok(None),
        }
    }

    /// The TTL attribute's value: epoch seconds.
    fn expiry(&self, caps: &[Option<Found<'_>>], event: Option<&time::EventTime>) -> Result<Option<Val>, Refusal> {
        let seconds = match &self.ttl {
            None => return Ok(None),
            Some(TtlPlan::After(after)) => match event {
                Some(t) => t.millis.div_euclid(1000).saturating_add(*after),
                None => return Ok(None),
            },
            Some(TtlPlan::Field(sources, format)) => match first_with_pointer(caps, sources) {
                Some((found, pointer)) => read_time(found, pointer, &[*format])?.millis.div_euclid(1000),
                None => return Ok(None),
            },
        };
        Ok(Some(Val::N(seconds.to_string().into())))
    }

    /// The version attribute's value: the number (canonical), or the time in epoch milliseconds.
    fn version_of(&self, caps: &[Option<Found<'_>>]) -> Result<Option<Val>, Refusal> {
        let Some((sources, kind, formats)) = &self.version else { return Ok(None) };
        let Some((found, pointer)) = first_with_pointer(caps, sources) else {
            return Err(Refusal::Missing { field: Field::Version, message: sources.missing.clone() });
        };
        let text = match kind {
            VersionKind::Time => read_time(found, pointer, formats)?.millis.to_string(),
            VersionKind::Number => {
                let n = found.text().unwrap_or_default();
                number::canonical(n).ok_or_else(|| self.bad_number(pointer, n))?
            }
        };
        Ok(Some(Val::N(text.into())))
    }

    fn projected_value(&self, p: &Projected, caps: &[Option<Found<'_>>]) -> Result<Option<Val>, Refusal> {
        let Some((found, pointer)) = first_with_pointer(caps, &p.sources) else {
            if p.required && p.default.is_none() {
                return Err(Refusal::Missing { field: Field::Attribute, message: p.sources.missing.clone() });
            }
            return Ok(p.default.clone());
        };
        Ok(Some(match found {
            Found::Str(s) => Val::S(s.as_ref().into()),
            Found::Bool(b) => Val::Bool(*b),
            Found::Num(n) => match (number::check(n), self.numbers) {
                (Ok(()), _) => Val::N((*n).into()),
                (Err(_), Numbers::AsString) => Val::S((*n).into()),
                (Err(_), Numbers::Refuse) => return Err(self.bad_number(pointer, n)),
            },
            Found::Raw(raw) => doc::convert(raw, 0, self.numbers).map_err(|e| unstorable(pointer, e))?,
        }))
    }
}

/// A time value read in `formats`, or why not.
/// The payload as text. Checked with SIMD (simdutf8: events are mostly ASCII with some emoji or
/// CJK, where std's check slows down); the byte where it stops being UTF-8 is std's answer.
fn utf8(payload: &[u8]) -> Result<&str, Refusal> {
    simdutf8::basic::from_utf8(payload)
        .or_else(|_| std::str::from_utf8(payload))
        .map_err(|e| Refusal::NotUtf8 { valid_up_to: e.valid_up_to() })
}

fn read_time(found: &Found<'_>, pointer: &str, formats: &[Format]) -> Result<time::EventTime, Refusal> {
    let text = found.text().unwrap_or_default();
    let parsed = match found {
        // A number is read by the epoch formats only; a string by all of them.
        Found::Num(_) => formats.iter().filter(|f| f.is_epoch()).find_map(|f| time::parse(text, &[*f])),
        Found::Str(_) => time::parse(text, formats),
        _ => None,
    };
    parsed.ok_or_else(|| {
        let labels: Vec<String> = formats.iter().map(|f| f.label().to_string()).collect();
        let words = either(&labels);
        let article = if words.starts_with("Twitter") { "a" } else { "an" };
        Refusal::BadTime {
            path: pointer::display(pointer),
            value: text.chars().take(64).collect(),
            formats: format!("{article} {words}"),
        }
    })
}

/// The first captured value among `slots`.
fn first<'c, 'a>(caps: &'c [Option<Found<'a>>], slots: &[usize]) -> Option<&'c Found<'a>> {
    slots.iter().find_map(|&s| caps[s].as_ref())
}

/// The first captured value among the sources, with its pointer.
fn first_with_pointer<'c, 'a, 's>(
    caps: &'c [Option<Found<'a>>],
    sources: &'s Sources,
) -> Option<(&'c Found<'a>, &'s str)> {
    sources.slots.iter().zip(&sources.pointers).find_map(|(&s, p)| caps[s].as_ref().map(|f| (f, p.as_str())))
}

fn check_key_size(k: &KeyPlan, v: &Val) -> Result<(), Refusal> {
    let bytes = match v {
        Val::S(s) | Val::N(s) => s.len(),
        Val::B(b) => b.len(),
        _ => 0,
    };
    if bytes > k.max_bytes {
        return Err(Refusal::KeyTooLong { attribute: k.attribute.clone(), bytes });
    }
    Ok(())
}

/// A value DynamoDB cannot store, at `pointer` then the place inside it.
fn unstorable(pointer: &str, e: doc::Unstorable) -> Refusal {
    let mut path: Vec<String> = pointer::parse(pointer).unwrap_or_default();
    path.extend(e.path);
    let why = match e.why {
        doc::Why::TooDeep => format!("nests maps and lists deeper than DynamoDB's {} levels", doc::MAX_DEPTH),
        doc::Why::Number(text, unfit) => format!("{text} {unfit}"),
        doc::Why::EmptyName => "has a field named \"\" (DynamoDB attribute names hold at least one character)".into(),
        doc::Why::LongName => "has a field name of 64 KB or more".into(),
        doc::Why::Duplicate(name) => format!("has the field {name:?} twice"),
        doc::Why::LoneSurrogate => "has a \\u escape that is half of a UTF-16 surrogate pair".into(),
    };
    Refusal::Unstorable { path: path.join("."), why }
}

#[cfg(test)]
mod fits_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod walk_tests;
