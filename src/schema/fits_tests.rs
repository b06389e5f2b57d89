//! Unit tests of `surely_fits`: never yes where `build` refuses, yes to the common case.

use super::*;
use serde_json::json;

fn schema(toml: &str) -> Schema {
    Schema::parse(toml, true).unwrap_or_else(|p| panic!("schema refused: {p:?}"))
}

/// A projection with what `surely_fits` counts by itself: two key sources, a time in three
/// formats that may be absent, a TTL after it, projected numbers, booleans, defaults and
/// required values, and a requirement.
const MIXED: &str = r#"
name = "mixed"
[partition_key]
attribute = "K"
from = ["/k", "/alt"]
[sort_key]
attribute = "S"
from = "/s"
[time]
attribute = "T"
from = "/t"
formats = ["epoch_seconds", "twitter", "rfc3339"]
required = false
[ttl]
attribute = "Exp"
after = "1h"
[item]
store = "projection"
[[item.attributes]]
attribute = "Num"
from = "/n"
[[item.attributes]]
attribute = "Flag"
from = "/b"
[[item.attributes]]
attribute = "Dflt"
from = "/d"
default = "x"
[[item.attributes]]
attribute = "Need"
from = "/need"
required = true
[[require]]
pointer = "/r"
"#;

/// Sets (or with `None`, removes) the value at a JSON Pointer, making the objects on the way.
fn set_at(event: &mut serde_json::Value, pointer: &str, value: Option<serde_json::Value>) {
    let path = pointer::parse(pointer).expect("a pointer");
    let Some((last, parents)) = path.split_last() else { return };
    let mut at = event;
    for name in parents {
        if !at.get(name).is_some_and(serde_json::Value::is_object) {
            at[name.as_str()] = json!({});
        }
        at = &mut at[name.as_str()];
    }
    match value {
        Some(v) => at[last.as_str()] = v,
        None => drop(at.as_object_mut().and_then(|o| o.remove(last))),
    }
}

/// Every pointer a schema reads.
fn pointers_of(s: &Schema) -> Vec<String> {
    let mut all: Vec<&Sources> = vec![&s.partition.sources, &s.kinesis];
    all.extend(s.sort.as_ref().map(|k| &k.sources));
    all.extend(s.time.as_ref().map(|t| &t.0));
    all.extend(s.version.as_ref().map(|v| &v.0));
    if let Some(TtlPlan::Field(sources, _)) = &s.ttl {
        all.push(sources);
    }
    all.extend(s.projected.iter().map(|p| &p.sources));
    all.extend(&s.required);
    let mut pointers: Vec<String> = all.into_iter().flat_map(|src| src.pointers.iter().cloned()).collect();
    pointers.sort();
    pointers.dedup();
    pointers
}

/// Stands for the number 1e400 in an event until it is text.
const BIG: &str = "\u{1}big";

/// The values each read field is given in turn: absent, empty, kinds the schema may refuse,
/// strings at and past the keys' limits (in bytes, of two-byte characters), numbers DynamoDB
/// cannot hold, and times in each format, near the edges `quick_millis` guards.
fn trial_values() -> Vec<Option<serde_json::Value>> {
    let mut values: Vec<Option<serde_json::Value>> = vec![None];
    for v in [
        json!(""),
        json!(true),
        json!(null),
        json!({}),
        json!([1]),
        json!(0),
        json!(-1),
        json!(1.5e3),
        json!(1_700_000_000_123u64),
        json!(-62_167_219_200_001i64),
        json!(253_402_300_800_000u64),
        json!("1700000000"),
        json!("Wed Oct 10 20:19:24 +0000 2018"),
        json!("Thu Oct 10 20:19:24 +0000 2018"),
        json!("Wed Oct 10 20:19:24 +0200 2018"),
        json!("2025-01-01T00:00:00Z"),
        json!("2025-01-01T10:00:00.123456+02:00"),
        json!("2016-12-31T23:59:60Z"),
        json!("9999-12-31T23:59:59.999Z"),
        json!("0000-01-01T00:00:00Z"),
        json!("soon"),
    ] {
        values.push(Some(v));
    }
    // A number past f64, written in by `BIG` once the event is text.
    values.push(Some(json!(BIG)));
    for bytes in [1_023, 1_024, 1_025, 2_047, 2_048, 2_049] {
        let text = "é".repeat(bytes / 2) + &"a".repeat(bytes % 2);
        values.push(Some(json!(text)));
    }
    values
}

/// `surely_fits` never says yes where `build` refuses, and the key producers get is the one they
/// got when every record's item was built; and it says yes to the common case (every synthetic
/// event of tweets and clickstream, and `MIXED`'s), so producers skip the item.
#[test]
fn surely_fits_only_what_build_makes_an_item_of() {
    let (mixed, clicks) = (schema(MIXED), schema(super::tests::CLICKS));
    let built_in = |name| Schema::built_in(name).expect("built in");
    // A version is left to `build`, whatever it is.
    let versioned = schema(
        "name = \"v\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[version]\nfrom = \"/v\"\ntype = \"number\"\n",
    );
    // Each schema with events of the common case: the first of each is also mutated field by field.
    let schemas: [(&Schema, Vec<serde_json::Value>); 7] = [
        (
            built_in("tweets"),
            vec![json!({
                "id_str": "1874244142645641217", "created_at": "Wed Jan 01 00:00:00 +0000 2025",
                "text": "📈 אמת Straße 🎉 処理 data 🔥", "truncated": false, "lang": "ja", "entities": {"hashtags": []},
                "user": {"name": "Chloé 🦀", "screen_name": "jqxbznmf_314", "id_str": "1420776703938700985"},
            })],
        ),
        (
            built_in("clickstream"),
            vec![json!({
                "event_id": "e-aabaaa5e3bd0eed97c02", "session_id": "s-0901358ea9f1377b", "type": "page_view",
                "ts": "2025-01-01T00:00:00.029Z", "page": {"url": "https://shop.example.com/", "title": "Checkout"},
            })],
        ),
        (built_in("iot"), vec![json!({"device_id": "d", "ts": 1_700_000_000_999u64, "metrics": {"t": 1}})]),
        (
            built_in("orders"),
            vec![json!({
                "order_id": "o-1", "version": 3, "status": "paid", "updated_at": "2025-01-01T10:00:00+02:00",
                "customer": {"id": "c-9"}, "total": 12.5, "lines": [],
            })],
        ),
        (
            &mixed,
            vec![
                json!({"k": "key", "s": "sort", "t": 1_700_000_000, "n": 12, "b": false, "need": "y", "r": 1}),
                json!({"k": 5, "s": 6.5, "t": "Wed Oct 10 20:19:24 +0000 2018", "n": -1.5e3, "d": "given", "need": "", "r": false}),
                json!({"alt": "key", "s": "sort", "t": "1700000000.5", "need": "y", "r": {}}),
                json!({"k": "key", "s": "sort", "need": "y", "r": "no time: none needed"}),
            ],
        ),
        (&versioned, vec![json!({"k": "a", "v": 1})]),
        (&clicks, vec![json!({"session_id": "s", "seq": 1, "ts": "2025-01-01T00:00:00Z"})]),
    ];
    let (mut fast, mut slow) = (0, 0);
    for (s, events) in &schemas {
        for (i, text) in trials(s, events).iter().enumerate() {
            let Ok(caps) = decode::walk(&s.plan, text) else { continue };
            let built = s.build(&caps, Box::default());
            if s.surely_fits(&caps) {
                fast += 1;
                assert!(built.is_ok(), "{}: surely fits, but {:?}: {text:.300}", s.name(), built.err());
            } else {
                slow += 1;
            }
            if i < events.len() && matches!(s.name(), "tweets" | "clickstream" | "mixed") {
                assert!(s.surely_fits(&caps), "{}: the common case surely fits: {text:.300}", s.name());
            }
            if s.spec.item.store == StoreMode::Projection {
                assert_eq!(
                    s.kinesis_key(text.as_bytes()),
                    built.and_then(|_| key_of(s, &caps)),
                    "{}: {text:.300}",
                    s.name()
                );
            }
        }
    }
    assert!(fast > 300 && slow > 300, "both ways taken: {fast} sure, {slow} left to build");
}

/// The events as text, then the first one with each field the schema reads set to each of
/// `trial_values`, and to a string that fills the item to exactly 400 KB and a byte past.
fn trials(s: &Schema, events: &[serde_json::Value]) -> Vec<String> {
    let mut trials: Vec<serde_json::Value> = events.to_vec();
    let event = &events[0];
    for pointer in pointers_of(s) {
        for value in trial_values() {
            let mut e = event.clone();
            set_at(&mut e, &pointer, value);
            trials.push(e);
        }
        let mut e = event.clone();
        set_at(&mut e, &pointer, Some(json!("")));
        let text = e.to_string();
        let room = decode::walk(&s.plan, &text)
            .ok()
            .and_then(|caps| s.build(&caps, Box::default()).ok())
            .map(|item| MAX_ITEM_BYTES - item.size(&s.names));
        for extra in room.map_or(vec![MAX_ITEM_BYTES - 40], |room| vec![room, room + 1]) {
            let mut e = event.clone();
            set_at(&mut e, &pointer, Some(json!("y".repeat(extra))));
            trials.push(e);
        }
    }
    trials.iter().map(|e| e.to_string().replace("\"\\u0001big\"", "1e400")).collect()
}

/// The Kinesis key as producers got it when every record's item was built first.
fn key_of(s: &Schema, caps: &[Option<Found<'_>>]) -> Result<String, Refusal> {
    let key = s.kinesis.slots.iter().filter_map(|&k| caps[k].as_ref().and_then(Found::text)).find(|t| !t.is_empty());
    key.map(|k| k.chars().take(MAX_KINESIS_KEY_CHARS).collect())
        .ok_or_else(|| Refusal::Missing { field: Field::KinesisKey, message: s.kinesis.missing.clone() })
}
