//! The binary as Lambda runs it: `AWS_LAMBDA_RUNTIME_API` set, one invocation served through the
//! Runtime API that `stream local` serves, writes landing in DynamoDB (moto). The partial batch response, the quarantine, the
//! JSON logs and the EMF metrics line are what Lambda and CloudWatch expect.

use crate::common;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use stream::sandbox::{Environment, FunctionSpec, Outcome};

use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use base64::Engine;

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str, hash: &str, range: &str) {
    let attr = |n: &str| {
        AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().expect("attr")
    };
    let key = |n: &str, t| KeySchemaElement::builder().attribute_name(n).key_type(t).build().expect("key");
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(hash))
        .attribute_definitions(attr(range))
        .key_schema(key(hash, KeyType::Hash))
        .key_schema(key(range, KeyType::Range))
        .send()
        .await
        .expect("create table");
}

/// A test's event table (keyed `hash`, `range`) and quarantine table on moto: (client, event
/// table, quarantine table).
async fn event_tables(w: &common::World, hash: &str, range: &str) -> (aws_sdk_dynamodb::Client, String, String) {
    let client = w.clients().await.dynamodb;
    let (table, rejected) = (format!("{}-EventData", w.stack), format!("{}-Rejected", w.stack));
    create_table(&client, &table, hash, range).await;
    create_table(&client, &rejected, "Shard", "Sequence").await;
    (client, table, rejected)
}

fn record(seq: usize, data: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "pk", "sequenceNumber": format!("{seq:05}"),
                    "data": base64::engine::general_purpose::STANDARD.encode(data), "approximateArrivalTimestamp": 1545084650.987},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": format!("shardId-000000000000:{seq:05}"),
        "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/r", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s"
    })
}

fn tweet(id: usize, text: &str) -> Vec<u8> {
    serde_json::json!({"id_str": id.to_string(), "created_at": "Wed Oct 10 20:19:24 +0000 2018", "text": text,
        "user": {"name": "Zoë 🦀", "screen_name": "zoe", "id_str": "5"}})
    .to_string()
    .into_bytes()
}

/// Runs the real binary as the function for one invocation of `event`, through the same Runtime
/// API `stream local` serves: returns how the invocation ended and every line the function wrote.
async fn invoke(event: serde_json::Value, table: &str, rejected: &str) -> (Outcome, Vec<String>) {
    invoke_with(event, table, rejected, &[]).await
}

/// As `invoke`, with more environment variables (files the function reads go in its task root
/// beside them: `schema_file`).
async fn invoke_with(
    event: serde_json::Value,
    table: &str,
    rejected: &str,
    more: &[(&str, &str, Option<&str>)],
) -> (Outcome, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (_, value, file) in more {
        if let Some(text) = file {
            std::fs::write(dir.path().join(value), text).expect("task root file");
        }
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let env = [
        ("AWS_LAMBDA_FUNCTION_NAME", "f"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("TABLE_NAME", table),
        ("REJECTED_TABLE_NAME", rejected),
    ];
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let spec = Arc::new(FunctionSpec {
        bootstrap: common::bin().into(),
        task_root: dir.path().to_path_buf(),
        env: env
            .iter()
            .copied()
            .chain(more.iter().map(|&(k, v, _)| (k, v)))
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
        function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        credentials: None,
        memory_mb: None,
        init_timeout: stream::sandbox::INIT_TIMEOUT,
        timeout: Duration::from_secs(60),
        log: Arc::new(move |line: &str| sink.lock().expect("lock").push(line.to_string())),
        starts: AtomicU64::new(0),
    });
    let mut environment = Environment::new(spec).await.expect("Runtime API");
    let outcome = environment.invoke(Bytes::from(serde_json::to_vec(&event).expect("json"))).await;
    environment.stop().await;
    let lines = lines.lock().expect("lock").clone();
    (outcome, lines)
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn bootstrap_serves_an_invocation_through_the_runtime_api() {
    let w = common::World::new("lambda", "us-east-1");
    let (client, table, rejected) = event_tables(&w, "Username", "Id").await;

    let event = serde_json::json!({"Records": [
        record(1, &tweet(1, "first")), record(2, &tweet(2, "two")), record(3, b"\xff\xfe poison"),
        record(4, &tweet(1, "first, edited")), record(5, &tweet(3, "three")),
    ]});
    let (outcome, stdout) = invoke(event, &table, &rejected).await;
    assert_eq!(outcome, Outcome::Response(Bytes::from_static(br#"{"batchItemFailures":[]}"#)));
    let items = client.scan().table_name(&table).send().await.expect("scan");
    assert_eq!(items.count(), 3);
    let first = items.items().iter().find(|i| i["Id"].as_s().ok().map(String::as_str) == Some("1")).expect("tweet 1");
    assert_eq!(first["Message"].as_s().expect("s"), "first, edited", "the later record wins");
    assert_eq!(first["Username"].as_s().expect("s"), "Zoë 🦀");
    let quarantine = client.scan().table_name(&rejected).send().await.expect("scan");
    assert_eq!(quarantine.count(), 1);
    assert_eq!(quarantine.items()[0]["Sequence"].as_s().expect("s"), "00003");

    // One JSON summary line and one EMF line with the counts.
    let lines: Vec<serde_json::Value> = stdout.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let summary = lines
        .iter()
        .find(|l| l["fields"]["message"] == "batch done")
        .unwrap_or_else(|| panic!("summary in {stdout:?}"));
    assert_eq!(summary["fields"]["records"], 5);
    assert_eq!(summary["fields"]["quarantined"], 1);
    let emf = lines.iter().find(|l| l.get("_aws").is_some()).unwrap_or_else(|| panic!("EMF line in {stdout:?}"));
    assert_eq!(emf["RecordsIn"], 5.0);
    assert_eq!(emf["Written"], 3.0);
    assert_eq!(emf["DuplicatesDropped"], 1.0);
    assert_eq!(emf["Quarantined"], 1.0);
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "record quarantined" && l["fields"]["sequence_number"] == "00003")
    );
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_missing_table_is_an_invocation_error() {
    let event = serde_json::json!({"Records": [record(1, &tweet(1, "t"))]});
    let (outcome, _) = invoke(event, "no-such-table", "no-such-rejected").await;
    let Outcome::Error { message, .. } = &outcome else {
        panic!("Lambda must retry the batch, not skip it: {outcome:?}");
    };
    assert!(message.contains("ResourceNotFoundException"), "{message}");
}

/// A schema the function cannot use stops it at init, through the Runtime API's /init/error with
/// the schema's problem, before any record is read: never the tweets schema in its place. The
/// same file, once usable, serves the invocation (so the refusal is the schema's, not the setup's).
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn an_unusable_schema_is_an_init_error() {
    let w = common::World::new("lambdaschema", "us-east-1");
    let (client, table, rejected) = event_tables(&w, "DeviceId", "At").await;
    let event = || serde_json::json!({"Records": [record(1, br#"{"device":"d1","at":"2018-10-10T20:19:24Z"}"#)]});
    let good = "name = \"devices\"\n[partition_key]\nattribute = \"DeviceId\"\ntype = \"S\"\nfrom = \"/device\"\n\
                [sort_key]\nattribute = \"At\"\ntype = \"S\"\nfrom = \"/at\"\n";
    let bad = good.replace("from = \"/device\"", "from = \"device\"");
    for (file, text, why) in
        [("schema.toml", Some(bad.as_str()), "is not a usable schema"), ("missing.toml", None, "cannot read")]
    {
        let (outcome, _) = invoke_with(event(), &table, &rejected, &[("EVENT_SCHEMA", file, text)]).await;
        match outcome {
            Outcome::InitError(message) => {
                assert!(message.contains("EVENT_SCHEMA") && message.contains(why), "{file}: {message}")
            }
            other => panic!("{file}: an init error, not {other:?}"),
        }
    }
    assert_eq!(client.scan().table_name(&table).send().await.expect("scan").count(), 0, "nothing written");
    let (outcome, _) = invoke_with(event(), &table, &rejected, &[("EVENT_SCHEMA", "schema.toml", Some(good))]).await;
    assert_eq!(outcome, Outcome::Response(Bytes::from_static(br#"{"batchItemFailures":[]}"#)));
    let items = client.scan().table_name(&table).send().await.expect("scan");
    assert_eq!(items.count(), 1);
    assert_eq!(items.items()[0]["DeviceId"].as_s().expect("s"), "d1");
}
