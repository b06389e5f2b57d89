//! `stream logs` through the real binary: against the emulator's CloudWatch Logs (events put into
//! the function's log group: rendered, passed through, filtered, followed), and against `stream
//! local`'s function log after a real run (START, REPORT and the function's lines, no AWS call).

use crate::common::{self, World};

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::types::InputLogEvent;

const SUMMARY: &str = r#"{"level":"INFO","fields":{"message":"batch done","records":3,"user_records":3,"written":2,"duplicates":0,"retried":0,"quarantined":1,"not_done":0,"duration_ms":4.5}}"#;
const QUARANTINE: &str = r#"{"level":"WARN","fields":{"message":"record quarantined","shard":"shardId-000000000000","sequence_number":"42","reason":"not JSON"}}"#;
const EMF: &str = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"stream","Dimensions":[["FunctionName"]],"Metrics":[{"Name":"Written","Unit":"Count"}]}]},"FunctionName":"f","Written":2.0}"#;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// A running `stream logs -f`, its stdout lines arriving on a channel.
struct Following {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Following {
    fn start(w: &World, args: &[&str]) -> Following {
        let mut child = w.cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("stream logs -f");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Following { child, lines }
    }

    /// Waits for a line containing `text`; returns the lines up to it.
    fn wait_for(&self, text: &str) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while Instant::now() < until {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let done = line.contains(text);
                seen.push(line);
                if done {
                    return seen;
                }
            }
        }
        panic!("no line with {text:?} within 30 s: {seen:?}");
    }

    /// Ctrl-C: a normal end, exit 0, the count on stderr.
    fn stop(self) -> String {
        let ok = std::process::Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        assert!(ok.is_ok_and(|s| s.success()));
        let out = self.child.wait_with_output().expect("stream logs ends");
        common::check(&out, 0, &["logs", "-f"]).1
    }
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn cloudwatch_logs_are_rendered_filtered_and_followed() {
    let w = World::new("logs", "il-central-1");
    let clients = w.clients().await;
    w.run(&["deploy"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    let group = format!("/aws/lambda/{}", outputs.function_name);
    let logs = &clients.logs;
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name("2026/11/26/[$LATEST]a")
        .send()
        .await
        .expect("stream");
    let put = |messages: Vec<&'static str>| {
        let (logs, group) = (logs.clone(), group.clone());
        async move {
            let t = now_ms();
            let events: Vec<InputLogEvent> = messages
                .iter()
                .enumerate()
                .map(|(i, m)| InputLogEvent::builder().timestamp(t + i as i64).message(*m).build().expect("event"))
                .collect();
            let req = logs.put_log_events().log_group_name(&group).log_stream_name("2026/11/26/[$LATEST]a");
            req.set_log_events(Some(events)).send().await.expect("put log events");
        }
    };
    // Two hours ago: before the default 10 minutes and before `--since 1h`, within `--since 3h`.
    let old = InputLogEvent::builder().timestamp(now_ms() - 2 * 3600 * 1000).message("two hours ago").build();
    let req = logs.put_log_events().log_group_name(&group).log_stream_name("2026/11/26/[$LATEST]a");
    req.log_events(old.expect("event")).send().await.expect("put the old event");
    put(vec!["START RequestId: r1 Version: $LATEST", SUMMARY, QUARANTINE, EMF, "END RequestId: r1"]).await;

    let (out, err) = w.run(&["logs"], 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[0].ends_with("Z  START RequestId: r1 Version: $LATEST"), "{out}");
    assert!(
        lines[1].contains("INFO   batch done  records=3 user_records=3 written=2 duplicates=0 retried=0 quarantined=1")
    );
    assert!(lines[2].contains("WARN   QUARANTINED record quarantined  shard=shardId-000000000000 sequence_number=42"));
    assert!(lines[3].contains("METRICS  stream: Written=2"), "{out}");
    assert!(err.contains(&format!("5 events from log group {group}")), "{err}");

    // As logged, untouched (jsonl), or one JSON array of the same (json: a JSON message is its
    // value, a platform line a string); filtered by the service.
    let (out, _) = w.run(&["logs", "--output", "jsonl"], 0);
    let logged = ["START RequestId: r1 Version: $LATEST", SUMMARY, QUARANTINE, EMF, "END RequestId: r1"];
    assert_eq!(out.lines().collect::<Vec<_>>(), logged);
    let (out, _) = w.run(&["logs", "--output", "json"], 0);
    let array: Vec<serde_json::Value> = serde_json::from_str(&out).expect("one JSON array");
    let expected: Vec<serde_json::Value> = logged
        .iter()
        .map(|m| serde_json::from_str(m).unwrap_or_else(|_| serde_json::Value::String(m.to_string())))
        .collect();
    assert_eq!(array, expected);
    let (out, _) = w.run(&["logs", "--filter", "WARN", "-o", "jsonl"], 0);
    assert_eq!(out.lines().collect::<Vec<_>>(), [QUARANTINE]);
    let (out, _) = w.run(&["logs", "--since", "2026-01-01T00:00:00Z", "--filter", "RequestId", "-o", "jsonl"], 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    // --since: the events from then on, no earlier one.
    let (out, _) = w.run(&["logs", "--since", "3h", "-o", "jsonl"], 0);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["two hours ago", "START RequestId: r1 Version: $LATEST", SUMMARY, QUARANTINE, EMF, "END RequestId: r1"]
    );
    let (out, _) = w.run(&["logs", "--since", "1h", "-o", "jsonl"], 0);
    assert_eq!(out.lines().count(), 5, "not the event of two hours ago: {out}");

    // Followed: what is logged later shows up; Ctrl-C ends it normally. (The emulator has no Live
    // Tail: the command says so and polls.)
    let follow = Following::start(&w, &["logs", "-f", "-o", "jsonl"]);
    follow.wait_for("END RequestId: r1");
    put(vec!["START RequestId: r2 Version: $LATEST"]).await;
    let later = follow.wait_for("RequestId: r2");
    assert_eq!(later, ["START RequestId: r2 Version: $LATEST"], "each event once");
    let err = follow.stop();
    assert!(err.contains("no Live Tail at http://127.0.0.1") && err.contains("polling every second"), "{err}");
    w.run(&["destroy", "--yes"], 0);
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn the_local_function_log_reads_the_same_way() {
    let w = World::new("locallogs", "ap-southeast-4");
    w.run(&["deploy", "--batch-size", "25"], 0);
    w.run(&["produce", "--count", "50", "--seed", "31"], 0);
    w.run(&["local", "--until-idle"], 0);

    // No AWS call: an endpoint nothing listens on.
    let dead = ["--endpoint-url", common::DEAD_ENDPOINT];
    let (out, _) = w.run(&["logs", "--local", dead[0], dead[1]], 0);
    let count = |text: &str| out.lines().filter(|l| l.contains(text)).count();
    assert_eq!(count("  START RequestId: "), 2, "{out}");
    assert_eq!(count("  END RequestId: "), 2, "{out}");
    assert_eq!(count("  batch done  records=25 user_records=25 written=25"), 2, "{out}");
    assert_eq!(count("METRICS  stream: RecordsIn=25"), 2, "{out}");
    let reports: Vec<&str> = out.lines().filter(|l| l.contains("  REPORT RequestId: ")).collect();
    assert_eq!(reports.len(), 2, "{out}");
    assert!(
        reports.iter().all(|r| r.contains("Billed Duration: ") && r.contains("Memory Size: 256 MB")),
        "{reports:?}"
    );
    assert!(reports[0].contains("Max Memory Used: ") && reports[0].contains("Init Duration: "), "{reports:?}");
    assert!(!reports[1].contains("Init Duration"), "a warm invocation has no init: {reports:?}");

    let (out, _) = w.run(&["logs", "--local", "--filter", "REPORT -Init", "-o", "jsonl", dead[0], dead[1]], 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("REPORT RequestId: "), "as logged: {out}");
    let (_, err) = w.run(&["logs", "--local", "--filter", "{ $.level = \"WARN\" }", dead[0], dead[1]], 2);
    common::assert_error_lines(&err, "only CloudWatch Logs matches", "leave out --local");

    // Followed while another run appends to it.
    let follow = Following::start(&w, &["logs", "--local", "-f", "-o", "jsonl", dead[0], dead[1]]);
    follow.wait_for("REPORT RequestId");
    w.run(&["produce", "--count", "10", "--seed", "32"], 0);
    w.run(&["local", "--until-idle"], 0);
    follow.wait_for("\"records\":10");
    follow.stop();

    let other = World::new("nolog", "ap-southeast-4");
    let (_, err) = other.run(&["logs", "--local", dead[0], dead[1]], 2);
    common::assert_error_lines(&err, "there is no function log at ", "run `stream local` first");
    w.run(&["destroy", "--yes"], 0);
}
