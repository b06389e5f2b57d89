//! A checked `Spec` compiled into a `Schema`: every pointer the spec names becomes a slot of one
//! walk plan (`decode::Plan`), with the JSON kinds it may hold, and each part of the item (keys,
//! time, TTL, version, projected attributes, required fields) a plan over those slots. Problems only
//! the whole shows (one pointer read as two types that never meet) are noted like the spec's own.

use super::*;

/// Turns a spec into a plan and positions, noting what only the whole shows.
#[derive(Default)]
pub(super) struct Compiler {
    pub(super) plan: Plan,
    pub(super) problems: Vec<Problem>,
}

impl Compiler {
    fn sources(
        &mut self,
        sources: &[spec::Source],
        place: &str,
        missing: Option<&String>,
        default: impl FnOnce(&str) -> String,
    ) -> Sources {
        let mut slots = Vec::new();
        for s in sources {
            let kinds: Kinds = spec::kinds(&s.json);
            match self.plan.add(&s.pointer, kinds) {
                Ok(slot) => slots.push(slot),
                Err(other) => self.problems.push(Problem {
                    what: format!(
                        "{place}: {} is read as {} here and as {} elsewhere",
                        s.pointer,
                        decode::expecting(kinds),
                        decode::expecting(other)
                    ),
                    hint: "read each pointer as one JSON type wherever the schema names it".into(),
                }),
            }
        }
        let paths: Vec<String> = sources.iter().map(|s| pointer::display(&s.pointer)).collect();
        Sources {
            slots,
            pointers: sources.iter().map(|s| s.pointer.clone()).collect(),
            missing: missing.cloned().unwrap_or_else(|| default(&either(&paths))),
        }
    }

    fn key(&mut self, k: &spec::KeySpec, place: &str, max_bytes: usize) -> KeyPlan {
        let attribute = k.attribute.clone();
        KeyPlan {
            attribute: k.attribute.as_str().into(),
            key_type: k.key_type,
            max_bytes,
            sources: self.sources(&k.from, place, k.missing.as_ref(), |p| format!("no {attribute} ({p})")),
        }
    }

    pub(super) fn schema(&mut self, spec: Spec) -> Schema {
        let partition = self.key(&spec.partition_key, "partition_key", MAX_PARTITION_KEY_BYTES);
        let sort = spec.sort_key.as_ref().map(|k| self.key(k, "sort_key", MAX_SORT_KEY_BYTES));
        let kinesis = self.sources(&spec.kinesis.partition_key, "kinesis", spec.kinesis.missing.as_ref(), |p| {
            format!("no {p} for a partition key")
        });
        let mut names: Vec<Box<str>> = vec![spec.partition_key.attribute.as_str().into()];
        names.extend(spec.sort_key.as_ref().map(|k| k.attribute.as_str().into()));
        let mut at = Positions::default();
        let time = spec.time.as_ref().map(|t| {
            at.time = names.len();
            names.push(t.attribute.as_str().into());
            (
                self.sources(&t.from, "time", t.missing.as_ref(), |p| format!("no event time ({p})")),
                t.formats.clone(),
                t.required,
            )
        });
        let ttl = spec.ttl.as_ref().map(|t| {
            at.ttl = names.len();
            names.push(t.attribute.as_str().into());
            match t.expiry() {
                spec::TtlFrom::After(secs) => TtlPlan::After(secs as i64),
                spec::TtlFrom::Field { from, format } => {
                    TtlPlan::Field(self.sources(&from, "ttl", None, |p| format!("no expiry ({p})")), format)
                }
            }
        });
        let version = spec.version.as_ref().map(|v| {
            at.version = names.len();
            names.push(v.attribute.as_str().into());
            (
                self.sources(&v.from, "version", v.missing.as_ref(), |p| format!("no version ({p})")),
                v.kind,
                v.formats.clone(),
            )
        });
        at.projected = names.len();
        let numbers = match spec.numbers {
            spec::NumberPolicy::Quarantine => Numbers::Refuse,
            spec::NumberPolicy::String => Numbers::AsString,
        };
        let projected = self.projected(&spec, &mut names, numbers);
        let required = self.required(&spec);
        let noun: Arc<str> = spec.noun.as_str().into();
        Schema {
            plan: std::mem::take(&mut self.plan),
            spec,
            noun,
            names,
            partition,
            sort,
            kinesis,
            time,
            ttl,
            version,
            projected,
            required,
            numbers,
            at,
        }
    }

    /// The projected attributes, their names appended to `names`.
    fn projected(&mut self, spec: &Spec, names: &mut Vec<Box<str>>, numbers: Numbers) -> Vec<Projected> {
        spec.item
            .attributes
            .iter()
            .enumerate()
            .map(|(i, a)| {
                names.push(a.attribute.as_str().into());
                let attribute = a.attribute.clone();
                let sources = self.sources(&a.from, &format!("item.attributes[{i}]"), a.missing.as_ref(), |p| {
                    format!("no {attribute} ({p})")
                });
                let default = a.default.as_ref().and_then(|d| self.default_value(d, i, numbers));
                Projected { sources, default, required: a.required }
            })
            .collect()
    }

    /// The fields every record must have.
    fn required(&mut self, spec: &Spec) -> Vec<Sources> {
        spec.require
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let s = spec::Source { pointer: r.pointer.clone(), json: r.json.clone() };
                self.sources(std::slice::from_ref(&s), &format!("require[{i}]"), r.missing.as_ref(), |p| {
                    format!("no {p} (required)")
                })
            })
            .collect()
    }

    /// A projected attribute's default, as a value (it must be storable itself).
    fn default_value(&mut self, d: &serde_json::Value, i: usize, numbers: Numbers) -> Option<Val> {
        match doc::convert(&d.to_string(), 0, numbers) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(Problem {
                    what: format!("item.attributes[{i}].default: {}", unstorable("", e)),
                    hint: "give a default DynamoDB can store".into(),
                });
                None
            }
        }
    }
}
