//! `stream plan` through the real binary: on moto it reads a deployed stack's settings (and flags
//! beat them); with no AWS set up at all it prices the template's defaults without a call; the
//! billed duration follows --write-latency-ms, and DynamoDB's provisioned line stands beside the
//! on-demand one; bad flags are refused with our two lines and exit 2. The arithmetic itself is
//! tested by hand in `src/capacity/model.rs`.

use std::process::Command;

use serde_json::Value;
use stream::process::DEFAULT_WRITE_CONCURRENCY;
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
    // Each invocation: 250 records × 20 µs = 5 ms of CPU, + 250 / 25 = 10 BatchWriteItem calls, the
    // handler's write concurrency in flight (8 today: 2 rounds × 5 ms = 10 ms; 15 ms billed), at
    // 512 MB = 0.5 GB; a month is 730 h: 8 × 0.015 s × 0.5 GB × 2,628,000 s = 157,680 GB-seconds.
    let billed = 5 + 5 * 10u64.div_ceil(DEFAULT_WRITE_CONCURRENCY as u64);
    assert_eq!(lambda["billed_ms_per_invocation"].as_u64(), Some(billed), "{lambda}");
    let gb_s = 8.0 * billed as f64 / 1000.0 * 0.5 * 2_628_000.0;
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
    let (_, err) = run_without_aws(&["--rate", "500", "--write-latency-ms", "-1"], 2);
    common::assert_error_lines(&err, "--write-latency-ms -1 is below 0", "give --write-latency-ms the milliseconds");
    let (_, err) = run_without_aws(&["--rate", "500", "--write-latency-ms", "soon"], 2);
    common::assert_error_lines(&err, "--write-latency-ms \"soon\" is not a number", "from 0 to 60000");
}

/// `stream plan ARGS --output json` with no AWS, parsed.
fn json_without_aws(args: &[&str]) -> Value {
    let (out, _) = run_without_aws(&[args, &["--output", "json"]].concat(), 0);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("one JSON object: {e}\n{out}"))
}

/// The Lambda figure is CPU plus the waits for DynamoDB: 1,000 records/s on the template's one shard
/// is 10 invocations/s of 100 records, each 100 × 20 µs = 2 ms of CPU plus rounds of 4
/// BatchWriteItem calls at the handler's write concurrency (8 today: one round) × the latency; the
/// text says what was assumed.
#[test]
fn the_billed_duration_follows_the_write_latency() {
    let in_flight = DEFAULT_WRITE_CONCURRENCY as u64;
    let rounds = 4u64.div_ceil(in_flight);
    // With 8 in flight: 2 + 5 = 7, 2 + 0 = 2, 2 + 12 = 14, 2 + 2.2 = 4.2 → 5 ms (rounded up).
    let billed = |latency: f64| (2.0 + rounds as f64 * latency).ceil() as u64;
    for latency in [None, Some("0"), Some("12"), Some("2.2")] {
        let mut args = vec!["--rate", "1000", "--batch-size", "100"];
        args.extend(latency.map(|l| ["--write-latency-ms", l]).iter().flatten());
        let billed = billed(latency.map_or(5.0, |l| l.parse().expect("a number")));
        let p = json_without_aws(&args);
        let (lambda, d) = (&p["lambda"], &p["lambda"]["billed_duration"]);
        assert_eq!(lambda["invocations_per_s"].as_f64(), Some(10.0), "{lambda}");
        let calls = (d["calls"].as_u64(), d["calls_in_flight"].as_u64(), d["rounds"].as_u64());
        assert_eq!(calls, (Some(4), Some(in_flight), Some(rounds)), "{d}");
        assert_eq!(d["write_call"], "BatchWriteItem");
        assert_eq!(
            (d["billed_ms"].as_u64(), lambda["billed_ms_per_invocation"].as_u64()),
            (Some(billed), Some(billed)),
            "{d}"
        );
        // 10 × billed ms × 0.25 GB (the template's 256 MB) × 2,628,000 s.
        let gb_s = 10.0 * billed as f64 / 1000.0 * 0.25 * 2_628_000.0;
        let got = lambda["gb_seconds_per_month"].as_f64().expect("GB-s");
        assert!((got - gb_s).abs() < 1e-6 * gb_s, "GB-seconds {got} != {gb_s}");
    }
    let (text, _) = run_without_aws(&["--rate", "1000", "--batch-size", "100", "--write-latency-ms", "12"], 0);
    let round = if rounds == 1 { "1 round".to_string() } else { format!("{rounds} rounds") };
    let line = format!(
        "{} ms billed each: 100 records × 20.00 µs CPU = 2.00 ms, + {round} of 4 BatchWriteItem calls \
         ({in_flight} in flight) × 12.00 ms",
        billed(12.0)
    );
    assert!(text.contains(&line), "{line}\n{text}");
    assert!(text.contains("assumed: 12.00 ms per DynamoDB call (--write-latency-ms)"), "{text}");
}

/// At 5,000 records/s of 2 KB, with items of 2 KB, DynamoDB on-demand is over 95% of the bill; the
/// provisioned line (70% target utilization) stands beside it, outside the total.
#[test]
fn dynamodb_is_most_of_the_bill_and_provisioned_stands_beside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = dir.path().join("long.jsonl");
    // A tweet whose item (Username, Id, Timestamp, Message) is between 1 and 2 KB: 2 write units.
    let tweet = serde_json::json!({
        "id_str": "1800000000000000001", "created_at": "Wed Jan 01 00:00:00 +0000 2025",
        "text": "x".repeat(1800), "user": {"name": "Ada", "screen_name": "ada", "id_str": "1"},
    });
    std::fs::write(&sample, format!("{tweet}\n")).expect("sample");
    let sample = sample.to_str().expect("utf8");
    let p = json_without_aws(&["--rate", "5000", "--record-bytes", "2048", "--sample", sample]);
    assert_eq!(p["table"]["units_per_item"].as_u64(), Some(2), "{}", p["table"]);
    let cost = |name: &str| {
        let rows = p["costs"].as_array().expect("rows");
        rows.iter().find(|r| r["component"] == name).and_then(|r| r["monthly_usd"].as_f64()).expect(name)
    };
    // 10,000 WRU/s × 2,628,000 s × $0.625/M = $16,425; the rest (10 shards, PUT units, 50
    // invocations/s of 7 ms, their logs, the metrics) is about $418.
    let on_demand = cost("DynamoDB write request units");
    assert!((on_demand - 16_425.0).abs() < 1e-6, "{on_demand}");
    let total = p["total_usd"].as_f64().expect("total");
    let share = p["dynamodb_share"].as_f64().expect("share");
    assert!((share - on_demand / total).abs() < 1e-12 && share > 0.95, "{share} of {total}");
    // Provisioned: 10,000 / 0.7 → 14,286 WCU × 730 h × $0.00065 = $6,778.707, not in the total.
    let w = &p["provisioned_writes"];
    assert_eq!(
        (w["write_capacity_units"].as_u64(), w["target_utilization"].as_f64()),
        (Some(14_286), Some(0.7)),
        "{w}"
    );
    let provisioned = w["cost"]["monthly_usd"].as_f64().expect("usd");
    assert!((provisioned - 6_778.707).abs() < 1e-6, "{provisioned}");
    assert!((w["total_usd"].as_f64().expect("total") - (total - on_demand + provisioned)).abs() < 1e-6, "{w}");
    assert!(
        p["costs"].as_array().expect("rows").iter().all(|r| r["component"] != "DynamoDB provisioned write capacity")
    );
    let (text, _) = run_without_aws(&["--rate", "5000", "--record-bytes", "2048", "--sample", sample], 0);
    assert!(text.contains(&format!("DynamoDB's on-demand writes are {:.1}% of it", share * 100.0)), "{text}");
    assert!(
        text.contains("instead, provisioned: 14,286 WCU (10,000 write units/s at 70% target utilization)"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("DynamoDB provisioned write capacity") && l.ends_with("6,778.71")),
        "{text}"
    );
}
