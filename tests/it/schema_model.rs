//! Random event schemas against random JSON events, through the handler (two batches into one
//! table): the table and the quarantine must equal what a model written here, independently of
//! the product's mapping code, says — keys present, missing, empty or of the wrong type, nesting
//! (and nesting past DynamoDB's 32 levels), numbers at and past DynamoDB's limits, unicode,
//! duplicate names, items near 400 KB, versions in and out of order.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use stream::process::{Batch, BatchOutcome, Event, MemoryStore, Options, Record, Target, handle};
use stream::schema::Schema;

/// A JSON value as the test writes it: numbers keep their text, objects may repeat a name.
#[derive(Debug, Clone, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// JSON text of `j`; `escape` writes non-ASCII characters as \u escapes.
fn text(j: &J, escape: bool, out: &mut String) {
    let string = |s: &str, out: &mut String| {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if escape && !c.is_ascii() => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    };
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(n) => out.push_str(n),
        J::Str(s) => string(s, out),
        J::Arr(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                text(v, escape, out);
            }
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(k, out);
                out.push(':');
                text(v, escape, out);
            }
            out.push('}');
        }
    }
}

// ---- The model: numbers ----

/// (negative, significant digits, exponent of the last digit), zero as no digits.
fn decimal(t: &str) -> (bool, String, i64) {
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (
            &t[..i],
            t[i + 1..].parse::<i64>().unwrap_or(if t[i + 1..].starts_with('-') { -1_000_000 } else { 1_000_000 }),
        ),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = format!("{int}{frac}").trim_start_matches('0').to_string();
    let mut exp = exp - frac.len() as i64;
    while digits.ends_with('0') {
        digits.pop();
        exp += 1;
    }
    if digits.is_empty() { (false, String::new(), 0) } else { (negative, digits, exp) }
}

/// DynamoDB takes it: 0, or at most 38 significant digits with 1E-130 <= |x| < 1E126.
fn fits(t: &str) -> bool {
    let (_, d, exp) = decimal(t);
    d.is_empty() || (d.len() <= 38 && (-130..=125).contains(&(exp + d.len() as i64 - 1)))
}

/// DynamoDB's own text of a number: plain decimal.
fn canonical(t: &str) -> String {
    let (neg, d, exp) = decimal(t);
    if d.is_empty() {
        return "0".into();
    }
    let body = if exp >= 0 {
        format!("{d}{}", "0".repeat(exp as usize))
    } else if (-exp as usize) < d.len() {
        let cut = d.len() - (-exp) as usize;
        format!("{}.{}", &d[..cut], &d[cut..])
    } else {
        format!("0.{}{d}", "0".repeat((-exp) as usize - d.len()))
    };
    if neg { format!("-{body}") } else { body }
}

fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    let (x, y): (f64, f64) = (canonical(a).parse().unwrap_or(0.0), canonical(b).parse().unwrap_or(0.0));
    x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
}

// ---- The model: values as DynamoDB holds them ----

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum V {
    S(String),
    N(String),
    B(Vec<u8>),
    Bool(bool),
    Null,
    L(Vec<V>),
    M(BTreeMap<String, V>),
}

fn size(v: &V) -> usize {
    match v {
        V::S(s) => s.len(),
        V::N(n) => n.bytes().filter(u8::is_ascii_digit).count().div_ceil(2) + 1,
        V::B(b) => b.len(),
        V::Bool(_) | V::Null => 1,
        V::L(l) => 3 + l.iter().map(|x| size(x) + 1).sum::<usize>(),
        V::M(m) => 3 + m.iter().map(|(k, x)| k.len() + size(x) + 1).sum::<usize>(),
    }
}

/// What the schema of this test keeps of a number DynamoDB cannot hold.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Numbers {
    Refuse,
    AsString,
}

/// A JSON value stored as a DynamoDB value at nesting `depth`; `None` when it cannot be.
fn store(j: &J, depth: usize, numbers: Numbers) -> Option<V> {
    Some(match j {
        J::Null => V::Null,
        J::Bool(b) => V::Bool(*b),
        J::Num(n) if fits(n) => V::N(n.clone()),
        J::Num(n) => match numbers {
            Numbers::AsString => V::S(n.clone()),
            Numbers::Refuse => return None,
        },
        J::Str(s) => V::S(s.clone()),
        J::Arr(items) => {
            if depth >= 32 {
                return None;
            }
            V::L(items.iter().map(|x| store(x, depth + 1, numbers)).collect::<Option<_>>()?)
        }
        J::Obj(members) => {
            if depth >= 32 {
                return None;
            }
            V::M(members_of(members, depth + 1, numbers)?)
        }
    })
}

fn members_of(members: &[(String, J)], depth: usize, numbers: Numbers) -> Option<BTreeMap<String, V>> {
    let mut out = BTreeMap::new();
    for (k, v) in members {
        if k.is_empty() || out.insert(k.clone(), store(v, depth, numbers)?).is_some() {
            return None;
        }
    }
    Some(out)
}

// ---- The model: schemas ----

/// The JSON kinds a field of the test's pool holds, by its declared type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Num,
    Int,
    StrOrNum,
    Obj,
    Arr,
    Any,
}

impl Kind {
    fn json(self) -> &'static str {
        match self {
            Kind::Str => r#"["string"]"#,
            Kind::Num => r#"["number"]"#,
            Kind::Int => r#"["integer"]"#,
            Kind::StrOrNum => r#"["string", "number"]"#,
            Kind::Obj => r#"["object"]"#,
            Kind::Arr => r#"["array"]"#,
            Kind::Any => r#"["any"]"#,
        }
    }

    fn takes(self, j: &J) -> bool {
        let integer = |n: &str| !n.contains(['.', 'e', 'E']);
        match (self, j) {
            (_, J::Null) => true,
            (Kind::Any, _) => true,
            (Kind::Str | Kind::StrOrNum, J::Str(_)) => true,
            (Kind::Num | Kind::StrOrNum, J::Num(_)) => true,
            (Kind::Int, J::Num(n)) => integer(n),
            (Kind::Obj, J::Obj(_)) | (Kind::Arr, J::Arr(_)) => true,
            _ => false,
        }
    }
}

/// The fields schemas read, each always with the same declared kind (as a real schema keeps one
/// pointer one type).
const POOL: [(&str, Kind); 10] = [
    ("/s1", Kind::Str),
    ("/s2", Kind::Str),
    ("/u/name", Kind::Str),
    ("/n1", Kind::Num),
    ("/i1", Kind::Int),
    ("/mix", Kind::StrOrNum),
    ("/obj", Kind::Obj),
    ("/arr", Kind::Arr),
    ("/list/1", Kind::Any),
    ("/é 🦀", Kind::Str),
];

fn segments(p: &str) -> Vec<String> {
    p[1..].split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect()
}

#[derive(Debug, Clone)]
struct Key {
    name: &'static str,
    ty: char,
    from: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Attr {
    name: &'static str,
    from: Vec<usize>,
    default: Option<J>,
    required: bool,
}

#[derive(Debug, Clone)]
struct ModelSchema {
    pk: Key,
    sk: Option<Key>,
    version: bool,
    time: Option<bool>,
    document: bool,
    attrs: Vec<Attr>,
    require: Vec<usize>,
    numbers: Numbers,
}

impl ModelSchema {
    /// The schema as a JSON schema file.
    fn json(&self) -> String {
        let sources = |from: &[usize]| {
            let list: Vec<String> = from
                .iter()
                .map(|&i| format!("{{\"pointer\": {:?}, \"json\": {}}}", POOL[i].0, POOL[i].1.json()))
                .collect();
            format!("[{}]", list.join(", "))
        };
        let key = |k: &Key| {
            format!("{{\"attribute\": \"{}\", \"type\": \"{}\", \"from\": {}}}", k.name, k.ty, sources(&k.from))
        };
        let mut fields = vec![
            "\"name\": \"model\"".to_string(),
            format!("\"numbers\": \"{}\"", if self.numbers == Numbers::Refuse { "quarantine" } else { "string" }),
            format!("\"partition_key\": {}", key(&self.pk)),
        ];
        if let Some(k) = &self.sk {
            fields.push(format!("\"sort_key\": {}", key(k)));
        }
        if let Some(required) = self.time {
            fields.push(format!("\"time\": {{\"attribute\": \"When\", \"from\": \"/t\", \"formats\": [\"rfc3339\", \"epoch_millis\"], \"required\": {required}}}"));
        }
        if self.version {
            fields.push("\"version\": {\"attribute\": \"Ver\", \"from\": \"/v\"}".into());
        }
        let attrs: Vec<String> = self
            .attrs
            .iter()
            .map(|a| {
                let default = a.default.as_ref().map_or(String::new(), |d| {
                    let mut t = String::new();
                    text(d, false, &mut t);
                    format!(", \"default\": {t}")
                });
                format!(
                    "{{\"attribute\": \"{}\", \"from\": {}, \"required\": {}{default}}}",
                    a.name,
                    sources(&a.from),
                    a.required
                )
            })
            .collect();
        let store = if self.document { "document" } else { "projection" };
        if attrs.is_empty() {
            fields.push(format!("\"item\": {{\"store\": \"{store}\"}}"));
        } else {
            fields.push(format!("\"item\": {{\"store\": \"{store}\", \"attributes\": [{}]}}", attrs.join(", ")));
        }
        if !self.require.is_empty() {
            let req: Vec<String> = self
                .require
                .iter()
                .map(|&r| format!("{{\"pointer\": {:?}, \"json\": {}}}", POOL[r].0, POOL[r].1.json()))
                .collect();
            fields.push(format!("\"require\": [{}]", req.join(", ")));
        }
        format!("{{{}}}", fields.join(", "))
    }

    /// Every pointer the schema reads (its keys', the Kinesis key's — the partition key's —, its
    /// attributes', its requirements', the time's and the version's).
    fn pointers(&self) -> Vec<(String, Kind)> {
        let mut out: Vec<(String, Kind)> = Vec::new();
        let mut add = |i: usize| out.push((POOL[i].0.to_string(), POOL[i].1));
        self.pk.from.iter().for_each(|&i| add(i));
        self.sk.iter().flat_map(|k| &k.from).for_each(|&i| add(i));
        self.attrs.iter().flat_map(|a| &a.from).for_each(|&i| add(i));
        self.require.iter().for_each(|&i| add(i));
        if self.time.is_some() {
            out.push(("/t".into(), Kind::StrOrNum));
        }
        if self.version {
            out.push(("/v".into(), Kind::Num));
        }
        out
    }
}

// ---- The model: one event ----

/// What a pointer finds: a value, nothing, or a type on the way that is not a container.
enum Found<'a> {
    Value(&'a J),
    Absent,
    WrongType,
}

/// Resolves `pointer` in `event`; `next` says which segments follow each prefix (an array is
/// walked only where an array index follows). A name twice in an object on the way refuses it.
fn resolve<'a>(event: &'a J, pointer: &str, next: &BTreeMap<Vec<String>, BTreeSet<String>>) -> Option<Found<'a>> {
    let segs = segments(pointer);
    let mut here = event;
    for (depth, seg) in segs.iter().enumerate() {
        let prefix = segs[..depth].to_vec();
        let following = next.get(&prefix).cloned().unwrap_or_default();
        here = match here {
            J::Null => return Some(Found::Absent),
            J::Obj(members) => {
                let named: Vec<&J> = members
                    .iter()
                    .filter(|(k, _)| following.contains(k))
                    .filter(|(k, _)| k == seg)
                    .map(|(_, v)| v)
                    .collect();
                let dup = members.iter().filter(|(k, _)| following.contains(k)).map(|(k, _)| k).collect::<Vec<_>>();
                if dup.len() != dup.iter().collect::<BTreeSet<_>>().len() {
                    return None;
                }
                match named.first() {
                    Some(v) => v,
                    None => return Some(Found::Absent),
                }
            }
            J::Arr(items) => {
                let indexed = following.iter().any(|s| {
                    s == "0" || (!s.starts_with('0') && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                });
                if !indexed {
                    return Some(Found::WrongType);
                }
                match seg
                    .parse::<usize>()
                    .ok()
                    .filter(|_| seg == "0" || !seg.starts_with('0'))
                    .and_then(|i| items.get(i))
                {
                    Some(v) => v,
                    None => return Some(Found::Absent),
                }
            }
            _ => return Some(Found::WrongType),
        };
    }
    Some(match here {
        J::Null => Found::Absent,
        v => Found::Value(v),
    })
}

/// The item the model says the event becomes (named values), or `None`: quarantined.
fn model_item(s: &ModelSchema, event: &J) -> Option<BTreeMap<String, V>> {
    let J::Obj(top) = event else { return None };
    let pointers = s.pointers();
    let mut next: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for (p, _) in &pointers {
        let segs = segments(p);
        for d in 0..segs.len() {
            next.entry(segs[..d].to_vec()).or_default().insert(segs[d].clone());
        }
    }
    // Every pointer is type-checked where it is, used or not.
    let mut found: BTreeMap<String, Option<J>> = BTreeMap::new();
    for (p, kind) in &pointers {
        match resolve(event, p, &next)? {
            Found::WrongType => return None,
            Found::Value(v) if !kind.takes(v) => return None,
            Found::Value(v) => found.insert(p.clone(), Some(v.clone())),
            Found::Absent => found.insert(p.clone(), None),
        };
    }
    let get = |i: usize| found.get(POOL[i].0).cloned().flatten();
    let mut item = BTreeMap::new();
    for k in [Some(&s.pk), s.sk.as_ref()].into_iter().flatten() {
        let mut value = None;
        for &i in &k.from {
            let v = match (k.ty, get(i)) {
                ('S', Some(J::Str(t))) if !t.is_empty() => V::S(t),
                ('S', Some(J::Num(n))) => V::S(n),
                ('N', Some(J::Num(n))) if fits(&n) => V::N(canonical(&n)),
                ('N', Some(J::Num(_))) => return None,
                _ => continue,
            };
            value = Some(v);
            break;
        }
        let v = value?;
        let bytes = match &v {
            V::S(t) | V::N(t) => t.len(),
            _ => 0,
        };
        if bytes > if std::ptr::eq(k, &s.pk) { 2048 } else { 1024 } {
            return None;
        }
        item.insert(k.name.to_string(), v);
    }
    if let Some(required) = s.time {
        match found.get("/t").cloned().flatten() {
            Some(J::Str(t)) => {
                let utc = chrono::DateTime::parse_from_rfc3339(&t)
                    .ok()
                    .map(|d| d.with_timezone(&chrono::Utc))
                    .or_else(|| epoch(&t))?;
                item.insert("When".into(), V::S(utc.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()));
            }
            Some(J::Num(n)) => item
                .insert("When".into(), V::S(epoch(&n)?.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()))
                .map_or((), drop),
            _ if required => return None,
            _ => {}
        }
    }
    if s.version {
        match found.get("/v").cloned().flatten() {
            Some(J::Num(n)) if fits(&n) => item.insert("Ver".into(), V::N(canonical(&n))),
            _ => return None,
        };
    }
    for a in &s.attrs {
        let v = match a.from.iter().find_map(|&i| get(i)) {
            Some(J::Num(n)) if !fits(&n) && s.numbers == Numbers::Refuse => return None,
            Some(j) => store(&j, 0, s.numbers)?,
            None => match (&a.default, a.required) {
                (Some(d), _) => store(d, 0, s.numbers)?,
                (None, true) => return None,
                (None, false) => continue,
            },
        };
        item.insert(a.name.to_string(), v);
    }
    for &r in &s.require {
        get(r)?;
    }
    if s.document {
        for (k, v) in members_of(top, 0, s.numbers)? {
            item.entry(k).or_insert(v);
        }
    }
    let bytes: usize = item.iter().map(|(k, v)| k.len() + size(v)).sum();
    (bytes <= 400 * 1024).then_some(item)
}

/// An epoch-milliseconds text as a time, within chrono's range.
fn epoch(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let ms: f64 = t.parse().ok()?;
    (ms.is_finite() && ms.abs() < 8e15).then(|| chrono::DateTime::from_timestamp_millis(ms.floor() as i64)).flatten()
}

// ---- The strategies ----

fn key(name: &'static str) -> impl Strategy<Value = Key> {
    prop_oneof![
        proptest::sample::subsequence(vec![0usize, 1, 2, 3, 4, 5, 9], 1..=2).prop_map(move |from| Key {
            name,
            ty: 'S',
            from
        }),
        proptest::sample::subsequence(vec![3usize, 4], 1..=2).prop_map(move |from| Key { name, ty: 'N', from }),
    ]
}

fn small_json() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        number().prop_map(J::Num),
        string().prop_map(J::Str),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
            proptest::collection::vec((name(), inner), 0..4).prop_map(J::Obj),
        ]
    })
}

fn schema() -> impl Strategy<Value = ModelSchema> {
    // Defaults are values a schema file can hold exactly (JSON files read numbers as f64).
    let simple = prop_oneof![
        "[a-z]{0,3}".prop_map(J::Str),
        (-100i32..100).prop_map(|n| J::Num(n.to_string())),
        any::<bool>().prop_map(J::Bool),
        proptest::collection::vec("[a-z]{0,2}".prop_map(J::Str), 0..3).prop_map(J::Arr),
    ];
    let attr = move |name: &'static str| {
        (
            proptest::sample::subsequence((0..POOL.len()).collect::<Vec<_>>(), 1..=2),
            proptest::option::of(simple.clone()),
            any::<bool>(),
        )
            .prop_map(move |(from, default, required)| Attr { name, from, default, required })
    };
    (
        key("Pk"),
        proptest::option::of(key("Sk")),
        any::<bool>(),
        proptest::option::of(any::<bool>()),
        any::<bool>(),
        proptest::collection::vec(attr("A1"), 0..=1),
        proptest::collection::vec(attr("A2"), 0..=1),
        proptest::sample::subsequence((0..POOL.len()).collect::<Vec<_>>(), 0..=1),
        prop_oneof![Just(Numbers::Refuse), Just(Numbers::AsString)],
    )
        .prop_map(|(pk, sk, version, time, document, a1, a2, require, numbers)| {
            let mut attrs = a1;
            attrs.extend(a2);
            let attrs = if document { Vec::new() } else { attrs };
            ModelSchema { pk, sk, version, time, document, attrs, require, numbers }
        })
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (-1000i64..1000).prop_map(|n| n.to_string()),
        1 => Just("1.50".to_string()),
        1 => Just("-0".to_string()),
        1 => Just("0.000".to_string()),
        1 => Just("9.9999999999999999999999999999999999999e125".to_string()),
        1 => Just("1e126".to_string()),
        1 => Just("1E-130".to_string()),
        1 => Just("1e-131".to_string()),
        1 => Just("12345678901234567890123456789012345678".to_string()),
        1 => Just("123456789012345678901234567890123456789".to_string()),
        1 => Just("1700000000123".to_string()),
        1 => Just("2.5e3".to_string()),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[a-c]{1,3}",
        1 => Just(String::new()),
        1 => Just("Zoë 🦀 山田".to_string()),
        1 => Just("2025-01-01T00:00:00Z".to_string()),
        1 => Just("1700000000123".to_string()),
        1 => Just("k".repeat(2049)),
        1 => Just("語".repeat(682)),
        1 => "\\PC{1,8}",
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![5 => "[a-d]{1,2}", 1 => Just(String::new()), 1 => Just("ü 🦀".to_string())]
}

/// A value for a field declared `kind`: mostly one of that kind, sometimes another, null or none.
fn field(kind: Kind) -> BoxedStrategy<Option<J>> {
    let right: BoxedStrategy<J> = match kind {
        Kind::Str => string().prop_map(J::Str).boxed(),
        Kind::Num | Kind::Int | Kind::StrOrNum => number().prop_map(J::Num).boxed(),
        Kind::Obj => proptest::collection::vec((name(), small_json()), 0..3).prop_map(J::Obj).boxed(),
        Kind::Arr => proptest::collection::vec(small_json(), 0..3).prop_map(J::Arr).boxed(),
        Kind::Any => small_json().boxed(),
    };
    prop_oneof![
        24 => right.prop_map(Some),
        1 => small_json().prop_map(Some),
        1 => Just(Some(J::Null)),
        2 => Just(None),
    ]
    .boxed()
}

/// An event: the pool's fields (some missing, mistyped, nested wrongly), a time, a version, and
/// other fields; rarely a list of 33 levels, a name twice, 400 KB of text, or not an object at all.
fn event() -> impl Strategy<Value = J> {
    let pool: Vec<BoxedStrategy<Option<J>>> = POOL.iter().map(|(_, k)| field(*k)).collect();
    let extras = proptest::collection::vec((name(), small_json()), 0..3);
    let time = prop_oneof![
        8 => Just(Some(J::Str("2025-01-01T10:00:00+02:00".into()))),
        3 => Just(Some(J::Num("1700000000123".into()))),
        1 => Just(Some(J::Str("soon".into()))),
        1 => Just(None),
    ];
    let version = prop_oneof![16 => (0u32..4).prop_map(|v| Some(J::Num(v.to_string()))), 1 => Just(None), 1 => Just(Some(J::Str("1".into())))];
    let rare = prop_oneof![
        20 => Just(None),
        1 => Just(Some(("deep".to_string(), (0..33).fold(J::Null, |j, _| J::Arr(vec![j]))))),
        1 => Just(Some(("big".to_string(), J::Str("x".repeat(409_000))))),
        1 => Just(Some(("s1".to_string(), J::Str("again".into())))),
    ];
    (pool, extras, time, version, rare, prop_oneof![30 => Just(true), 1 => Just(false)]).prop_map(
        |(fields, extras, time, version, rare, object)| {
            if !object {
                return J::Arr(vec![J::Num("1".into())]);
            }
            let mut top: Vec<(String, J)> = Vec::new();
            let mut nested: BTreeMap<String, Vec<(String, J)>> = BTreeMap::new();
            for ((pointer, _), value) in POOL.iter().zip(fields) {
                let Some(value) = value else { continue };
                let segs = segments(pointer);
                match segs.as_slice() {
                    [one] => top.push((one.clone(), value)),
                    [parent, child] => nested.entry(parent.clone()).or_default().push((child.clone(), value)),
                    _ => unreachable!("the pool's pointers are one or two deep"),
                }
            }
            for (parent, members) in nested {
                // `list` is an array (index 1), `u` an object.
                let v = if parent == "list" {
                    J::Arr(vec![J::Num("0".into()), members.into_iter().next().map_or(J::Null, |(_, v)| v)])
                } else {
                    J::Obj(members)
                };
                top.push((parent, v));
            }
            top.extend(time.map(|t| ("t".to_string(), t)));
            top.extend(version.map(|v| ("v".to_string(), v)));
            top.extend(extras);
            top.extend(rare);
            J::Obj(top)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whatever the schema and the events, the table and the quarantine are the model's.
    #[test]
    fn the_table_and_the_quarantine_are_the_models(s in schema(), batches in proptest::collection::vec(proptest::collection::vec((event(), any::<bool>()), 0..12), 2)) {
        let toml = s.json();
        let schema = Schema::parse(&toml, false).unwrap_or_else(|p| panic!("{p:?}\n{toml}"));
        let store = MemoryStore::for_schema(&schema);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let mut table: BTreeMap<(V, Option<V>), BTreeMap<String, V>> = BTreeMap::new();
        // Which records the model quarantines, by sequence number.
        let mut quarantined = std::collections::BTreeSet::new();
        let mut seq = 0;
        for batch in &batches {
            let mut records = Vec::new();
            let mut latest: BTreeMap<(V, Option<V>), BTreeMap<String, V>> = BTreeMap::new();
            for (event, escape) in batch {
                let mut payload = String::new();
                text(event, *escape, &mut payload);
                let mut r = Record::default();
                seq += 1;
                r.kinesis.sequence_number = format!("{seq:05}");
                r.kinesis.partition_key = "k".into();
                r.kinesis.data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, payload.as_bytes());
                r.event_id = format!("shardId-000000000000:{seq:05}");
                records.push(r);
                match model_item(&s, event) {
                    None => {
                        quarantined.insert(format!("{seq:05}"));
                    }
                    Some(item) => {
                        let key = (item["Pk"].clone(), item.get("Sk").cloned());
                        // In one batch the later record wins, or with a version the higher one.
                        let keep = match (latest.get(&key), s.version) {
                            (Some(old), true) => compare(ver(&item), ver(old)) != std::cmp::Ordering::Less,
                            _ => true,
                        };
                        if keep {
                            latest.insert(key, item);
                        }
                    }
                }
            }
            for (key, item) in latest {
                // Across batches, a version never replaces a newer one.
                let older = s.version && table.get(&key).is_some_and(|old| compare(ver(old), ver(&item)) == std::cmp::Ordering::Greater);
                if !older {
                    table.insert(key, item);
                }
            }
            let json = serde_json::to_vec(&Event { records }).expect("event json");
            let event: Batch = serde_json::from_slice(&json).expect("the function reads the event");
            let BatchOutcome { response, fatal, .. } =
                rt.block_on(handle(&event, &schema, &store, &Options::within(std::time::Duration::from_secs(30))));
            prop_assert!(response.batch_item_failures.is_empty() && fatal.is_none());
        }
        let got: BTreeMap<(V, Option<V>), BTreeMap<String, V>> = store
            .items(Target::Events)
            .into_values()
            .map(|item| {
                let item: BTreeMap<String, V> = item.iter().map(|(k, v)| (k.clone(), from_attribute(v))).collect();
                ((item["Pk"].clone(), item.get("Sk").cloned()), item)
            })
            .collect();
        prop_assert_eq!(got, table, "{}", toml);
        let rejected: std::collections::BTreeSet<String> = store
            .items(Target::Rejected)
            .into_values()
            .map(|item| item["Sequence"].as_s().expect("Sequence is S").clone())
            .collect();
        prop_assert_eq!(rejected, quarantined, "{}", toml);
    }
}

fn ver(item: &BTreeMap<String, V>) -> &str {
    match &item["Ver"] {
        V::N(n) => n,
        other => panic!("version {other:?}"),
    }
}

fn from_attribute(v: &aws_sdk_dynamodb::types::AttributeValue) -> V {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => V::S(s.clone()),
        A::N(n) => V::N(n.clone()),
        A::B(b) => V::B(b.as_ref().to_vec()),
        A::Bool(b) => V::Bool(*b),
        A::Null(_) => V::Null,
        A::L(l) => V::L(l.iter().map(from_attribute).collect()),
        A::M(m) => V::M(m.iter().map(|(k, v)| (k.clone(), from_attribute(v))).collect()),
        other => panic!("unexpected {other:?}"),
    }
}

/// The strategies make events the model keeps and events it quarantines, for every shape of
/// schema (a property that held only because everything was quarantined would prove nothing).
#[test]
fn the_generators_make_both_items_and_poison() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut kept, mut refused, mut documents, mut versioned) = (0, 0, 0, 0);
    for _ in 0..300 {
        let s = schema().new_tree(&mut runner).expect("schema").current();
        documents += usize::from(s.document);
        versioned += usize::from(s.version);
        for _ in 0..10 {
            let e = event().new_tree(&mut runner).expect("event").current();
            if model_item(&s, &e).is_some() { kept += 1 } else { refused += 1 }
        }
    }
    assert!(kept > 400 && refused > 400, "{kept} kept, {refused} refused");
    assert!(documents > 50 && versioned > 50, "{documents} document schemas, {versioned} versioned");
}

#[test]
fn the_models_numbers_are_dynamodbs() {
    assert_eq!(canonical("1.50e2"), "150");
    assert_eq!(canonical("-0.0"), "0");
    assert_eq!(canonical("0.001"), "0.001");
    assert_eq!(canonical("-12.300"), "-12.3");
    assert!(fits("9.9999999999999999999999999999999999999e125") && !fits("1e126"));
    assert!(fits("1E-130") && !fits("1e-131"));
    assert!(fits("12345678901234567890123456789012345678") && !fits("123456789012345678901234567890123456789"));
}
