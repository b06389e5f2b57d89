//! The schema file as written: TOML or JSON, read field by field so that every problem is named
//! with its place and what to do (`Problem`), then held as `Spec`, whose JSON (`canonical`) is what
//! the function reads at init. Turning a spec into something that reads events is `compile`'s job.

use serde::Serialize;
use serde_json::{Map, Value};

use super::decode;
use crate::time::{self, Format};

/// One thing wrong with a schema file: what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong, naming the field (`partition_key.type: "X" is not S, N or B`).
    pub what: String,
    /// What to do about it.
    pub hint: String,
}

/// A JSON type a value may have where a schema reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    /// A JSON string.
    String,
    /// Any JSON number.
    Number,
    /// A JSON number written without a fraction or an exponent.
    Integer,
    /// true or false.
    Boolean,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
    /// Anything but null.
    Any,
}

impl JsonType {
    const ALL: [(&'static str, JsonType); 7] = [
        ("string", JsonType::String),
        ("number", JsonType::Number),
        ("integer", JsonType::Integer),
        ("boolean", JsonType::Boolean),
        ("object", JsonType::Object),
        ("array", JsonType::Array),
        ("any", JsonType::Any),
    ];
}

/// The kinds a list of JSON types accepts.
pub fn kinds(types: &[JsonType]) -> decode::Kinds {
    types.iter().fold(0, |k, t| {
        k | match t {
            JsonType::String => decode::STRING,
            JsonType::Number => decode::FRACTION | decode::INTEGER,
            JsonType::Integer => decode::INTEGER,
            JsonType::Boolean => decode::BOOLEAN,
            JsonType::Object => decode::OBJECT,
            JsonType::Array => decode::ARRAY,
            JsonType::Any => decode::ANY,
        }
    })
}

/// The DynamoDB type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary (the event holds it as base64 text).
    B,
}

impl KeyType {
    /// The type's letter, as DynamoDB and CloudFormation spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        }
    }

    /// JSON types a source of this key takes when the schema says none.
    fn default_json(self) -> Vec<JsonType> {
        match self {
            KeyType::S => vec![JsonType::String, JsonType::Number],
            KeyType::N => vec![JsonType::Number],
            KeyType::B => vec![JsonType::String],
        }
    }
}

/// Where a value is read from: a JSON Pointer (RFC 6901) and the JSON types it may have there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// RFC 6901 pointer into the event, `/user/name`.
    pub pointer: String,
    /// JSON types allowed at the pointer; another type there refuses the record.
    pub json: Vec<JsonType>,
}

/// A key attribute of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySpec {
    /// Attribute name.
    pub attribute: String,
    /// DynamoDB type.
    #[serde(rename = "type")]
    pub key_type: KeyType,
    /// Sources, tried in order: the first present and non-empty one is the key.
    pub from: Vec<Source>,
    /// The quarantine reason when no source has a value (default: `no <attribute> (<paths>)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// The partition key the producer gives Kinesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KinesisSpec {
    /// Sources, tried in order (default: the table's partition key's).
    pub partition_key: Vec<Source>,
    /// The reason a line is refused when none has a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// The event time, stored as ISO-8601 UTC with milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeSpec {
    /// Attribute name (default `Timestamp`).
    pub attribute: String,
    /// Sources, tried in order.
    pub from: Vec<Source>,
    /// Formats, tried in order.
    pub formats: Vec<Format>,
    /// A record without a time is refused (default true).
    pub required: bool,
    /// The reason when it is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// Where an item's expiry (DynamoDB TTL, epoch seconds) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtlFrom {
    /// A field of the event, in a time format.
    Field {
        /// Sources, tried in order.
        from: Vec<Source>,
        /// Its format (default epoch_seconds).
        format: Format,
    },
    /// The event time plus this many seconds.
    After(u64),
}

/// The table's TTL attribute, and where its value comes from: `from` (and `format`), or `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TtlSpec {
    /// Attribute name; the table's TTL is enabled on it.
    pub attribute: String,
    /// Sources of the expiry, when it is a field of the event.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Source>,
    /// The field's format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// The expiry as a duration after the event time, in seconds (`"2592000s"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl TtlSpec {
    /// Where the expiry comes from.
    pub fn expiry(&self) -> TtlFrom {
        match &self.after {
            Some(a) => TtlFrom::After(time::parse_duration(a).map_or(0, |d| d.as_secs())),
            None => TtlFrom::Field { from: self.from.clone(), format: self.format.unwrap_or(Format::EpochSeconds) },
        }
    }
}

/// What a version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionKind {
    /// A JSON number, compared by value.
    Number,
    /// A time, compared as epoch milliseconds.
    Time,
}

/// Ordering: a write never replaces an item holding a newer version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionSpec {
    /// Attribute name (default `Version`), stored as a number.
    pub attribute: String,
    /// Sources, tried in order.
    pub from: Vec<Source>,
    /// Number or time.
    #[serde(rename = "type")]
    pub kind: VersionKind,
    /// Formats of a time version.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<Format>,
    /// The reason when it is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// What an item holds besides its keys, time, TTL and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreMode {
    /// Every top-level field of the event, as DynamoDB types (objects → M, arrays → L, …).
    Document,
    /// Only the attributes listed.
    Projection,
}

/// One projected attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributeSpec {
    /// Attribute name (default: the pointer's last segment).
    pub attribute: String,
    /// Sources, tried in order: the first present (non-null) one is stored.
    pub from: Vec<Source>,
    /// Stored when no source has a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// A record without it (and without a default) is refused.
    pub required: bool,
    /// The reason then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// The item's contents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemSpec {
    /// Document or projection.
    pub store: StoreMode,
    /// The projected attributes (projection only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeSpec>,
}

/// A field every record must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// RFC 6901 pointer.
    pub pointer: String,
    /// JSON types allowed.
    pub json: Vec<JsonType>,
    /// The reason when it is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// What happens to a number DynamoDB's number type cannot hold (over 38 digits, out of range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberPolicy {
    /// The record is quarantined.
    Quarantine,
    /// The number is stored as a string of its text.
    String,
}

/// A schema file, read and checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    /// Name (`clickstream`): shown by `status`, picks the synthetic events that fit it.
    pub name: String,
    /// What the schema is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What one event is called in reasons: "not a JSON <noun>".
    pub noun: String,
    /// The table's partition key.
    pub partition_key: KeySpec,
    /// The table's sort key, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<KeySpec>,
    /// The producer's Kinesis partition key.
    pub kinesis: KinesisSpec,
    /// The event time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeSpec>,
    /// The TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<TtlSpec>,
    /// Ordering by version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionSpec>,
    /// What is stored.
    pub item: ItemSpec,
    /// Fields every record must have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<Requirement>,
    /// Numbers DynamoDB cannot hold.
    pub numbers: NumberPolicy,
}

impl Spec {
    /// The spec as compact JSON: what `deploy` puts beside the function, and `read` reads back.
    pub fn canonical(&self) -> String {
        // Plain structs of strings, lists and JSON values always serialize.
        serde_json::to_string(self).expect("a Spec always serializes")
    }
}

/// DynamoDB: key attribute names hold at most 255 bytes.
pub const MAX_KEY_NAME_BYTES: usize = 255;
/// DynamoDB: other attribute names hold under 64 KB.
pub const MAX_NAME_BYTES: usize = 65_535;

/// Reads schema text (`toml` true: TOML, else JSON) into a spec, or every problem found.
pub fn read(text: &str, toml: bool) -> Result<Spec, Vec<Problem>> {
    let value: Value = if toml {
        ::toml::from_str(text).map_err(|e| vec![syntax("TOML", &e.to_string())])?
    } else {
        serde_json::from_str(text).map_err(|e| vec![syntax("JSON", &e.to_string())])?
    };
    let mut r = Reader::default();
    let spec = r.spec(&value);
    match spec {
        Some(spec) if r.problems.is_empty() => Ok(spec),
        _ => Err(r.problems),
    }
}

/// A parser's error as one problem: its first line and the line it points at.
fn syntax(format: &str, message: &str) -> Problem {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("cannot be read").trim_end_matches(':').to_string();
    let detail = message.lines().last().map(str::trim).filter(|l| !l.is_empty() && *l != first);
    let what = match detail {
        Some(d) if format == "TOML" => format!("not valid TOML: {first}: {d}"),
        _ => format!("not valid {format}: {first}"),
    };
    Problem { what, hint: format!("fix the {format} syntax (see template/schemas/ for examples)") }
}

/// Reads fields one by one, noting every problem with its place.
#[derive(Default)]
struct Reader {
    problems: Vec<Problem>,
}

/// A field's place, for messages: `partition_key.type`.
fn at(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

impl Reader {
    fn problem(&mut self, what: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(Problem { what: what.into(), hint: hint.into() });
    }

    /// A table (JSON object) at `path` with only `known` keys; unknown keys are problems.
    fn table<'v>(&mut self, v: &'v Value, path: &str, known: &[&str]) -> Option<&'v Map<String, Value>> {
        let Some(map) = v.as_object() else {
            self.problem(format!("{path}: is {}, not a table", kind(v)), format!("write {path} as a table"));
            return None;
        };
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            self.problem(
                format!("{}: unknown field", at(path, key)),
                format!("the fields of {} are: {}", if path.is_empty() { "a schema" } else { path }, known.join(", ")),
            );
        }
        Some(map)
    }

    fn string(&mut self, map: &Map<String, Value>, path: &str, key: &str) -> Option<String> {
        match map.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                let place = at(path, key);
                self.problem(format!("{place}: is {}, not a string", kind(other)), format!("write {place} in quotes"));
                None
            }
        }
    }

    fn boolean(&mut self, map: &Map<String, Value>, path: &str, key: &str, default: bool) -> bool {
        match map.get(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                let place = at(path, key);
                self.problem(
                    format!("{place}: is {}, not true or false", kind(other)),
                    format!("set {place} = true or false"),
                );
                default
            }
        }
    }

    /// A value out of a fixed list of names.
    fn choice<T: Copy>(&mut self, map: &Map<String, Value>, path: &str, key: &str, choices: &[(&str, T)]) -> Option<T> {
        let text = self.string(map, path, key)?;
        let found = choices.iter().find(|(n, _)| *n == text).map(|(_, c)| *c);
        if found.is_none() {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            let place = at(path, key);
            self.problem(
                format!("{place}: \"{text}\" is not one of {}", names.join(", ")),
                format!("set {place} to one of: {}", names.join(", ")),
            );
        }
        found
    }

    /// A name as the item's attribute: 1 byte to `max` bytes.
    fn attribute_name(&mut self, name: String, place: &str, max: usize) -> Option<String> {
        if name.is_empty() || name.len() > max {
            self.problem(
                format!(
                    "{place}: \"{}\" is {} bytes, not 1 to {max}",
                    name.chars().take(40).collect::<String>(),
                    name.len()
                ),
                format!("give {place} a name of 1 to {max} bytes"),
            );
            return None;
        }
        Some(name)
    }

    /// `json = "string"` or `json = ["string", "number"]`.
    fn json_types(&mut self, v: &Value, place: &str) -> Option<Vec<JsonType>> {
        let names: Vec<&Value> = match v {
            Value::Array(list) => list.iter().collect(),
            one => vec![one],
        };
        let mut out = Vec::new();
        for n in names {
            match n.as_str().and_then(|s| JsonType::ALL.iter().find(|(name, _)| *name == s)) {
                Some((_, t)) => out.push(*t),
                None => {
                    let all: Vec<&str> = JsonType::ALL.iter().map(|(n, _)| *n).collect();
                    self.problem(format!("{place}: {n} is not a JSON type"), format!("use {}", all.join(", ")));
                    return None;
                }
            }
        }
        (!out.is_empty()).then_some(out).or_else(|| {
            self.problem(format!("{place}: no JSON type given"), "name at least one type, or leave json out");
            None
        })
    }

    /// `from = "/a"`, `from = ["/a", "/b"]`, or `from = [{ pointer = "/a", json = "string" }, …]`;
    /// `json` (the field's, when a source names none) applies to every source without its own.
    fn sources(&mut self, map: &Map<String, Value>, path: &str, key: &str, json: &[JsonType]) -> Option<Vec<Source>> {
        let place = at(path, key);
        let Some(v) = map.get(key) else {
            self.problem(
                format!("{place}: missing"),
                format!("give {place} the JSON Pointer of the value, e.g. \"/id\""),
            );
            return None;
        };
        let items: Vec<&Value> = match v {
            Value::Array(list) if !list.is_empty() => list.iter().collect(),
            Value::Array(_) => {
                self.problem(format!("{place}: is empty"), format!("give {place} at least one JSON Pointer"));
                return None;
            }
            one => vec![one],
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let here = format!("{place}[{i}]");
            let (pointer, own) = match item {
                Value::String(p) => (p.clone(), None),
                Value::Object(_) => {
                    let m = self.table(item, &here, &["pointer", "json"])?;
                    let p = self.string(m, &here, "pointer");
                    let j = m.get("json").and_then(|j| self.json_types(j, &at(&here, "json")));
                    (p?, j)
                }
                other => {
                    self.problem(
                        format!("{here}: is {}, not a JSON Pointer", kind(other)),
                        "write pointers as strings, e.g. \"/user/id\"",
                    );
                    return None;
                }
            };
            if let Err(why) = super::pointer::parse(&pointer) {
                self.problem(
                    format!("{here}: {pointer:?} {why}"),
                    "write an RFC 6901 JSON Pointer: \"/field/nested\" (~1 for /, ~0 for ~)",
                );
                continue;
            }
            if pointer.is_empty() {
                self.problem(format!("{here}: \"\" points at the whole event"), "point at a field, e.g. \"/id\"");
                continue;
            }
            out.push(Source { pointer, json: own.unwrap_or_else(|| json.to_vec()) });
        }
        Some(out)
    }

    fn key(&mut self, v: &Value, path: &str) -> Option<KeySpec> {
        let map = self.table(v, path, &["attribute", "type", "from", "json", "missing"])?;
        let attribute = self.string(map, path, "attribute");
        let attribute = attribute.and_then(|a| self.attribute_name(a, &at(path, "attribute"), MAX_KEY_NAME_BYTES));
        if !map.contains_key("attribute") {
            self.problem(
                format!("{path}.attribute: missing"),
                format!("name the key's attribute: {path}.attribute = \"Id\""),
            );
        }
        let key_type = if map.contains_key("type") {
            self.choice(map, path, "type", &[("S", KeyType::S), ("N", KeyType::N), ("B", KeyType::B)])
        } else {
            Some(KeyType::S)
        };
        let json = match map.get("json") {
            Some(j) => self.json_types(j, &at(path, "json")),
            None => key_type.map(KeyType::default_json),
        };
        let from = self.sources(map, path, "from", json.as_deref().unwrap_or_default());
        if let (Some(t), Some(sources)) = (key_type, &from) {
            self.key_json_fits(t, sources, path);
        }
        let missing = self.string(map, path, "missing");
        Some(KeySpec { attribute: attribute?, key_type: key_type?, from: from?, missing })
    }

    /// A key's sources may hold only what its type can be made from.
    fn key_json_fits(&mut self, t: KeyType, sources: &[Source], path: &str) {
        let allowed: &[JsonType] = match t {
            KeyType::S => &[JsonType::String, JsonType::Number, JsonType::Integer],
            KeyType::N => &[JsonType::Number, JsonType::Integer],
            KeyType::B => &[JsonType::String],
        };
        for s in sources {
            if let Some(bad) = s.json.iter().find(|j| !allowed.contains(j)) {
                let names: Vec<String> = allowed.iter().map(|j| format!("{j:?}").to_lowercase()).collect();
                self.problem(
                    format!(
                        "{path}: a key of type {} cannot be made from a JSON {} ({})",
                        t.as_str(),
                        format!("{bad:?}").to_lowercase(),
                        s.pointer
                    ),
                    format!("let {path} read only {}", names.join(" or ")),
                );
            }
        }
    }

    fn spec(&mut self, v: &Value) -> Option<Spec> {
        const FIELDS: [&str; 12] = [
            "name",
            "description",
            "noun",
            "partition_key",
            "sort_key",
            "kinesis",
            "time",
            "ttl",
            "version",
            "item",
            "require",
            "numbers",
        ];
        let map = self.table(v, "", &FIELDS)?;
        let name = self.name(map);
        let description = self.string(map, "", "description");
        let noun = self.string(map, "", "noun").unwrap_or_else(|| "event".into());
        let partition_key = match map.get("partition_key") {
            Some(pk) => self.key(pk, "partition_key"),
            None => {
                self.problem("partition_key: missing", "add a [partition_key] table: attribute, type, from");
                None
            }
        };
        let sort_key = map.get("sort_key").and_then(|sk| self.key(sk, "sort_key"));
        let kinesis = self.kinesis(map, partition_key.as_ref());
        let time = map.get("time").and_then(|t| self.time(t));
        let ttl = map.get("ttl").and_then(|t| self.ttl(t, time.is_some()));
        let version = map.get("version").and_then(|t| self.version(t, time.as_ref()));
        let item = self.item(map.get("item"));
        let require = self.requirements(map.get("require"));
        let numbers = if map.contains_key("numbers") {
            self.choice(
                map,
                "",
                "numbers",
                &[("quarantine", NumberPolicy::Quarantine), ("string", NumberPolicy::String)],
            )
        } else {
            Some(NumberPolicy::Quarantine)
        };
        let spec = Spec {
            name: name?,
            description,
            noun,
            partition_key: partition_key?,
            sort_key,
            kinesis: kinesis?,
            time,
            ttl,
            version,
            item: item?,
            require,
            numbers: numbers?,
        };
        self.check_attribute_names(&spec);
        Some(spec)
    }

    fn name(&mut self, map: &Map<String, Value>) -> Option<String> {
        let Some(name) = self.string(map, "", "name") else {
            if !map.contains_key("name") {
                self.problem("name: missing", "give the schema a name: name = \"clickstream\"");
            }
            return None;
        };
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            self.problem(
                format!("name: \"{name}\" is not 1-64 lowercase letters, digits, - or _"),
                "name it like clickstream or iot-v2",
            );
            return None;
        }
        Some(name)
    }

    fn kinesis(&mut self, map: &Map<String, Value>, pk: Option<&KeySpec>) -> Option<KinesisSpec> {
        let default = || pk.map(|k| k.from.clone());
        let Some(v) = map.get("kinesis") else {
            return Some(KinesisSpec { partition_key: default()?, missing: None });
        };
        let m = self.table(v, "kinesis", &["partition_key", "json", "missing"])?;
        let json = match m.get("json") {
            Some(j) => self.json_types(j, "kinesis.json")?,
            None => vec![JsonType::String, JsonType::Number],
        };
        let partition_key = if m.contains_key("partition_key") {
            self.sources(m, "kinesis", "partition_key", &json)?
        } else {
            default()?
        };
        for s in &partition_key {
            if let Some(bad) =
                s.json.iter().find(|j| !matches!(j, JsonType::String | JsonType::Number | JsonType::Integer))
            {
                self.problem(
                    format!(
                        "kinesis.partition_key: a Kinesis partition key cannot be made from a JSON {bad:?} ({})",
                        s.pointer
                    ),
                    "let kinesis.partition_key read strings or numbers",
                );
            }
        }
        let missing = self.string(m, "kinesis", "missing");
        Some(KinesisSpec { partition_key, missing })
    }

    /// `formats = "rfc3339"` or a list; the JSON types their sources take follow from them.
    fn formats(&mut self, m: &Map<String, Value>, path: &str, key: &str) -> Option<Vec<Format>> {
        let place = at(path, key);
        let v = m.get(key)?;
        let list: Vec<&Value> = match v {
            Value::Array(l) => l.iter().collect(),
            one => vec![one],
        };
        let mut out = Vec::new();
        for f in list {
            match f.as_str().and_then(|s| Format::ALL.iter().find(|(n, _)| *n == s)) {
                Some((_, f)) => out.push(*f),
                None => {
                    let names: Vec<&str> = Format::ALL.iter().map(|(n, _)| *n).collect();
                    self.problem(format!("{place}: {f} is not a time format"), format!("use {}", names.join(", ")));
                    return None;
                }
            }
        }
        if out.is_empty() {
            self.problem(
                format!("{place}: is empty"),
                format!("name at least one of {}", Format::ALL.map(|(n, _)| n).join(", ")),
            );
            return None;
        }
        Some(out)
    }

    fn time(&mut self, v: &Value) -> Option<TimeSpec> {
        let m = self.table(v, "time", &["attribute", "from", "formats", "required", "missing"])?;
        let formats = if m.contains_key("formats") {
            self.formats(m, "time", "formats")
        } else {
            self.problem(
                "time.formats: missing",
                format!("name the time's formats: {}", Format::ALL.map(|(n, _)| n).join(", ")),
            );
            None
        };
        let json = time_json(formats.as_deref().unwrap_or_default());
        let from = self.sources(m, "time", "from", &json);
        let attribute = self.string(m, "time", "attribute").unwrap_or_else(|| "Timestamp".into());
        let attribute = self.attribute_name(attribute, "time.attribute", MAX_NAME_BYTES);
        let required = self.boolean(m, "time", "required", true);
        let missing = self.string(m, "time", "missing");
        Some(TimeSpec { attribute: attribute?, from: from?, formats: formats?, required, missing })
    }

    fn ttl(&mut self, v: &Value, has_time: bool) -> Option<TtlSpec> {
        let m = self.table(v, "ttl", &["attribute", "from", "format", "after"])?;
        let attribute = match self.string(m, "ttl", "attribute") {
            Some(a) => self.attribute_name(a, "ttl.attribute", MAX_KEY_NAME_BYTES),
            None => {
                self.problem("ttl.attribute: missing", "name the TTL attribute: ttl.attribute = \"ExpiresAt\"");
                None
            }
        };
        let spec = match (m.contains_key("from"), m.contains_key("after")) {
            (true, false) => {
                let format = if m.contains_key("format") {
                    self.choice(m, "ttl", "format", &Format::ALL)
                } else {
                    Some(Format::EpochSeconds)
                };
                let from = self.sources(m, "ttl", "from", &time_json(&[format.unwrap_or(Format::EpochSeconds)]));
                TtlSpec { attribute: attribute?, from: from?, format, after: None }
            }
            (false, true) => {
                let text = self.string(m, "ttl", "after")?;
                let Some(d) = time::parse_duration(&text) else {
                    self.problem(
                        format!("ttl.after: \"{text}\" is not a duration"),
                        "write a whole number and a unit: 90s, 15m, 12h, 30d, 2w",
                    );
                    return None;
                };
                if !has_time {
                    self.problem(
                        "ttl.after: counts from the event time, but the schema has no [time]",
                        "add a [time] table, or read the expiry from a field: ttl.from",
                    );
                    return None;
                }
                TtlSpec {
                    attribute: attribute?,
                    from: Vec::new(),
                    format: None,
                    after: Some(format!("{}s", d.as_secs())),
                }
            }
            _ => {
                self.problem(
                    "ttl: give exactly one of from and after",
                    "ttl.from = \"/expires_at\" (epoch seconds), or ttl.after = \"30d\" (after the event time)",
                );
                return None;
            }
        };
        Some(spec)
    }

    fn version(&mut self, v: &Value, time: Option<&TimeSpec>) -> Option<VersionSpec> {
        let m = self.table(v, "version", &["attribute", "from", "type", "formats", "missing"])?;
        let kind = if m.contains_key("type") {
            self.choice(m, "version", "type", &[("number", VersionKind::Number), ("time", VersionKind::Time)])?
        } else {
            VersionKind::Number
        };
        let formats = match kind {
            VersionKind::Number => {
                if m.contains_key("formats") {
                    self.problem(
                        "version.formats: only a time version has formats",
                        "set version.type = \"time\", or leave formats out",
                    );
                }
                Vec::new()
            }
            VersionKind::Time if m.contains_key("formats") => self.formats(m, "version", "formats")?,
            VersionKind::Time => match time {
                Some(t) => t.formats.clone(),
                None => {
                    self.problem(
                        "version.formats: missing",
                        "name the version's time formats, e.g. formats = [\"rfc3339\"]",
                    );
                    return None;
                }
            },
        };
        let json = match kind {
            VersionKind::Number => vec![JsonType::Number],
            VersionKind::Time => time_json(&formats),
        };
        let from = self.sources(m, "version", "from", &json);
        let attribute = self.string(m, "version", "attribute").unwrap_or_else(|| "Version".into());
        let attribute = self.attribute_name(attribute, "version.attribute", MAX_KEY_NAME_BYTES);
        let missing = self.string(m, "version", "missing");
        Some(VersionSpec { attribute: attribute?, from: from?, kind, formats, missing })
    }

    fn item(&mut self, v: Option<&Value>) -> Option<ItemSpec> {
        let Some(v) = v else {
            return Some(ItemSpec { store: StoreMode::Document, attributes: Vec::new() });
        };
        let m = self.table(v, "item", &["store", "attributes"])?;
        let store = if m.contains_key("store") {
            self.choice(
                m,
                "item",
                "store",
                &[("document", StoreMode::Document), ("projection", StoreMode::Projection)],
            )?
        } else {
            StoreMode::Document
        };
        let attributes = match (store, m.get("attributes")) {
            (_, None) => Vec::new(),
            (StoreMode::Document, Some(_)) => {
                self.problem(
                    "item.attributes: only read with store = \"projection\"",
                    "set item.store = \"projection\", or leave the attributes out",
                );
                return None;
            }
            (StoreMode::Projection, Some(Value::Array(list))) => list
                .iter()
                .enumerate()
                .filter_map(|(i, a)| self.attribute(a, &format!("item.attributes[{i}]")))
                .collect(),
            (StoreMode::Projection, Some(other)) => {
                self.problem(
                    format!("item.attributes: is {}, not a list", kind(other)),
                    "write each as [[item.attributes]]",
                );
                return None;
            }
        };
        Some(ItemSpec { store, attributes })
    }

    fn attribute(&mut self, v: &Value, path: &str) -> Option<AttributeSpec> {
        let m = self.table(v, path, &["attribute", "from", "json", "default", "required", "missing"])?;
        let json = match m.get("json") {
            Some(j) => self.json_types(j, &at(path, "json"))?,
            None => vec![JsonType::Any],
        };
        let from = self.sources(m, path, "from", &json)?;
        let attribute = match self.string(m, path, "attribute") {
            Some(a) => a,
            None => super::pointer::parse(&from.first()?.pointer).ok()?.pop().unwrap_or_default(),
        };
        let attribute = self.attribute_name(attribute, &at(path, "attribute"), MAX_NAME_BYTES)?;
        let default = m.get("default").cloned();
        let required = self.boolean(m, path, "required", false);
        let missing = self.string(m, path, "missing");
        Some(AttributeSpec { attribute, from, default, required, missing })
    }

    fn requirements(&mut self, v: Option<&Value>) -> Vec<Requirement> {
        let Some(v) = v else { return Vec::new() };
        let Some(list) = v.as_array() else {
            self.problem(
                format!("require: is {}, not a list", kind(v)),
                "write each as [[require]] with pointer and json",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let path = format!("require[{i}]");
            let Some(m) = self.table(r, &path, &["pointer", "json", "missing"]) else { continue };
            let Some(pointer) = self.string(m, &path, "pointer") else {
                if !m.contains_key("pointer") {
                    self.problem(
                        format!("{path}.pointer: missing"),
                        "give the JSON Pointer of the field every record needs",
                    );
                }
                continue;
            };
            if let Err(why) = super::pointer::parse(&pointer)
                .and_then(|s| if s.is_empty() { Err("points at the whole event") } else { Ok(s) })
            {
                self.problem(
                    format!("{path}.pointer: {pointer:?} {why}"),
                    "write an RFC 6901 JSON Pointer: \"/field/nested\"",
                );
                continue;
            }
            let json = match m.get("json") {
                Some(j) => self.json_types(j, &at(&path, "json")),
                None => Some(vec![JsonType::Any]),
            };
            let missing = self.string(m, &path, "missing");
            if let Some(json) = json {
                out.push(Requirement { pointer, json, missing });
            }
        }
        out
    }

    /// Two attributes of an item cannot share a name.
    fn check_attribute_names(&mut self, spec: &Spec) {
        let mut names: Vec<(&str, String)> = vec![(spec.partition_key.attribute.as_str(), "partition_key".into())];
        names.extend(spec.sort_key.as_ref().map(|k| (k.attribute.as_str(), "sort_key".into())));
        names.extend(spec.time.as_ref().map(|t| (t.attribute.as_str(), "time".into())));
        names.extend(spec.ttl.as_ref().map(|t| (t.attribute.as_str(), "ttl".into())));
        names.extend(spec.version.as_ref().map(|v| (v.attribute.as_str(), "version".into())));
        for (i, a) in spec.item.attributes.iter().enumerate() {
            names.push((a.attribute.as_str(), format!("item.attributes[{i}]")));
        }
        for (i, (name, place)) in names.iter().enumerate() {
            if let Some((_, first)) = names[..i].iter().find(|(n, _)| n == name) {
                self.problem(
                    format!("{place}.attribute: \"{name}\" is already {first}'s attribute"),
                    format!("give {place} another attribute name"),
                );
            }
        }
    }
}

/// The JSON types a time in `formats` is written as.
fn time_json(formats: &[Format]) -> Vec<JsonType> {
    if formats.iter().any(|f| f.is_epoch()) { vec![JsonType::Number, JsonType::String] } else { vec![JsonType::String] }
}

/// A value's JSON kind, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}
