//! `stream local` as a faithful Lambda: the uploaded bootstrap runs as a child process under a
//! Runtime API, with the stack's mapping settings. On moto: a bootstrap killed mid-batch twice loses
//! nothing; a poison record does not block its shard; a record the function always fails on uses up
//! its retries, lands in the on-failure queue and the shard moves on; a hung function is stopped at
//! its timeout and its batch retried. Tests marked `#[ignore]` need moto (scripts/test).

use crate::common;
use crate::fault_proxy;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use common::World;
use fault_proxy::{FaultProxy, Faults};

/// A process as the kernel knows it: its pid and its start time (clock ticks after boot). The
/// pair stays unique when a pid is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Process {
    pid: u32,
    started: u64,
}

/// (command name, parent pid, start time) of a live process, from /proc/<pid>/stat.
fn stat(pid: u32) -> Option<(String, u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid … with the start time as field 22.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
    Some((stat[open + 1..close].to_string(), rest.get(1)?.parse().ok()?, rest.get(19)?.parse().ok()?))
}

/// True while this very process (not a later one with its pid) is alive.
fn alive(p: Process) -> bool {
    stat(p.pid).is_some_and(|(_, _, started)| started == p.started)
}

/// The processes named `name` whose parent is `parent`.
fn children_named(parent: u32, name: &str) -> Vec<Process> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Some((comm, ppid, started)) = stat(pid)
            && comm == name
            && ppid == parent
        {
            out.push(Process { pid, started });
        }
    }
    out
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill runs");
    assert!(ok.success(), "kill {sig} {pid}");
}

/// Starts `stream local --until-idle -o json` in the background.
fn start_local(w: &World, extra: &[&str]) -> Child {
    let mut args = vec!["local", "--until-idle", "--output", "json"];
    args.extend_from_slice(extra);
    w.cmd(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("stream local starts")
}

/// Waits for a bootstrap child of `local` that is not in `seen`.
fn next_bootstrap(local: u32, seen: &[Process], within: Duration) -> Process {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Some(pid) = children_named(local, "bootstrap").into_iter().find(|p| !seen.contains(p)) {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no new bootstrap process under {local} within {within:?}");
}

/// Waits until the function's log gains a "batch done" line it did not have when called.
fn wait_for_new_batch_line(log: &std::path::Path, within: Duration) {
    let count = || std::fs::read_to_string(log).map(|t| t.matches("\"batch done\"").count()).unwrap_or(0);
    let (before, until) = (count(), Instant::now() + within);
    while count() == before {
        assert!(Instant::now() < until, "no batch finished within {within:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn finish(child: Child, code: i32) -> serde_json::Value {
    let out = child.wait_with_output().expect("stream local ends");
    let (stdout, _) = common::check(&out, code, &["local"]);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("summary json ({e}): {stdout}"))
}

/// The keys the table must end with: one per distinct tweet on the stream.
async fn expected_keys(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> BTreeSet<(String, String)> {
    common::read_stream(kinesis, stream)
        .await
        .iter()
        .filter_map(|(_, _, data)| stream::tweet::item_from_payload(data).ok())
        .map(|i| (i.username, i.id))
        .collect()
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_bootstrap_killed_mid_batch_twice_loses_nothing() {
    let w = World::new("kill", "ap-south-1");
    let clients = w.clients().await;
    w.run(&["deploy", "--batch-size", "200"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    w.run(&["produce", "--count", "10000", "--seed", "11"], 0);
    let expected = expected_keys(&clients.kinesis, &outputs.stream_name).await;
    assert!(expected.len() > 9_900, "distinct tweets: {}", expected.len());

    let local = start_local(&w, &[]);
    let log = w.state_dir().join(format!("local/{}/{}/function.log", w.region, w.stack));
    let mut killed = Vec::new();
    for _ in 0..2 {
        let process = next_bootstrap(local.id(), &killed, Duration::from_secs(60));
        // Kill it once it has finished a batch: the shard has records queued, so it is working on
        // the next one (the summary below proves a batch was in flight).
        wait_for_new_batch_line(&log, Duration::from_secs(60));
        signal(process.pid, "-KILL");
        killed.push(process);
    }
    let summary = finish(local, 0);
    assert_eq!(summary["crashes"], 2, "{summary}");
    assert_eq!(summary["cold_starts"], 3, "the first process and one after each kill: {summary}");
    assert_eq!(summary["records"], 10_000, "{summary}");
    assert!(
        summary["deliveries"].as_u64() > Some(10_000),
        "the batches in flight at the kills were delivered again: {summary}"
    );
    assert_eq!(summary["skipped"], 0, "{summary}");
    assert_eq!(common::table_keys(&clients.dynamodb, &outputs.table_name).await, expected, "every tweet exactly once");
    w.run(&["destroy", "--yes"], 0);
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_record_the_function_always_fails_on_goes_to_the_on_failure_queue_and_the_shard_moves_on() {
    let w = World::new("onfail", "ap-southeast-2");
    let clients = w.clients().await;
    w.run(&["deploy", "--batch-size", "20", "--max-retries", "2"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    w.run(&["produce", "--count", "40", "--seed", "5"], 0);
    // A poison record (not JSON) and a tweet whose write is always denied, then more tweets.
    let put = |data: Vec<u8>| {
        let (kinesis, stream) = (clients.kinesis.clone(), outputs.stream_name.clone());
        async move {
            let out = kinesis.put_record().stream_name(stream).partition_key("p").data(Blob::new(data)).send();
            out.await.expect("put").sequence_number().to_string()
        }
    };
    put(b"not json at all".to_vec()).await;
    let doomed = put(common::tweet("777", "always-fails-user", "hello")).await;
    w.run(&["produce", "--count", "40", "--seed", "6"], 0);
    let expected: BTreeSet<_> = expected_keys(&clients.kinesis, &outputs.stream_name)
        .await
        .into_iter()
        .filter(|(user, _)| user != "always-fails-user")
        .collect();

    let proxy = FaultProxy::before_moto(Faults { deny_marker: Some("always-fails-user"), ..Faults::default() }, 1);
    let summary = finish(start_local(&w, &["--endpoint-url", &proxy.url]), 3);
    assert_eq!(summary["skipped"], 1, "only the doomed record is given up: {summary}");
    assert_eq!(summary["on_failure_records"], 1, "{summary}");
    // The third batch (records 40-59) holds the poison record (40) and the doomed one (41): it is
    // split 20 -> 10 -> 5 -> 2 -> 1, and the doomed record alone is tried 3 times. The poison record
    // is quarantined wherever its batch runs (20, 10, 5, 2, then alone): 5 times, one item in
    // quarantine, never a failure of its own.
    assert_eq!(summary["bisections"], 4, "the failing batch was split 20 -> 10 -> 5 -> 2 -> 1: {summary}");
    assert_eq!(summary["function_errors"], 7, "4 split batches, then the record alone 3 times: {summary}");
    assert_eq!(summary["quarantined"], 5, "{summary}");
    assert_eq!(common::item_count(&clients.dynamodb, &outputs.rejected_table).await, 1);
    assert_eq!(common::table_keys(&clients.dynamodb, &outputs.table_name).await, expected, "every other tweet landed");

    // The on-failure record names the shard and the one record's sequence range.
    let queue = clients.cfn.describe_stacks().stack_name(&w.stack).send().await.expect("stack");
    let url = queue.stacks()[0]
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some("FailedBatchQueueUrl"))
        .and_then(|o| o.output_value())
        .expect("queue url")
        .to_string();
    let got = clients.sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.expect("receive");
    assert_eq!(got.messages().len(), 1, "{got:?}");
    let doc: serde_json::Value = serde_json::from_str(got.messages()[0].body().expect("body")).expect("json");
    let info = &doc["KinesisBatchInfo"];
    assert_eq!(info["batchSize"], 1, "{doc}");
    assert_eq!(info["startSequenceNumber"], doomed.as_str());
    assert_eq!(info["endSequenceNumber"], doomed.as_str());
    assert_eq!(info["shardId"], "shardId-000000000000");
    assert_eq!(info["streamArn"], outputs.stream_arn.as_str());
    assert_eq!(doc["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(doc["requestContext"]["approximateInvokeCount"], 3, "the first try and two retries");
    assert_eq!(doc["responseContext"]["functionError"], "Unhandled");
    assert_eq!(proxy.counters.denied.load(std::sync::atomic::Ordering::SeqCst), 7, "one denied write per error");

    // The shard moved on: the checkpoint is past the doomed record.
    let summary = finish(start_local(&w, &[]), 0);
    assert_eq!(summary["records"], 0, "{summary}");
    w.run(&["destroy", "--yes"], 0);
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_hung_function_is_stopped_at_its_timeout_and_the_batch_retried() {
    let w = World::new("timeout", "ap-northeast-2");
    let clients = w.clients().await;
    w.run(&["deploy", "--timeout", "2", "--batch-size", "50"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    w.run(&["produce", "--count", "300", "--seed", "21"], 0);
    let expected = expected_keys(&clients.kinesis, &outputs.stream_name).await;

    let started = Instant::now();
    let local = start_local(&w, &[]);
    let hung = next_bootstrap(local.id(), &[], Duration::from_secs(60));
    // Once it works on the stream, the process hangs (as a function stuck on a call would): only
    // the deadline ends it. (Stopped during its init, the init limit would end it instead.)
    let log = w.state_dir().join(format!("local/{}/{}/function.log", w.region, w.stack));
    wait_for_new_batch_line(&log, Duration::from_secs(60));
    signal(hung.pid, "-STOP");
    let summary = finish(local, 0);
    assert_eq!(summary["timeouts"], 1, "{summary}");
    assert_eq!(summary["cold_starts"], 2, "a new process after the timeout: {summary}");
    assert!(started.elapsed() >= Duration::from_secs(2), "the timeout ran its course");
    // Stopped at the function's own timeout (deploy's --timeout 2), not at a default: the log says
    // which limit ended it, as Lambda's does.
    let text = std::fs::read_to_string(&log).expect("the function's log");
    assert_eq!(text.matches("Task timed out after").count(), 1, "{text}");
    assert!(text.contains("Task timed out after 2.00 seconds"), "{text}");
    assert!(!alive(hung), "the hung process was killed");
    assert_eq!(summary["records"], 300, "{summary}");
    assert_eq!(common::table_keys(&clients.dynamodb, &outputs.table_name).await, expected);
    w.run(&["destroy", "--yes"], 0);
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn parallel_batches_of_a_shard_keep_each_keys_order() {
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    let w = World::new("lanes", "eu-central-2");
    let clients = w.clients().await;
    w.run(&["deploy", "--batch-size", "3", "--parallelization", "4"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    // 7 users (not a multiple of the 4 lanes), each with ten versions of one tweet in a row: a
    // key's versions span adjacent batches of 3, which only lanes chosen by key keep in order (by
    // position or round robin, its batches would run at once in different lanes).
    const USERS: usize = 7;
    let lanes: BTreeSet<usize> = (0..USERS).map(|u| stream::local::mapping::lane_of(&format!("user{u}"), 4)).collect();
    assert!(lanes.len() > 1, "the keys use several lanes: {lanes:?}");
    let mut entries = Vec::new();
    for u in 0..USERS {
        for v in 0..10 {
            let data = serde_json::json!({
                "id_str": format!("{}", 1000 + u), "created_at": "Wed Oct 10 20:19:24 +0000 2018",
                "text": format!("v{v}"), "user": {"name": format!("user{u}"), "screen_name": format!("user{u}"), "id_str": "1"}
            });
            entries.push(
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("user{u}"))
                    .data(Blob::new(data.to_string()))
                    .build()
                    .expect("entry"),
            );
        }
    }
    let out = clients.kinesis.put_records().stream_name(&outputs.stream_name).set_records(Some(entries)).send();
    assert_eq!(out.await.expect("put").failed_record_count(), Some(0));

    let summary = finish(start_local(&w, &[]), 0);
    assert_eq!(summary["records"], 70, "{summary}");
    assert!(summary["peak_concurrency"].as_u64() > Some(1), "batches of the shard ran in parallel: {summary}");
    assert!(summary["peak_concurrency"].as_u64() <= Some(4), "at most ParallelizationFactor: {summary}");
    let (items, _) = w.run(&["scan-table", "--output", "jsonl"], 0);
    let messages: Vec<String> = items
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("jsonl")["Message"].as_str().unwrap_or("").to_string()
        })
        .collect();
    assert_eq!(messages.len(), USERS);
    assert!(messages.iter().all(|m| m == "v9"), "the last version of every tweet wins: {messages:?}");
    w.run(&["destroy", "--yes"], 0);
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn ctrl_c_stops_cleanly_and_a_new_run_resumes_where_it_stopped() {
    let w = World::new("resume", "eu-west-2");
    let clients = w.clients().await;
    w.run(&["deploy", "--batch-size", "100"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    w.run(&["produce", "--count", "3000", "--seed", "8"], 0);
    let expected = expected_keys(&clients.kinesis, &outputs.stream_name).await;

    // Without --until-idle `local` runs until Ctrl-C; on a terminal it shows a live line.
    let command = format!("{} local --stack {} --region {}", common::bin(), w.stack, w.region);
    let mut script = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("AWS_SHARED_CREDENTIALS_FILE", w.credentials_file())
        .env("STREAM_STATE_DIR", w.state_dir())
        .env_remove("STREAM_STACK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script runs");
    // Wait until part of the stream is done, then press Ctrl-C.
    let until = Instant::now() + Duration::from_secs(60);
    let checkpoints = w.state_dir().join(format!("local/{}/{}/checkpoints.json", w.region, w.stack));
    while !checkpoints.exists() {
        assert!(Instant::now() < until, "no checkpoint within a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
    use std::io::Write;
    script.stdin.as_mut().expect("stdin").write_all(b"\x03").expect("ctrl-c");
    let out = script.wait_with_output().expect("script ends");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{screen}");
    assert!(screen.contains("invocations") && screen.contains("records/s") && screen.contains("lag"), "{screen}");
    let first: u64 = common::number_after(&screen, "processed ", " ");

    // The next run starts after the checkpoint: together the two runs did the stream once.
    let summary = finish(start_local(&w, &[]), 0);
    let second = summary["records"].as_u64().expect("records");
    assert!(first > 0 && second > 0, "{first} then {second}");
    assert!(first + second >= 3000, "nothing skipped: {first} + {second}");
    assert!(first + second <= 3000 + 100, "at most the batch in flight again: {first} + {second}");
    assert_eq!(common::table_keys(&clients.dynamodb, &outputs.table_name).await, expected);
    w.run(&["destroy", "--yes"], 0);
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn an_init_error_is_reported_and_the_mapping_gives_up_after_its_retries() {
    use aws_sdk_lambda::types::Environment;
    let w = World::new("initerr", "us-west-1");
    let clients = w.clients().await;
    let lambda = w.lambda().await;
    w.run(&["deploy", "--batch-size", "10", "--max-retries", "1"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    // The function loses its table setting: it cannot initialize.
    lambda
        .update_function_configuration()
        .function_name(&outputs.function_name)
        .environment(Environment::builder().variables("TABLE_NAME", "").build())
        .send()
        .await
        .expect("update the function");
    w.run(&["produce", "--count", "5", "--seed", "1"], 0);
    let out = start_local(&w, &[]).wait_with_output().expect("stream local ends");
    let (stdout, stderr) = common::check(&out, 3, &["local"]);
    assert!(
        stderr.contains("the function failed to start: Runtime.ConfigError: TABLE_NAME is not set"),
        "the init error is reported once, with the function's own reason: {stderr}"
    );
    assert_eq!(stderr.matches("failed to start").count(), 1, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(summary["skipped"], 5, "{summary}");
    let items = clients.dynamodb.scan().table_name(&outputs.table_name).send().await.expect("scan");
    assert_eq!(items.count(), 0, "nothing was written");
    w.run(&["destroy", "--yes"], 0);
}
