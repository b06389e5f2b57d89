//! The sections of a schema file, each read into its part of `Spec`: the keys, the Kinesis key,
//! the time, the TTL, the version, the item and the required fields, and the attribute names they
//! share, checked across sections.

use serde_json::{Map, Value};

use super::read::{Reader, at, kind};
use super::*;

impl Reader {
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

    pub(super) fn spec(&mut self, v: &Value) -> Option<Spec> {
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
            None => crate::schema::pointer::parse(&from.first()?.pointer).ok()?.pop().unwrap_or_default(),
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
            if let Err(why) = crate::schema::pointer::parse(&pointer)
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
