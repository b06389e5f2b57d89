//! One `--output` for every command, as the AWS CLI has it: the flag, else AWS_DEFAULT_OUTPUT, else
//! the profile's `output`, else the command's own; a format a command cannot print (a profile's
//! `yaml` included) is refused with where it came from, before any call. On moto: deploy and
//! destroy print JSON, summaries print tables, and scan-table prints a page at a time in every
//! format, so `| head` stops the reading.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde_json::Value;

use crate::common::{self, DEAD_ENDPOINT, World, assert_error_lines};
use crate::fault_proxy::{FaultProxy, Faults};

/// `stream ARGS` with credentials and a region in the environment, `env` added, and an AWS config
/// file holding `config` (HOME has no ~/.aws). Returns (stdout, stderr).
fn with_config(args: &[&str], config: &str, env: &[(&str, &str)], code: i32) -> (String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(home.path().join("config"), config).expect("config");
    let mut c = Command::new(common::bin());
    c.args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_CONFIG_FILE", home.path().join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        c.env(k, v);
    }
    common::check(&c.output().expect("stream runs"), code, args)
}

#[test]
fn the_flag_then_aws_default_output_then_the_profile_choose_the_format() {
    // schema check needs no AWS: the format is all there is to see.
    let check = ["schema", "check", "iot"];
    let json = |out: &str| serde_json::from_str::<Value>(out).is_ok_and(|v| v.is_object());
    // Nothing set: the command's own (text for people).
    let (out, _) = with_config(&check, "", &[], 0);
    assert!(!json(&out) && out.contains("table keys"), "{out}");
    // The profile's output, the selected profile's only.
    let profiles = "[default]\noutput = json\n[profile ops]\noutput = table\n";
    let (out, _) = with_config(&check, profiles, &[], 0);
    assert!(json(&out), "default profile's json: {out}");
    let (out, _) = with_config(&check, profiles, &[("AWS_PROFILE", "ops")], 0);
    assert!(out.starts_with("+---") && out.contains("|  ") && out.contains("schema check"), "ops' table: {out}");
    // AWS_DEFAULT_OUTPUT over the profile; --output over both.
    let (out, _) = with_config(&check, profiles, &[("AWS_DEFAULT_OUTPUT", "json"), ("AWS_PROFILE", "ops")], 0);
    assert!(json(&out), "{out}");
    let (out, _) =
        with_config(&[&check[..], &["--output", "text"]].concat(), profiles, &[("AWS_DEFAULT_OUTPUT", "json")], 0);
    assert!(!json(&out) && !out.starts_with('+'), "{out}");
}

#[test]
fn a_format_a_command_cannot_print_is_refused_before_any_call() {
    let status = ["status", "--endpoint-url", DEAD_ENDPOINT];
    let (_, err) = with_config(&[&status[..], &["--output", "csv"]].concat(), "", &[], 2);
    assert_error_lines(&err, "stream status has no csv output", "give --output text, json or table");
    let (_, err) = with_config(&status, "", &[("AWS_DEFAULT_OUTPUT", "yaml")], 2);
    assert_error_lines(
        &err,
        "AWS_DEFAULT_OUTPUT is \"yaml\", which stream status cannot print",
        "give --output text, json or table, or unset AWS_DEFAULT_OUTPUT",
    );
    let (_, err) = with_config(&status, "[profile dev]\noutput = yaml-stream\n", &[("AWS_PROFILE", "dev")], 2);
    assert_error_lines(
        &err,
        "the output of profile \"dev\" is \"yaml-stream\", which stream status cannot print",
        "give --output text, json or table, or set its output to",
    );
    // --output wins over a configured format stream cannot print.
    let (_, err) =
        with_config(&[&status[..], &["--output", "json"]].concat(), "", &[("AWS_DEFAULT_OUTPUT", "yaml")], 1);
    assert!(err.contains("cannot reach the endpoint"), "went on to the call: {err}");
    let (_, err) = with_config(&["scan-table", "-o", "yaml"], "", &[], 2);
    assert!(err.contains("invalid value 'yaml' for '--output"), "{err}");
    let (_, err) = with_config(&["logs", "--local", "-o", "table"], "", &[], 2);
    assert_error_lines(&err, "stream logs has no table output", "give --output text, json or jsonl");
}

/// A template or a completion script is a file to keep: a configured format does not change it,
/// --output json prints the template as JSON, and --output table is refused.
#[test]
fn files_keep_their_form_unless_asked() {
    let (yaml, _) = with_config(&["template"], "[default]\noutput = json\n", &[("AWS_DEFAULT_OUTPUT", "json")], 0);
    assert!(yaml.starts_with("AWSTemplateFormatVersion: "), "{yaml}");
    let (out, _) = with_config(&["template", "--output", "json"], "", &[], 0);
    let doc: Value = serde_json::from_str(&out).expect("the template as JSON");
    assert_eq!(&doc, stream::template::document());
    let (_, err) = with_config(&["template", "-o", "table"], "", &[], 2);
    assert_error_lines(&err, "stream template has no table output", "give --output text or json");
    let (script, _) = with_config(&["completions", "bash"], "", &[("AWS_DEFAULT_OUTPUT", "json")], 0);
    assert!(script.contains("complete -F"), "{script}");
}

/// Puts `n` tweet items of about `bytes` each straight into `table`.
async fn put_items(dynamodb: &aws_sdk_dynamodb::Client, table: &str, n: usize, bytes: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(25) {
        let writes: Vec<WriteRequest> = chunk
            .iter()
            .map(|i| {
                let put = PutRequest::builder()
                    .item("Username", AttributeValue::S(format!("user{:02}", i % 7)))
                    .item("Id", AttributeValue::S(format!("{i:05}")))
                    .item("Timestamp", AttributeValue::S("2026-12-03T10:00:00.000Z".into()))
                    .item("Message", AttributeValue::S(format!("{i} {}", "x".repeat(bytes))))
                    .build()
                    .expect("put");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let out = dynamodb.batch_write_item().request_items(table, writes).send().await.expect("batch write");
        assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()), "moto took every item");
    }
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn deploy_and_destroy_print_json_and_scan_table_streams_every_format() {
    let w = World::new("output", "eu-central-1");
    let clients = w.clients().await;
    let (out, _) = w.run(&["deploy", "--output", "json"], 0);
    let deployed: Value = serde_json::from_str(&out).expect("deploy prints one JSON document");
    assert_eq!(deployed["stack"], w.stack.as_str());
    assert_eq!(deployed["action"], "created");
    assert_eq!(deployed["outputs"]["table_name"], format!("{}-EventData", w.stack));
    assert!(deployed["zip_bytes"].as_u64().is_some_and(|b| b > 1_000_000), "{deployed}");
    let (out, _) = w.run(&["status", "--output", "table"], 0);
    assert!(out.lines().all(|l| l.starts_with('+') || l.starts_with('|')), "boxed: {out}");
    assert!(out.contains("| stack ") && out.contains(&w.stack), "{out}");

    // 40 items of ~20 KB: 8 pages of 5. Each format holds every item, in the same order.
    let table = format!("{}-EventData", w.stack);
    put_items(&clients.dynamodb, &table, 40, 20_000).await;
    let (jsonl, _) = w.run(&["scan-table", "--page-size", "5", "-o", "jsonl"], 0);
    let items: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).expect("a JSON object a line")).collect();
    assert_eq!(items.len(), 40);
    let (json, _) = w.run(&["scan-table", "--page-size", "5", "-o", "json"], 0);
    assert_eq!(serde_json::from_str::<Vec<Value>>(&json).expect("one JSON array"), items);
    let (csv, _) = w.run(&["scan-table", "--page-size", "5", "-o", "csv"], 0);
    assert_eq!(csv.lines().next(), Some("Username,Id,Timestamp,Message"));
    assert_eq!(csv.lines().count(), 41);
    let (text, _) = w.run(&["scan-table", "--page-size", "5", "-o", "text"], 0);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 40, "no header, as the AWS CLI's text");
    for (row, item) in rows.iter().zip(&items) {
        assert_eq!(row[..3], [&item["Username"], &item["Id"], &item["Timestamp"]].map(|v| v.as_str().expect("s")));
    }
    let (some, _) = w.run(&["scan-table", "--max-items", "3", "-o", "jsonl"], 0);
    assert_eq!(some.lines().count(), 3);
    let (count, _) = w.run(&["scan-table", "--count", "-o", "json"], 0);
    assert_eq!(serde_json::from_str::<Value>(&count).expect("json"), serde_json::json!({"count": 40}));
    // Output that cannot be written is an error, not a silent exit 0: the items (each page as it is
    // printed) and the count (printed once, at the end).
    for args in [&["scan-table", "--count"][..], &["scan-table", "-o", "jsonl"]] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        let out = w.cmd(args).stdout(full).output().expect("stream runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_error_lines(&err, "stdout", "writable");
        assert!(err.contains("No space left on device"), "{args:?}: {err}");
    }

    // Printed as read: a reader that takes one line and closes the pipe stops the scan after the
    // first page (5 items of 20 KB fill the pipe), where reading the whole table first takes all 8 pages.
    let proxy = FaultProxy::before_moto(Faults::default(), 1);
    let mut child = w
        .cmd(&["scan-table", "--page-size", "5", "-o", "jsonl"])
        .env("AWS_ENDPOINT_URL_DYNAMODB", &proxy.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stream runs");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("a line");
    let out = child.wait_with_output().expect("ends");
    assert_eq!(out.status.code(), Some(0), "a closed pipe is a normal end: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_str::<Value>(&first).expect("an item"), items[0]);
    assert_eq!(proxy.counters.calls("DynamoDB_20120810.Scan"), 1, "one page read, not the whole table");

    // A page that fails after the SDK's retries: exit 1, and the JSON printed so far closed.
    let failing = FaultProxy::before_moto(Faults { scans_pass: Some(1), ..Faults::default() }, 1);
    let out = w
        .cmd(&["scan-table", "--page-size", "5", "-o", "json"])
        .env("AWS_ENDPOINT_URL_DYNAMODB", &failing.url)
        .output()
        .expect("stream runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_error_lines(&err, "Scan", "failed past the retries and may succeed later");
    let printed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("the array is closed");
    assert_eq!(printed, items[..5], "the first page, as read");
    assert!(failing.counters.server_errors.load(std::sync::atomic::Ordering::SeqCst) > 1, "retried first");

    // Ctrl-C while a page is on its way: exit 130, the JSON printed so far closed.
    let slow = FaultProxy::before_moto(Faults { scan_delay: Some(Duration::from_secs(30)), ..Faults::default() }, 1);
    let mut child = w
        .cmd(&["scan-table", "--page-size", "5", "-o", "json"])
        .env("AWS_ENDPOINT_URL_DYNAMODB", &slow.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stream runs");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut head = String::new();
    // "[", then the first four items whole: the page's fifth is written with them, its line ends
    // when the array goes on or is closed.
    while head.lines().count() < 5 {
        if stdout.read_line(&mut head).expect("a line") == 0 {
            break;
        }
    }
    let sent = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("the rest");
    let out = child.wait_with_output().expect("ends");
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Vec<Value> = serde_json::from_str(&(head + &rest)).expect("the array is closed");
    assert_eq!(printed, items[..5]);

    // A number keeps DynamoDB's text, 38 digits (a float holds 17).
    let big = "12345678901234567890123456789012345678";
    clients
        .dynamodb
        .put_item()
        .table_name(&table)
        .item("Username", AttributeValue::S("zz-big".into()))
        .item("Id", AttributeValue::S("1".into()))
        .item("Retweets", AttributeValue::N(big.into()))
        .send()
        .await
        .expect("put");
    let (json, _) = w.run(&["scan-table", "--key", "zz-big", "-o", "json"], 0);
    assert!(json.contains(&format!(r#""Retweets":{big}"#)), "{json}");
    let (text, _) = w.run(&["scan-table", "--key", "zz-big", "-o", "text"], 0);
    assert!(text.trim_end().ends_with(big), "{text}");

    let (out, _) = w.run(&["destroy", "--yes", "--output", "json"], 0);
    let destroyed: Value = serde_json::from_str(&out).expect("destroy prints one JSON document");
    assert_eq!(
        (&destroyed["stack"], &destroyed["deleted_stack"]),
        (&Value::from(w.stack.as_str()), &Value::Bool(true))
    );
}
