//! Endpoints resolve as the AWS CLI v2 resolves them, for every command and for the function that
//! `stream local` runs: Kinesis and DynamoDB on a second emulator while CloudFormation, Lambda, S3,
//! IAM, STS and SQS stay on the first, through `AWS_ENDPOINT_URL_<SERVICE>`; `--endpoint-url`
//! beats them all.

use crate::common;

use std::collections::BTreeSet;

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

async fn count(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> usize {
    let mut n = 0;
    let mut pages = dynamodb.scan().table_name(table).into_paginator().items().send();
    while let Some(item) = pages.next().await {
        item.expect("scan");
        n += 1;
    }
    n
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn per_service_endpoints_are_followed_by_every_command_and_the_function() {
    let w = World::new("endpoints", "eu-north-1");
    let a = w.clients().await;
    w.run(&["deploy"], 0);
    let outputs = stream::stack::load(&a, &w.stack).await.expect("outputs").outputs;

    // The stack's stream and tables, made again on a second emulator under the same names.
    let moto = Moto::start(&[]);
    let b = moto.clients(&w.region, ("testing", "testing")).await;
    b.kinesis.create_stream().stream_name(&outputs.stream_name).shard_count(1).send().await.expect("stream on B");
    create_table(&b.dynamodb, &outputs.table_name, "Username", "Id").await;
    create_table(&b.dynamodb, &outputs.rejected_table, "Shard", "Sequence").await;
    let env = [("AWS_ENDPOINT_URL_KINESIS", moto.url.as_str()), ("AWS_ENDPOINT_URL_DYNAMODB", moto.url.as_str())];
    let run = |args: &[&str], code: i32| {
        let out = w.cmd(args).envs(env).output().expect("stream runs");
        common::check(&out, code, args)
    };

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

    // local: read from B; the function, which resolves as the caller did, writes B's tables.
    let (out, _) = run(&["local", "--until-idle", "--output", "json"], 0);
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(summary["records"], 61, "{summary}");
    let expected: BTreeSet<(String, String)> = stream::produce::source::Synthetic::new(Some(4))
        .take(60)
        .map(|t| stream::tweet::item_from_payload(&t.to_bytes()).expect("tweet"))
        .map(|i| (i.username, i.id))
        .collect();
    assert_eq!(count(&b.dynamodb, &outputs.table_name).await, expected.len(), "the items are on B");
    assert_eq!(count(&b.dynamodb, &outputs.rejected_table).await, 1, "the poison is quarantined on B");
    assert_eq!(count(&a.dynamodb, &outputs.table_name).await, 0, "nothing in A's table");
    assert_eq!(count(&a.dynamodb, &outputs.rejected_table).await, 0, "nothing in A's quarantine");

    // scan-table and status read B's tables.
    let (out, _) = run(&["scan-table", "--count"], 0);
    assert_eq!(out.trim(), expected.len().to_string());
    let (out, _) = run(&["status", "--output", "json"], 0);
    let status: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(status["items"], expected.len(), "{status}");
    assert_eq!(status["quarantined"], 1, "{status}");

    // replay: from B's quarantine back into B's stream.
    let (out, _) = run(&["replay"], 0);
    assert!(out.contains("replayed 1"), "{out}");
    assert_eq!(common::read_stream(&b.kinesis, &outputs.stream_name).await.len(), 62);
    assert!(common::read_stream(&a.kinesis, &outputs.stream_name).await.is_empty());
    assert_eq!(count(&b.dynamodb, &outputs.rejected_table).await, 0);

    // --endpoint-url beats the per-service variables: A's table, which is empty.
    let (out, _) = run(&["scan-table", "--count", "--endpoint-url", &std::env::var("AWS_ENDPOINT_URL").expect("A")], 0);
    assert_eq!(out.trim(), "0");
    w.run(&["destroy", "--yes"], 0);
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
