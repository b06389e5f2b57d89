//! Tests of `stream-json` (src/json): the one-pass walk and JSON Pointers. They live here because a
//! path package's own tests are not run by `cargo test`.

use std::borrow::Cow;

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
