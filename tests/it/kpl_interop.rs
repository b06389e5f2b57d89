//! Our KPL aggregate format against an independent implementation: the Python `aws-kinesis-agg`
//! package (installed into the repo's venv by scripts/local-aws). Its aggregates deaggregate here
//! to the same records, and ours deaggregate there.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

fn python(mode: &str, input: &str) -> String {
    let py = common::repo().join(".venv/bin/python");
    let script = common::repo().join("tests/fixtures/kpl_agg.py");
    let mut child = Command::new(&py)
        .arg(&script)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", py.display()));
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("python runs");
    assert!(out.status.success(), "kpl_agg.py {mode} failed");
    String::from_utf8(out.stdout).expect("utf8")
}

fn sample() -> Vec<(String, Vec<u8>)> {
    let mut tweets = stream::produce::source::Synthetic::new(Some(5));
    (0..40).map(|_| tweets.next_tweet()).map(|t| (t.user.screen_name.clone(), t.to_bytes())).collect()
}

#[test]
#[ignore = "needs aws-kinesis-agg from the venv: scripts/test"]
fn python_aggregates_deaggregate_here() {
    let records = sample();
    let json: Vec<(String, String)> = records.iter().map(|(k, d)| (k.clone(), B64.encode(d))).collect();
    let agg = B64.decode(python("aggregate", &serde_json::to_string(&json).expect("json")).trim()).expect("base64");
    let subs = stream::kpl::deaggregate(&agg).expect("python's aggregate reads");
    let back: Vec<(String, Vec<u8>)> = subs.iter().map(|s| (s.partition_key.to_string(), s.data.to_vec())).collect();
    assert_eq!(back, records);
    for sub in subs {
        stream::tweet::item_from_payload(sub.data).expect("each sub-record is a tweet");
    }
}

#[test]
#[ignore = "needs aws-kinesis-agg from the venv: scripts/test"]
fn our_aggregates_deaggregate_in_python() {
    let records = sample();
    let agg = stream::kpl::aggregate(records.iter().map(|(k, d)| (k.as_str(), d.as_slice())));
    let out = python("deaggregate", &B64.encode(&agg));
    let back: Vec<(String, String)> = serde_json::from_str(&out).expect("json");
    let back: Vec<(String, Vec<u8>)> = back.into_iter().map(|(k, d)| (k, B64.decode(d).expect("base64"))).collect();
    assert_eq!(back, records);
}
