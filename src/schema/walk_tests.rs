//! Tests of `stream-json` (src/json): the one-pass walk and JSON Pointers. They live here because a
//! path package's own tests are not run by `cargo test`.

use std::borrow::Cow;

use proptest::prelude::*;

use super::decode::*;
use super::pointer::*;

/// A plan of `pointers` and the slot of each.
fn plan(pointers: &[(&str, Kinds)]) -> (Plan, Vec<usize>) {
    let mut p = Plan::default();
    let slots = pointers.iter().map(|(ptr, k)| p.add(ptr, *k).expect("kinds agree")).collect();
    (p, slots)
}

#[test]
fn named_fields_are_captured_and_the_rest_skipped() {
    let (p, s) = plan(&[
        ("/id", STRING),
        ("/user/name", STRING),
        ("/n", INTEGER),
        ("/tags/1", ANY),
        ("/page", OBJECT),
        ("/gone", ANY),
    ]);
    let text = r#"{"id":"7","skip":{"deep":[1,2,{"x":null}]},"user":{"name":"Zo\u00eb","other":1},"n":-3,"tags":["a",{"b":true}],"page":{"url":"/"},"gone":null}"#;
    let caps = walk(&p, text).expect("reads");
    assert_eq!(caps[s[0]], Some(Found::Str(Cow::Borrowed("7"))));
    assert_eq!(caps[s[1]], Some(Found::Str(Cow::Owned("Zoë".into()))));
    assert_eq!(caps[s[2]], Some(Found::Num("-3")));
    assert_eq!(caps[s[3]], Some(Found::Raw(r#"{"b":true}"#)));
    assert_eq!(caps[s[4]], Some(Found::Raw(r#"{"url":"/"}"#)));
    assert_eq!(caps[s[5]], None, "null is absent");
}

#[test]
fn wrong_types_are_named_with_their_field_line_and_column() {
    let (p, _) = plan(&[("/id_str", STRING), ("/id", INTEGER), ("/user/name", STRING)]);
    let err = |t: &str| walk(&p, t).expect_err("refused").0;
    assert_eq!(
        err(r#"{"id_str":"1","id":"x"}"#),
        r#"id: invalid type: string "x", expected an integer at line 1 column 23"#
    );
    assert_eq!(err(r#"{"id":1.5}"#), "id: invalid type: floating point `1.5`, expected an integer at line 1 column 10");
    assert_eq!(err(r#"{"user":"u"}"#), r#"user: invalid type: string "u", expected an object at line 1 column 11"#);
    assert_eq!(err(r#"{"user":[]}"#), "user: invalid type: sequence, expected an object at line 1 column 10");
    assert_eq!(err("[1]"), "invalid type: sequence, expected an object at line 1 column 1");
    assert_eq!(err("null"), "invalid type: null, expected an object at line 1 column 4");
    assert_eq!(err(r#"{"id_str":"1","id_str":"2"}"#), "duplicate field `id_str` at line 1 column 22");
    assert_eq!(err("not json"), "expected ident at line 1 column 2");
    assert_eq!(err(r#"{"a":1} x"#), "trailing characters at line 1 column 9");
    assert!(walk(&p, r#"{"user":null,"id":null}"#).is_ok(), "null on the way is absent");
}

#[test]
fn kinds_of_one_pointer_used_twice_must_meet() {
    let mut p = Plan::default();
    assert_eq!(p.add("/a", STRING | INTEGER | FRACTION), Ok(0));
    assert_eq!(p.add("/a", STRING), Ok(0));
    assert_eq!(p.add("/a", BOOLEAN), Err(STRING));
    assert_eq!(expecting(STRING | FRACTION | INTEGER), "a string or a number");
    assert_eq!(expecting(INTEGER), "an integer");
    assert_eq!(expecting(OBJECT | ARRAY), "an object or an array");
}

#[test]
fn pointers_read_as_rfc_6901_says() {
    assert_eq!(parse(""), Ok(vec![]));
    assert_eq!(parse("/"), Ok(vec![String::new()]));
    assert_eq!(parse("/user/name"), Ok(vec!["user".to_string(), "name".to_string()]));
    assert_eq!(parse("/a~1b/m~0n/0"), Ok(vec!["a/b".to_string(), "m~n".to_string(), "0".to_string()]));
    assert_eq!(parse("user"), Err("does not start with /"));
    assert_eq!(parse("/a~2"), Err("has a ~ that is not ~0 or ~1"));
    assert_eq!(parse("/a~"), Err("has a ~ that is not ~0 or ~1"));
    assert_eq!(display("/user/screen_name"), "user.screen_name");
    assert_eq!(array_index("0"), Some(0));
    assert_eq!(array_index("12"), Some(12));
    for bad in ["", "01", "-1", "x"] {
        assert_eq!(array_index(bad), None, "{bad}");
    }
}

/// Any JSON value (nested up to 4 deep): scalars of every kind, strings with escapes (a lone
/// surrogate too) and multi-byte characters, objects whose keys the plans below name (one of them
/// escaped), whitespace between tokens.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
        "\"([a-z ]|\\\\[nt\"/\\\\]|\\\\u00e9|\\\\ud83d\\\\ude00|\\\\ud800|é|😀){0,6}\"",
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("(a|b|c|user|name|id|0|1|a\\\\u0062)", inner), 0..5).prop_map(|v| {
                let members: Vec<String> = v.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                format!("{{{}}}", members.join(" ,"))
            }),
        ]
    })
}

/// Up to 6 pointers over those keys (array indexes too), each read as some JSON kinds.
fn pointers() -> impl Strategy<Value = Vec<(String, Kinds)>> {
    let kinds = prop_oneof![
        Just(STRING),
        Just(INTEGER),
        Just(FRACTION | INTEGER),
        Just(BOOLEAN),
        Just(OBJECT),
        Just(ARRAY),
        Just(ANY),
        Just(STRING | INTEGER),
    ];
    prop::collection::vec((prop::collection::vec("(a|b|c|user|name|id|0|1)", 0..4), kinds), 0..6).prop_map(|v| {
        v.into_iter().map(|(segments, k)| (segments.iter().map(|s| format!("/{s}")).collect(), k)).collect()
    })
}

/// `text` with one byte deleted, inserted or replaced (by one that matters to JSON): near misses.
fn mutate(text: &str, at: usize, how: u8, byte: u8) -> String {
    let mut b = text.as_bytes().to_vec();
    if b.is_empty() {
        return text.to_string();
    }
    let at = at % b.len();
    let pool = b"{}[],:\"\\ 0-.eE+tfnu\x01\tx";
    let c = pool[usize::from(byte) % pool.len()];
    match how % 3 {
        0 => drop(b.remove(at)),
        1 => b.insert(at, c),
        _ => b[at] = c,
    }
    String::from_utf8(b).unwrap_or_else(|_| text.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            "tests/proptest-regressions/walk.txt",
        ))),
        cases: 4000,
        ..ProptestConfig::default()
    })]

    /// Whenever the byte walk reads a text (valid or a near miss), serde_json's walk reads it too
    /// and captures the same; when it does not, `walk` is serde_json's walk. And it leaves to
    /// serde_json only what it must: every valid text serde_json reads, the byte walk reads too,
    /// unless a key is written with an escape (the one case it leaves by design at this depth).
    #[test]
    fn the_byte_walk_reads_only_what_serde_json_reads_and_the_same(
        value in json_value(), ptrs in pointers(), ws in "[ \t\n\r]{0,2}",
        at in 0usize..1000, how in 0u8..3, byte in any::<u8>(),
    ) {
        let mut p = Plan::default();
        for (ptr, k) in &ptrs {
            let _ = p.add(ptr, *k);
        }
        let valid = format!("{ws}{value}{ws}");
        for text in [mutate(&valid, at, how, byte), valid.clone()] {
            let serde = walk_serde(&p, &text);
            if let Some(caps) = walk_fast(&p, &text) {
                prop_assert_eq!(Ok(caps), serde.clone(), "{}", text);
            }
            prop_assert_eq!(walk(&p, &text), serde);
        }
        if walk_serde(&p, &valid).is_ok() && !valid.contains("a\\u0062\"") {
            prop_assert!(walk_fast(&p, &valid).is_some(), "left to serde_json: {}", valid);
        }
    }
}

/// A field named twice is serde_json's to refuse, whichever named field it is; an object with more
/// named fields than the byte walk's 64-bit record of them is still read by it.
#[test]
fn duplicates_of_any_named_field_are_refused_and_many_fields_are_read() {
    let names: Vec<String> = (0..70).map(|i| format!("k{i}")).collect();
    let pointers: Vec<(String, Kinds)> = names.iter().map(|n| (format!("/{n}"), INTEGER)).collect();
    let (p, s) = plan(&pointers.iter().map(|(ptr, k)| (ptr.as_str(), *k)).collect::<Vec<_>>());
    let members: Vec<String> = names.iter().enumerate().map(|(i, n)| format!("\"{n}\":{i}")).collect();
    let text = format!("{{{}}}", members.join(","));
    let caps = walk_fast(&p, &text).expect("70 named fields, read by the byte walk");
    for (i, slot) in s.iter().enumerate() {
        assert_eq!(caps[*slot], Some(Found::Num(&i.to_string())), "k{i}");
    }
    for twice in ["k1", "k40", "k69"] {
        let text = format!(r#"{{"k0":0,"{twice}":1,"{twice}":2}}"#);
        assert_eq!(walk_fast(&p, &text), None, "{twice} twice");
        let err = walk(&p, &text).expect_err("a duplicate").0;
        assert!(err.starts_with(&format!("duplicate field `{twice}`")), "{err}");
    }
}

/// A value the plan does not name is still checked as serde_json checks it: brackets close what
/// they opened, and nesting past MAX_DEPTH (64) is left to serde_json, which reads it.
#[test]
fn skipped_values_close_what_they_open_and_deep_ones_are_serde_jsons() {
    let (p, s) = plan(&[("/x", INTEGER)]);
    for bad in [r#"{"skip":[1},"x":1}"#, r#"{"skip":{"a":1],"x":1}"#, r#"{"skip":[{"a":[1}]},"x":1}"#] {
        assert_eq!(walk_fast(&p, bad), None, "{bad}");
        assert!(walk(&p, bad).is_err(), "{bad}");
    }
    let nested = |n: usize| format!(r#"{{"skip":{}{},"x":1}}"#, "[".repeat(n), "]".repeat(n));
    let text = nested(64);
    let fast = walk_fast(&p, &text).expect("64 deep, skipped by the byte walk");
    assert_eq!(fast[s[0]], Some(Found::Num("1")));
    assert_eq!(walk_fast(&p, &nested(65)), None, "65 deep");
    assert_eq!(walk(&p, &nested(65)).expect("serde_json skips it")[s[0]], Some(Found::Num("1")));
}

/// Pointers deeper than the byte walk goes are left to serde_json, which refuses an event nested
/// past its recursion limit (128) in its own words.
#[test]
fn deep_pointers_are_serde_jsons_to_walk() {
    let deep = |n: usize| {
        let mut p = Plan::default();
        p.add(&"/a".repeat(n), ANY).expect("a pointer");
        (p, format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)))
    };
    // The byte walk goes as deep as MAX_DEPTH (64) and leaves anything deeper.
    for n in [60, 64] {
        let (p, text) = deep(n);
        assert_eq!(walk_fast(&p, &text).map(|c| c[0].clone()), Some(Some(Found::Num("1"))), "{n} deep");
    }
    for n in [65, 130] {
        let (p, text) = deep(n);
        assert_eq!(walk_fast(&p, &text), None, "{n} deep");
        assert_eq!(walk(&p, &text).is_ok(), n < 128, "serde_json reads it up to its own limit: {n} deep");
    }
    let (p, text) = deep(130);
    assert!(walk(&p, &text).expect_err("too deep").0.starts_with("recursion limit exceeded"), "{:?}", walk(&p, &text));
}

/// The string scan finds the first `"`, `\` or control character wherever it stands: in any lane
/// of a 16-byte step, in the last bytes of the text, after non-ASCII text; or finds none.
#[test]
fn the_string_scan_stops_at_the_first_byte_that_ends_a_plain_run() {
    use stream_json::scan::special;
    let plain: Vec<u8> = "abcdé+/=~ \u{7f}".bytes().cycle().take(300).collect();
    for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
        for from in [0, 1, 7, 15, 16, 17] {
            for at in from..plain.len() {
                let mut bytes = plain.clone();
                bytes[at] = stop;
                // A second one after it must not be taken for it.
                if at + 9 < bytes.len() {
                    bytes[at + 9] = b'"';
                }
                assert_eq!(special(&bytes, from), Some(at), "{stop:#x} at {at} from {from}");
            }
            assert_eq!(special(&plain, from), None, "none from {from}");
        }
    }
    assert_eq!(special(b"", 0), None);
    assert_eq!(special(b"ab", 5), None, "from past the end");
}
