//! Build script: parses template/stack.yaml once, at build time, and writes it as JSON
//! ($OUT_DIR/stack.json) with CloudFormation's short-form tags (`!Ref`, `!Sub`, `!GetAtt`, …)
//! written in their long form. The binary reads and edits the template as data from that JSON;
//! a template that is not valid YAML fails the build, not a deploy. It also names the commit the
//! binary is built from (STREAM_COMMIT, for `stream --version`): `git rev-parse`, or the
//! STREAM_COMMIT the build is given (a build outside a clone), or "unknown" (src/build/commit.rs).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};
use serde_yaml_ng::Value as Yaml;

// The commit logic is plain std in a file of its own, so a test can compile and run it alone.
#[path = "src/build/commit.rs"]
mod commit;

const TEMPLATE: &str = "template/stack.yaml";

fn main() {
    commit();
    println!("cargo::rerun-if-changed={TEMPLATE}");
    let text = std::fs::read_to_string(TEMPLATE).unwrap_or_else(|e| panic!("reading {TEMPLATE}: {e}"));
    let yaml: Yaml = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{TEMPLATE} is not valid YAML: {e}"));
    let json = to_json(yaml);
    for section in ["Parameters", "Resources", "Outputs"] {
        assert!(json.get(section).is_some_and(Json::is_object), "{TEMPLATE} has no {section} section");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("stack.json");
    std::fs::write(&out, json.to_string()).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

/// Sets STREAM_COMMIT to the commit being built, and asks to run again when HEAD moves.
fn commit() {
    println!("cargo::rerun-if-env-changed=STREAM_COMMIT");
    let found = commit::read(Path::new("."));
    for path in &found.watch {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    let given = std::env::var("STREAM_COMMIT").ok().filter(|c| !c.is_empty());
    println!("cargo::rustc-env=STREAM_COMMIT={}", given.or(found.id).unwrap_or_else(|| "unknown".into()));
}

/// One YAML value as JSON; a tagged value (`!Name x`) becomes `{"Fn::Name": x}` (`Ref` and
/// `Condition` keep their bare names; `!GetAtt A.B` becomes `["A", "B"]`).
fn to_json(value: Yaml) -> Json {
    match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                Json::from(n.as_f64().unwrap_or_default())
            }
        }
        Yaml::String(s) => Json::String(s),
        Yaml::Sequence(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s,
                    other => panic!("{TEMPLATE}: a mapping key that is not a string: {other:?}"),
                };
                out.insert(key, to_json(v));
            }
            Json::Object(out)
        }
        Yaml::Tagged(tagged) => {
            let name = tagged.tag.to_string().trim_start_matches('!').to_string();
            let inner = to_json(tagged.value);
            let (key, inner) = match name.as_str() {
                "Ref" | "Condition" => (name.clone(), inner),
                "GetAtt" => {
                    let inner = match inner {
                        Json::String(s) => match s.split_once('.') {
                            Some((resource, attribute)) => Json::from(vec![resource, attribute]),
                            None => Json::String(s),
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_string(), inner)
                }
                _ => (format!("Fn::{name}"), inner),
            };
            Json::Object(Map::from_iter([(key, inner)]))
        }
    }
}
