//! Endpoints resolve as the AWS CLI v2 resolves them, for every command and for the function that
//! `stream local` runs: Kinesis and DynamoDB on a second emulator while CloudFormation, Lambda, S3,
//! IAM, STS, SQS and CloudWatch (Logs) stay on the first, each named by its own
//! `AWS_ENDPOINT_URL_<SERVICE>` and no global `AWS_ENDPOINT_URL`; `--endpoint-url` beats them all.

use crate::common;

use std::collections::BTreeSet;

use crate::fault_proxy::{FaultProxy, Faults};
use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use aws_sdk_kinesis::primitives::Blob;
use common::{Moto, World};

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

/// The FailedBatches queue's URL (a stack output).
async fn failed_batches_queue(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> String {
    let stacks = cfn.describe_stacks().stack_name(stack).send().await.expect("stack");
    let outputs = stacks.stacks()[0].outputs();
    let url = outputs.iter().find(|o| o.output_key() == Some("FailedBatchQueueUrl")).and_then(|o| o.output_value());
    url.expect("queue url").to_string()
}

/// Every command, with no global endpoint at all: each service named by its own variable, Kinesis
/// and DynamoDB on a second emulator (B), the rest on the first (A). Deploy, produce, local, tail,
/// scan-table, status, logs, replay, redrive and destroy each go where their services are.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn per_service_endpoints_are_followed_by_every_command_and_the_function() {
    use aws_sdk_cloudwatchlogs::types::InputLogEvent;
    let w = World::new("endpoints", "eu-north-1");
    let a = w.clients().await;
    let a_url = std::env::var("AWS_ENDPOINT_URL").expect("A");
    let moto = Moto::start(&[]);
    let b = moto.clients(&w.region, ("testing", "testing")).await;
    // S3 through a proxy named by a host name (an IP address would make the SDK address buckets by
    // path whatever it is told): each call's Host header shows how buckets are addressed.
    let s3 = FaultProxy::before_moto(Faults::default(), 1);
    let s3_url = s3.url.replace("127.0.0.1", "localhost");
    let env: Vec<(String, String)> = stream::aws::SERVICE_IDS
        .iter()
        .map(|s| {
            let url = match *s {
                "Kinesis" | "DynamoDB" => &moto.url,
                "S3" => &s3_url,
                _ => &a_url,
            };
            (stream::aws::endpoint_variable(s), url.clone())
        })
        .collect();
    let run = |args: &[&str], code: i32| {
        let out = w.cmd(args).env_remove("AWS_ENDPOINT_URL").envs(env.clone()).output().expect("stream runs");
        common::check(&out, code, args)
    };

    // deploy: the stack and the artifact bucket (S3 by path on A's endpoint) are on A.
    run(&["deploy"], 0);
    let deployed = stream::stack::load(&a, &w.stack).await.expect("the stack is on A");
    let outputs = deployed.outputs.clone();
    let (bucket, _) = deployed.code().expect("code");
    let bucket = bucket.to_string();
    a.s3.head_bucket().bucket(&bucket).send().await.expect("the artifact bucket is on A");
    let s3_host = s3_url.trim_start_matches("http://").to_string();
    assert_eq!(s3.counters.hosts(), [s3_host.clone()].into(), "buckets addressed by path on S3's own endpoint");

    // The stack's stream and tables, made again on B under the same names.
    b.kinesis.create_stream().stream_name(&outputs.stream_name).shard_count(1).send().await.expect("stream on B");
    create_table(&b.dynamodb, &outputs.table_name, "Username", "Id").await;
    create_table(&b.dynamodb, &outputs.rejected_table, "Shard", "Sequence").await;

    // produce: the records land on B's stream, none on A's.
    run(&["produce", "-n", "60", "--seed", "4"], 0);
    b.kinesis
        .put_record()
        .stream_name(&outputs.stream_name)
        .partition_key("p")
        .data(Blob::new("not json"))
        .send()
        .await
        .expect("poison on B");
    assert_eq!(common::read_stream(&b.kinesis, &outputs.stream_name).await.len(), 61);
    assert!(common::read_stream(&a.kinesis, &outputs.stream_name).await.is_empty(), "nothing on A's stream");

    // tail: B's stream.
    let (out, _) = run(&["tail", "--from", "trim-horizon", "--until-idle", "-o", "jsonl"], 0);
    assert_eq!(out.lines().count(), 61, "{out}");

    // local: read from B; the function, which resolves as the caller did, writes B's tables.
    let (out, _) = run(&["local", "--until-idle", "--output", "json"], 0);
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(summary["records"], 61, "{summary}");
    let expected: BTreeSet<(String, String)> = stream::produce::source::Synthetic::new(Some(4))
        .take(60)
        .map(|t| stream::tweet::item_from_payload(&t.to_bytes()).expect("tweet"))
        .map(|i| (i.username, i.id))
        .collect();
    assert_eq!(common::item_count(&b.dynamodb, &outputs.table_name).await, expected.len(), "the items are on B");
    assert_eq!(common::item_count(&b.dynamodb, &outputs.rejected_table).await, 1, "the poison is quarantined on B");
    assert_eq!(common::item_count(&a.dynamodb, &outputs.table_name).await, 0, "nothing in A's table");
    assert_eq!(common::item_count(&a.dynamodb, &outputs.rejected_table).await, 0, "nothing in A's quarantine");

    // scan-table and status read B's tables.
    let (out, _) = run(&["scan-table", "--count"], 0);
    assert_eq!(out.trim(), expected.len().to_string());
    let (out, _) = run(&["status", "--output", "json"], 0);
    let status: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(status["items"], expected.len(), "{status}");
    assert_eq!(status["quarantined"], 1, "{status}");

    // logs: the function's log group on A.
    let group = format!("/aws/lambda/{}", outputs.function_name);
    a.logs.create_log_stream().log_group_name(&group).log_stream_name("s").send().await.expect("log stream on A");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let event = InputLogEvent::builder().timestamp(now).message("logged on A").build().expect("event");
    a.logs.put_log_events().log_group_name(&group).log_stream_name("s").log_events(event).send().await.expect("put");
    let (out, _) = run(&["logs", "-o", "jsonl"], 0);
    assert_eq!(out.trim(), "logged on A");

    // replay: from B's quarantine back into B's stream.
    let (out, _) = run(&["replay"], 0);
    assert!(out.contains("replayed 1"), "{out}");
    assert_eq!(common::read_stream(&b.kinesis, &outputs.stream_name).await.len(), 62);
    assert!(common::read_stream(&a.kinesis, &outputs.stream_name).await.is_empty());
    assert_eq!(common::item_count(&b.dynamodb, &outputs.rejected_table).await, 0);

    // redrive: a failed batch named in A's queue, read back from B's stream, written to B's table.
    let tweet = common::tweet("9001", "redriven", "through B");
    let put = b.kinesis.put_record().stream_name(&outputs.stream_name).partition_key("r").data(Blob::new(tweet));
    let seq = put.send().await.expect("put on B").sequence_number().to_string();
    let queue = failed_batches_queue(&a.cfn, &w.stack).await;
    let info = serde_json::json!({"KinesisBatchInfo": {"shardId": "shardId-000000000000", "startSequenceNumber": seq,
        "endSequenceNumber": seq, "batchSize": 1, "streamArn": outputs.stream_arn}});
    a.sqs.send_message().queue_url(&queue).message_body(info.to_string()).send().await.expect("on A's queue");
    let (out, _) = run(&["redrive", "--local", "-o", "json"], 0);
    let done: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(done["batches"][0]["deleted"], true, "{done}");
    assert!(common::table_keys(&b.dynamodb, &outputs.table_name).await.contains(&("redriven".into(), "9001".into())));
    assert_eq!(common::item_count(&a.dynamodb, &outputs.table_name).await, 0, "nothing in A's table");
    let left = a.sqs.receive_message().queue_url(&queue).send().await.expect("receive");
    assert!(left.messages().is_empty(), "the message left A's queue");

    // --endpoint-url beats the per-service variables: A's table, which is empty.
    let (out, _) = run(&["scan-table", "--count", "--endpoint-url", &a_url], 0);
    assert_eq!(out.trim(), "0");

    // destroy: the stack and the artifact bucket go from A.
    run(&["destroy", "--yes"], 0);
    assert!(stream::stack::find(&a, &w.stack).await.expect("describe").is_none(), "the stack left A");
    let head = a.s3.head_bucket().bucket(&bucket).send().await;
    assert!(common::is_not_found(&head), "the artifact bucket left A: {head:?}");
    assert_eq!(s3.counters.hosts(), [s3_host].into(), "buckets addressed by path on S3's own endpoint");
}

/// A per-service variable that is not a URL is named before any call.
#[test]
fn a_malformed_service_endpoint_is_refused() {
    let (_, err) = common::run_plain(
        &["scan-table"],
        &[("AWS_ENDPOINT_URL_DYNAMODB", "localhost:4566"), ("AWS_ENDPOINT_URL", common::DEAD_ENDPOINT)],
        2,
    );
    common::assert_error_lines(
        &err,
        "invalid endpoint URL \"localhost:4566\" in AWS_ENDPOINT_URL_DYNAMODB",
        "unset it",
    );
}
