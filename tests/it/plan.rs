//! `stream plan` through the real binary: on moto it reads a deployed stack's settings (and flags
//! beat them); with no AWS set up at all it prices the template's defaults without a call; bad
//! flags are refused with our two lines and exit 2. The arithmetic itself is tested by hand in
//! `src/capacity/model.rs`.

use std::process::Command;

use serde_json::Value;
use stream::template::{self, param};

use crate::common;

use common::World;

/// Runs `stream plan ARGS --output json` for `w` and parses what it prints.
fn plan_json(w: &World, args: &[&str]) -> Value {
    let args = [&["plan", "--output", "json"], args].concat();
    let (out, _) = w.run(&args, 0);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("stream {args:?} prints one JSON object: {e}\n{out}"))
}

/// The template's default for parameter `name`, as a number.
fn template_default(name: &str) -> u64 {
    let defaults = template::parameter_defaults();
    let text = &defaults.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("default of {name}")).1;
    text.parse().unwrap_or_else(|_| panic!("{name} = {text:?} is a number"))
}

/// The stack's memory, parallelization and batch size shape the plan; a flag overrides one of them.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_deployed_stack_supplies_the_settings() {
    let w = World::new("planstack", "ap-southeast-3");
    // Before the deploy: AWS answers, the stack is missing, so the template's defaults are priced.
    let before = plan_json(&w, &["--rate", "2000"]);
    let from = before["inputs"]["settings_from"].as_str().expect("settings_from");
    assert_eq!(from, format!("the template's defaults (stack \"{}\" does not exist)", w.stack));
    assert_eq!(before["inputs"]["memory_mb"], template_default(param::MEMORY));

    w.run(&["deploy", "--memory", "512", "--parallelization", "3", "--batch-size", "250"], 0);
    let p = plan_json(&w, &["--rate", "2000"]);
    let inputs = &p["inputs"];
    assert_eq!(inputs["settings_from"], format!("stack \"{}\"", w.stack), "{inputs}");
    assert_eq!((inputs["memory_mb"].as_u64(), inputs["parallelization"].as_u64()), (Some(512), Some(3)), "{inputs}");
    assert_eq!((inputs["batch_size"].as_u64(), inputs["on_demand"].as_bool()), (Some(250), Some(false)), "{inputs}");
    // 2,000 records/s of 456 bytes: 2,000 / 1,000 = 2 shards by the record rate (912,000 B/s is
    // under 1 MiB/s). Lambda runs shards × parallelization = 2 × 3 = 6 lanes; 2,000 / 250 = 8
    // batches a second is more than the 6 lanes' one poll a second, so 8 invocations/s.
    let (stream, lambda) = (&p["unaggregated"], &p["lambda"]);
    assert_eq!((stream["shards"].as_u64(), stream["limit"].as_str()), (Some(2), Some("records")), "{stream}");
    assert_eq!(lambda["shards"], stream["shards"], "{lambda}");
    assert_eq!(lambda["concurrency"].as_u64(), Some(2 * 3), "{lambda}");
    assert_eq!(lambda["batch_records"].as_u64(), Some(250), "{lambda}");
    assert_eq!(lambda["invocations_per_s"].as_f64(), Some(8.0), "{lambda}");
    // Each invocation: 250 records × 20 µs = 5 ms billed, at 512 MB = 0.5 GB; a month is 730 h:
    // 8 × 0.005 s × 0.5 GB × 2,628,000 s = 52,560 GB-seconds.
    let gb_s = 52_560.0;
    let got = lambda["gb_seconds_per_month"].as_f64().expect("GB-s");
    assert!((got - gb_s).abs() < 1e-6 * gb_s, "GB-seconds {got} != {gb_s}");

    // A flag beats the stack's value; the rest still come from the stack.
    let flagged = plan_json(&w, &["--rate", "2000", "--memory", "1024"]);
    let inputs = &flagged["inputs"];
    assert_eq!((inputs["memory_mb"].as_u64(), inputs["parallelization"].as_u64()), (Some(1024), Some(3)), "{inputs}");
    assert_eq!(inputs["settings_from"], format!("stack \"{}\"", w.stack));

    let (text, _) = w.run(&["plan", "--rate", "2000"], 0);
    assert!(text.contains(&format!("settings from stack \"{}\"", w.stack)), "{text}");
    assert!(text.contains("concurrency 6 (2 shards × parallelization 3)"), "{text}");
    w.run(&["destroy", "--yes"], 0);
}

/// `stream plan ARGS --endpoint-url <dead>` with no credentials anywhere: no env keys, no
/// profile files, no instance metadata. Returns (stdout, stderr).
fn run_without_aws(args: &[&str], code: i32) -> (String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let args = [&["plan"], args, &["--endpoint-url", common::DEAD_ENDPOINT]].concat();
    // env_clear: the moto run exports dummy keys, a region and AWS_ENDPOINT_URL; none may leak in.
    let out = Command::new(common::bin())
        .args(&args)
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("stream runs");
    common::check(&out, code, &args)
}

/// Without AWS a plan still works, from the template's defaults, and says so; bad flags exit 2.
#[test]
fn without_aws_the_template_defaults_are_priced_and_bad_flags_refused() {
    let (out, _) = run_without_aws(&["--rate", "500", "--output", "json"], 0);
    let p: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("one JSON object: {e}\n{out}"));
    let inputs = &p["inputs"];
    assert_eq!(inputs["settings_from"], "the template's defaults (AWS is not set up here)", "{inputs}");
    assert_eq!(inputs["memory_mb"].as_u64(), Some(template_default(param::MEMORY)), "{inputs}");
    assert_eq!(inputs["parallelization"].as_u64(), Some(template_default(param::PARALLELIZATION)), "{inputs}");
    assert_eq!(inputs["batch_size"].as_u64(), Some(template_default(param::BATCH_SIZE)), "{inputs}");
    assert_eq!(inputs["rate"].as_f64(), Some(500.0));
    assert!(p["total_usd"].as_f64().is_some_and(|usd| usd > 0.0), "{p}");
    let (text, _) = run_without_aws(&["--rate", "500"], 0);
    assert!(text.contains("settings from the template's defaults (AWS is not set up here)"), "{text}");

    let (_, err) = run_without_aws(&["--rate", "0"], 2);
    common::assert_error_lines(&err, "--rate 0 is not above 0", "give --rate a number above 0");
    let (_, err) = run_without_aws(&["--rate", "abc"], 2);
    common::assert_error_lines(&err, "--rate \"abc\" is not a number", "give --rate a number above 0");
    let (_, err) = run_without_aws(&["--rate", "500", "--record-bytes", "0"], 2);
    common::assert_error_lines(&err, "--record-bytes 0 is out of range", "from 1 to 1048576");
}
