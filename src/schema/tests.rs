//! Unit tests of event schemas: the built-in files, every problem a schema file can have, and
//! what each kind of event becomes (or why it is refused).

use super::*;
use serde_json::json;

fn schema(toml: &str) -> Schema {
    Schema::parse(toml, true).unwrap_or_else(|p| panic!("schema refused: {p:?}"))
}

fn problems(toml: &str) -> Vec<Problem> {
    Schema::parse(toml, true).expect_err("schema accepted")
}

fn item(s: &Schema, event: serde_json::Value) -> serde_json::Value {
    let i = s.item(event.to_string().as_bytes()).unwrap_or_else(|r| panic!("refused: {r}"));
    i.to_json(s.attribute_names())
}

fn refusal(s: &Schema, event: &str) -> String {
    s.item(event.as_bytes()).expect_err("accepted").to_string()
}

#[test]
fn the_built_in_schemas_read_and_survive_their_canonical_form() {
    for name in BUILT_IN {
        let s = Schema::built_in(name).expect("built in");
        assert_eq!(s.name(), name);
        let canonical = s.spec().canonical();
        let again = spec::read(&canonical, false).unwrap_or_else(|p| panic!("{name}: {p:?}"));
        assert_eq!(&again, s.spec(), "{name}: the canonical JSON reads back as the same spec");
    }
    let tweets = Schema::tweets();
    assert_eq!(tweets.partition_key(), ("Username", KeyType::S));
    assert_eq!(tweets.sort_key(), Some(("Id", KeyType::S)));
    assert_eq!(
        &*tweets.attribute_names().iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        ["Username", "Id", "Timestamp", "Message"]
    );
}

pub(super) const CLICKS: &str = r#"
name = "clicks"
[partition_key]
attribute = "SessionId"
from = "/session_id"
[sort_key]
attribute = "Seq"
type = "N"
from = "/seq"
[time]
from = "/ts"
formats = ["rfc3339", "epoch_millis"]
[ttl]
attribute = "ExpiresAt"
after = "1d"
"#;

#[test]
fn a_document_schema_stores_the_whole_event_with_dynamodb_types() {
    let s = schema(CLICKS);
    let event = r#"{"session_id": "s1", "seq": 15.0, "ts": 1700000000123, "page": {"url": "/", "tags": ["a", 1, true, null]}, "big": 12345678901234567890123, "empty": ""}"#;
    let got = s.item(event.as_bytes()).expect("stored").to_json(s.attribute_names());
    assert_eq!(
        got,
        json!({
            "SessionId": {"S": "s1"},
            "Seq": {"N": "15"},
            "Timestamp": {"S": "2023-11-14T22:13:20.123Z"},
            "ExpiresAt": {"N": "1700086400"},
            "session_id": {"S": "s1"},
            "seq": {"N": "15.0"},
            "ts": {"N": "1700000000123"},
            "page": {"M": {"url": {"S": "/"}, "tags": {"L": [{"S": "a"}, {"N": "1"}, {"BOOL": true}, {"NULL": true}]}}},
            "big": {"N": "12345678901234567890123"},
            "empty": {"S": ""},
        })
    );
}

#[test]
fn what_dynamodb_cannot_hold_is_refused_with_its_reason() {
    let s = schema(CLICKS);
    let ok = r#""session_id":"s","seq":1,"ts":"2024-01-01T00:00:00Z""#;
    assert_eq!(
        refusal(&s, &format!("{{{ok},\"x\":1e200}}")),
        "x: 1e200 is outside DynamoDB's number range (1E-130 to 9.99E+125)"
    );
    assert_eq!(
        refusal(&s, &format!("{{{ok},\"x\":123456789012345678901234567890123456789}}")),
        "x: 123456789012345678901234567890123456789 has 39 significant digits, over DynamoDB's 38"
    );
    assert_eq!(
        refusal(&s, &format!("{{{ok},\"\":1}}")),
        "has a field named \"\" (DynamoDB attribute names hold at least one character)"
    );
    assert_eq!(refusal(&s, r#"{"seq":1,"ts":"2024-01-01T00:00:00Z"}"#), "no SessionId (session_id)");
    assert_eq!(refusal(&s, r#"{"session_id":"","seq":1,"ts":"2024-01-01T00:00:00Z"}"#), "no SessionId (session_id)");
    assert_eq!(refusal(&s, r#"{"session_id":"s","ts":"2024-01-01T00:00:00Z"}"#), "no Seq (seq)");
    assert_eq!(
        refusal(&s, r#"{"session_id":"s","seq":"1","ts":"2024-01-01T00:00:00Z"}"#),
        r#"not a JSON event: seq: invalid type: string "1", expected a number at line 1 column 27"#
    );
    assert_eq!(refusal(&s, r#"{"session_id":"s","seq":1}"#), "no event time (ts)");
    assert_eq!(
        refusal(&s, r#"{"session_id":"s","seq":1,"ts":"yesterday"}"#),
        r#"ts "yesterday" is not an RFC 3339 or epoch milliseconds time"#
    );
    assert_eq!(
        refusal(&s, r#"{"session_id":"s","seq":1e999,"ts":1}"#),
        "seq: 1e999 is outside DynamoDB's number range (1E-130 to 9.99E+125)"
    );
    let long = "k".repeat(2049);
    assert_eq!(
        refusal(&s, &format!(r#"{{"session_id":"{long}","seq":1,"ts":1}}"#)),
        "SessionId is 2049 bytes, over DynamoDB's key limit"
    );
    let huge = "y".repeat(MAX_ITEM_BYTES);
    assert!(refusal(&s, &format!(r#"{{"session_id":"s","seq":1,"ts":1,"x":"{huge}"}}"#)).starts_with("item is 4"));
    assert_eq!(refusal(&s, "[1]"), "not a JSON event: invalid type: sequence, expected an object at line 1 column 1");
    assert_eq!(refusal(&s, "\u{0}"), "not a JSON event: expected value at line 1 column 1");
    assert!(s.item(b"{\xff}").is_err_and(|r| matches!(r, Refusal::NotUtf8 { valid_up_to: 1 })));
    let deep = format!(r#"{{"session_id":"s","seq":1,"ts":1,"d":{}{}}}"#, "[".repeat(33), "]".repeat(33));
    assert!(refusal(&s, &deep).starts_with("d.0.0.0"), "{}", refusal(&s, &deep));
}

#[test]
fn numbers_can_be_kept_as_strings_instead() {
    let s = schema(&CLICKS.replacen("name = \"clicks\"", "name = \"clicks\"\nnumbers = \"string\"", 1));
    let got =
        s.item(br#"{"session_id": "s", "seq": 1, "ts": 1, "x": 1e200}"#).expect("stored").to_json(s.attribute_names());
    assert_eq!(got["x"], json!({"S": "1e200"}));
}

#[test]
fn each_problem_of_a_schema_file_is_named_with_a_hint() {
    let cases: &[(&str, &str, &str)] = &[
        ("name = 1", "name: is a number, not a string", "in quotes"),
        ("name = \"x\"", "partition_key: missing", "[partition_key]"),
        (
            "name = \"x\"\nextra = 1\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"",
            "extra: unknown field",
            "the fields of a schema are",
        ),
        (
            "name = \"x\"\n[partition_key]\nattribute = \"K\"\nfrom = []",
            "partition_key.from: is empty",
            "at least one JSON Pointer",
        ),
        (
            "name = \"x\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\njson = \"boolean\"",
            "a key of type S cannot be made from a JSON boolean (/k)",
            "string or number or integer",
        ),
        (
            "name = \"x\"\n[partition_key]\nattribute = \"\"\nfrom = \"/k\"",
            "partition_key.attribute: \"\" is 0 bytes, not 1 to 255",
            "1 to 255",
        ),
        (
            "name = \"x\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[sort_key]\nattribute = \"K\"\nfrom = \"/s\"",
            "sort_key.attribute: \"K\" is already partition_key's attribute",
            "another attribute name",
        ),
        (
            "name = \"x\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[time]\nfrom = \"/t\"",
            "time.formats: missing",
            "twitter, rfc3339, epoch_seconds, epoch_millis",
        ),
        (
            "name = \"x\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[time]\nfrom = \"/t\"\nformats = \"iso\"",
            "time.formats: \"iso\" is not a time format",
            "use twitter",
        ),
        (
            "name = \"x\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[ttl]\nattribute = \"E\"\nafter = \"1d\"",
            "ttl.after: counts from the event time, but the schema has no [time]",
            "ttl.from",
        ),
        (
            "name = \"x\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[ttl]\nattribute = \"E\"",
            "ttl: give exactly one of from and after",
            "ttl.after = \"30d\"",
        ),
        (
            "name = \"x\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[version]\nfrom = \"/v\"\ntype = \"time\"",
            "version.formats: missing",
            "formats = [\"rfc3339\"]",
        ),
        (
            "name = \"x\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[item]\nattributes = []",
            "item.attributes: only read with store = \"projection\"",
            "item.store = \"projection\"",
        ),
        (
            "name = \"x\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[item]\nstore = \"projection\"\n[[item.attributes]]\nfrom = \"/a\"\njson = \"string\"\n[[item.attributes]]\nattribute = \"B\"\nfrom = \"/a\"\njson = \"number\"",
            "/a is read as a number here and as a string elsewhere",
            "one JSON type",
        ),
        (
            "name = \"x\"\nnumbers = \"round\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"",
            "numbers: \"round\" is not one of quarantine, string",
            "one of: quarantine, string",
        ),
        ("name = \"x\"\n[partition_key\n", "not valid TOML", "fix the TOML syntax"),
    ];
    for (text, what, hint) in cases {
        let found = problems(text);
        let p = found.iter().find(|p| p.what.contains(what)).unwrap_or_else(|| panic!("{what:?} not in {found:#?}"));
        assert!(p.hint.contains(hint), "{what}: hint {:?} lacks {hint:?}", p.hint);
    }
    let json_error = Schema::parse("{\"name\": ", false).expect_err("bad JSON");
    assert!(json_error[0].what.starts_with("not valid JSON: EOF while parsing"), "{json_error:?}");
}

/// Keys of each type, fallbacks, empty strings skipped for keys, numbers as S keys in their text,
/// N keys in DynamoDB's canonical text, B keys from base64; the Kinesis key follows its sources.
#[test]
fn keys_are_read_as_their_types_say() {
    let s = schema(
        r#"
name = "k"
[partition_key]
attribute = "P"
from = ["/a", "/b"]
[sort_key]
attribute = "S"
type = "N"
from = "/n"
[kinesis]
partition_key = ["/route", "/a"]
"#,
    );
    let got = item(&s, json!({"a": "", "b": 42, "n": 1.50}));
    assert_eq!((&got["P"], &got["S"]), (&json!({"S": "42"}), &json!({"N": "1.5"})));
    assert_eq!(s.kinesis_key(br#"{"a":"x","n":1}"#).expect("key"), "x");
    assert_eq!(s.kinesis_key(br#"{"route":"r","a":"x","n":1}"#).expect("key"), "r");
    let long = format!(r#"{{"route":"{}","a":"x","n":1}}"#, "é".repeat(300));
    assert_eq!(s.kinesis_key(long.as_bytes()).expect("key").chars().count(), 256, "cut to 256 characters");
    assert_eq!(
        s.kinesis_key(br#"{"b":5,"n":1}"#).expect_err("no key").to_string(),
        "no route or a for a partition key"
    );
    // The producer refuses what the function would quarantine: a document that DynamoDB cannot
    // hold is refused for its key too; a projection never stores the field, so its key is read.
    let clicks = Schema::built_in("clickstream").expect("built in");
    let doc = r#"{"session_id":"s","event_id":"e","ts":"2025-01-01T00:00:00Z","type":"click","x":1e200}"#;
    let why = "x: 1e200 is outside DynamoDB's number range (1E-130 to 9.99E+125)";
    assert_eq!(refusal(clicks, doc), why);
    assert_eq!(clicks.kinesis_key(doc.as_bytes()).expect_err("unstorable document").to_string(), why);
    let orders = Schema::built_in("orders").expect("built in");
    let projected = r#"{"order_id":"o-1","version":1,"status":"paid","updated_at":"2025-01-01T00:00:00Z","x":1e200}"#;
    assert!(orders.item(projected.as_bytes()).is_ok(), "a projection leaves x out");
    assert_eq!(orders.kinesis_key(projected.as_bytes()).expect("key"), "o-1");
    let b = schema(
        "name = \"b\"\n[partition_key]\nattribute = \"Id\"\ntype = \"B\"\nfrom = [\"/id\", \"/alt\"]\n[sort_key]\nattribute = \"S\"\nfrom = \"/s\"\n",
    );
    assert_eq!(item(&b, json!({"id": "AQID", "s": "x"}))["Id"], json!({"B": "AQID"}));
    assert_eq!(refusal(&b, r#"{"id":"%%","s":"x"}"#), "id: is not base64 (a binary key is written in base64)");
    // An empty binary key is no key (DynamoDB refuses empty key values): the next source is read.
    assert_eq!(item(&b, json!({"id": "", "alt": "BAU=", "s": "x"}))["Id"], json!({"B": "BAU="}));
    assert_eq!(refusal(&b, r#"{"id":"","s":"x"}"#), "no Id (id or alt)");
    for padding in ["=", "==", "===", "===="] {
        assert_eq!(
            refusal(&b, &format!(r#"{{"id":"{padding}","s":"x"}}"#)),
            "id: is not base64 (a binary key is written in base64)"
        );
    }
    // Keys up to DynamoDB's limits, and not a byte over, binary keys by their decoded bytes:
    // 2,048 for the partition key, 1,024 for the sort key.
    let bytes = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
    let (at, over) = (bytes(MAX_PARTITION_KEY_BYTES), bytes(MAX_PARTITION_KEY_BYTES + 1));
    assert!(b.item(format!(r#"{{"id":"{at}","s":"x"}}"#).as_bytes()).is_ok(), "2,048 bytes is a partition key");
    assert_eq!(refusal(&b, &format!(r#"{{"id":"{over}","s":"x"}}"#)), "Id is 2049 bytes, over DynamoDB's key limit");
    let (at, over) = ("s".repeat(MAX_SORT_KEY_BYTES), "s".repeat(MAX_SORT_KEY_BYTES + 1));
    assert!(b.item(format!(r#"{{"id":"AQID","s":"{at}"}}"#).as_bytes()).is_ok(), "1,024 bytes is a sort key");
    assert_eq!(refusal(&b, &format!(r#"{{"id":"AQID","s":"{over}"}}"#)), "S is 1025 bytes, over DynamoDB's key limit");
}

/// A projection stores only its attributes: renamed, defaulted, required; document fields named
/// like the schema's own attributes give way to them.
#[test]
fn projections_take_only_what_they_name() {
    let s = Schema::built_in("orders").expect("built in");
    let event = json!({"order_id": "o-1", "version": 3, "status": "paid", "updated_at": "2025-01-01T10:00:00+02:00", "customer": {"id": "c-9"}, "secret": "x"});
    assert_eq!(
        item(s, event),
        json!({
            "OrderId": {"S": "o-1"},
            "UpdatedAt": {"S": "2025-01-01T08:00:00.000Z"},
            "Version": {"N": "3"},
            "Status": {"S": "paid"},
            "CustomerId": {"S": "c-9"},
            "Lines": {"L": []},
        })
    );
    assert_eq!(refusal(s, r#"{"order_id":"o","version":1,"updated_at":"2025-01-01T00:00:00Z"}"#), "no Status (status)");
    let doc = Schema::built_in("clickstream").expect("built in");
    let got = item(
        doc,
        json!({"session_id": "s", "event_id": "e", "ts": "2025-01-01T00:00:00Z", "type": "click", "page": {"url": "/"}, "Timestamp": "mine"}),
    );
    assert_eq!(got["Timestamp"], json!({"S": "2025-01-01T00:00:00.000Z"}), "the schema's attribute wins");
    assert_eq!(
        refusal(doc, r#"{"session_id":"s","event_id":"e","ts":"2025-01-01T00:00:00Z","page":{"url":"/"}}"#),
        "no type (required)"
    );
}

/// TTLs are epoch seconds: from a field in its format, or the event time plus a duration.
#[test]
fn ttl_is_epoch_seconds() {
    let iot = Schema::built_in("iot").expect("built in");
    let got = item(iot, json!({"device_id": "d", "ts": 1_700_000_000_999u64, "metrics": {}}));
    assert_eq!(got["ExpiresAt"], json!({"N": (1_700_000_000 + 7 * 86_400).to_string()}));
    assert_eq!(got["Time"], json!({"N": "1700000000999"}));
    let field = schema(
        "name = \"t\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[ttl]\nattribute = \"E\"\nfrom = \"/exp\"\nformat = \"rfc3339\"\n",
    );
    assert_eq!(item(&field, json!({"k": "a", "exp": "2030-01-01T00:00:00Z"}))["E"], json!({"N": "1893456000"}));
    assert!(item(&field, json!({"k": "a"})).get("E").is_none(), "no expiry: the item never expires");
    assert_eq!(refusal(&field, r#"{"k":"a","exp":"soon"}"#), r#"exp "soon" is not an RFC 3339 time"#);
    // What deploy turns on as the table's TTL: the attribute, or none for a schema without one.
    assert_eq!((iot.ttl_attribute(), field.ttl_attribute()), (Some("ExpiresAt"), Some("E")));
    assert_eq!(Schema::tweets().ttl_attribute(), None);
}

/// A time the schema does not require may be absent: the item is written without it.
#[test]
fn an_event_time_not_required_may_be_absent() {
    let s = schema(
        "name = \"t\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[time]\nattribute = \"T\"\nfrom = \"/ts\"\nformats = [\"rfc3339\"]\nrequired = false\n",
    );
    assert!(item(&s, json!({"k": "a"})).get("T").is_none(), "no time, no attribute");
    assert_eq!(
        item(&s, json!({"k": "a", "ts": "2025-01-01T00:00:00Z"}))["T"],
        json!({"S": "2025-01-01T00:00:00.000Z"})
    );
    let required = schema(
        "name = \"t\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[time]\nattribute = \"T\"\nfrom = \"/ts\"\nformats = [\"rfc3339\"]\n",
    );
    assert_eq!(refusal(&required, r#"{"k":"a"}"#), "no event time (ts)");
}

/// An item of exactly 400 KB, as DynamoDB counts it (names and values), is written; a byte more is refused.
#[test]
fn an_item_of_400_kb_is_written_and_a_byte_more_is_not() {
    let s = schema("name = \"t\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n");
    // A document: "K" and "a", the event's own "k" and "a", and "m": 5 bytes beside the message.
    let event = |n: usize| format!(r#"{{"k":"a","m":"{}"}}"#, "y".repeat(n));
    assert!(s.item(event(MAX_ITEM_BYTES - 5).as_bytes()).is_ok(), "exactly 400 KB");
    assert_eq!(refusal(&s, &event(MAX_ITEM_BYTES - 4)), "item is 409601 bytes, over DynamoDB's 400 KB limit");
}

/// A schema shows itself by name only in debug output (logs, panics), never its whole compiled plan.
#[test]
fn a_schema_debugs_as_its_name() {
    assert_eq!(format!("{:?}", Schema::built_in("iot").expect("built in")), r#"Schema { name: "iot", .. }"#);
}

/// A schema's name is 1 to 64 lowercase letters, digits, - or _; a missing name is named as
/// missing, and one that is not a string only as that.
#[test]
fn schema_names_are_lowercase_letters_digits_dashes_and_underscores() {
    let with_name = |line: &str| format!("{line}\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"");
    let whats = |found: Vec<Problem>| found.into_iter().map(|p| p.what).collect::<Vec<_>>();
    let longest = "x".repeat(64);
    for good in ["iot-v2_1", "a", "2024", longest.as_str()] {
        assert_eq!(schema(&with_name(&format!("name = \"{good}\""))).name(), good);
    }
    let too_long = "x".repeat(65);
    for bad in ["Clicks", "a.b", "", too_long.as_str()] {
        assert_eq!(
            whats(problems(&with_name(&format!("name = \"{bad}\"")))),
            [format!("name: \"{bad}\" is not 1-64 lowercase letters, digits, - or _")]
        );
    }
    assert_eq!(whats(problems(&with_name(""))), ["name: missing"]);
    assert_eq!(whats(problems(&with_name("name = 1"))), ["name: is a number, not a string"]);
}

/// A time version takes its own formats when it names them, and the event time's otherwise.
#[test]
fn a_time_version_reads_its_own_formats_before_the_times() {
    use crate::time::Format;
    let base = "name = \"x\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[time]\nfrom = \"/t\"\nformats = [\"twitter\"]\n[version]\nfrom = \"/v\"\ntype = \"time\"";
    let formats = |text: &str| schema(text).spec().version.as_ref().expect("a version").formats.clone();
    assert_eq!(
        formats(&format!("{base}\nformats = [\"epoch_millis\", \"rfc3339\"]")),
        [Format::EpochMillis, Format::Rfc3339]
    );
    assert_eq!(formats(base), [Format::Twitter]);
}

/// A requirement without its pointer is named as missing, once.
#[test]
fn a_requirement_without_a_pointer_is_named() {
    let text = "name = \"x\"\n[partition_key]\nattribute = \"K\"\nfrom = \"/k\"\n[[require]]\njson = \"string\"";
    let whats: Vec<String> = problems(text).into_iter().map(|p| p.what).collect();
    assert_eq!(whats, ["require[0].pointer: missing"]);
}
