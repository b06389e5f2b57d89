//! `stream redrive` through the real binary on moto: a record whose write is always denied (the
//! fault proxy) uses up its retries and ends in FailedBatches; with the fault gone, `redrive
//! --local` reads it back from the stream and writes it; the queue is empty; a second run is a
//! no-op. Through the deployed function's Invoke (moto answers what it is told), a batch the
//! function reports failed stays in the queue, and goes once it succeeds. A batch the stream no
//! longer holds, and one of another stream, stay (visible again at once); `--forget-lost` lets the
//! lost one go.

use crate::common::{self, World};
use crate::fault_proxy::{FaultProxy, Faults};

use aws_sdk_kinesis::primitives::Blob;
use serde_json::Value;

/// The bodies of the messages in `queue` (left visible again for the next reader).
async fn queue_bodies(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<String> {
    let got = sqs.receive_message().queue_url(queue).max_number_of_messages(10).visibility_timeout(0).send();
    let got = got.await.expect("receive");
    got.messages().iter().filter_map(|m| m.body().map(str::to_string)).collect()
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_failed_batch_is_redriven_once_the_fault_is_gone() {
    let w = World::new("redrive", "af-south-1");
    let clients = w.clients().await;
    w.run(&["deploy", "--batch-size", "20", "--max-retries", "1"], 0);
    let deployed = stream::stack::load(&clients, &w.stack).await.expect("stack");
    let outputs = deployed.outputs.clone();
    let queue = deployed
        .stack
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some("FailedBatchQueueUrl"))
        .and_then(|o| o.output_value())
        .expect("queue url")
        .to_string();
    w.run(&["produce", "--count", "30", "--seed", "41"], 0);
    let put = clients.kinesis.put_record().stream_name(&outputs.stream_name).partition_key("p");
    let doomed = put.data(Blob::new(common::tweet("888", "doomed-user", "redrive me"))).send().await.expect("put");
    let doomed = doomed.sequence_number().to_string();

    // The doomed record's write is always denied: the mapping gives it up to FailedBatches.
    let proxy = FaultProxy::before_moto(Faults { deny_marker: Some("doomed-user"), ..Faults::default() }, 3);
    let (out, _) = w.run(&["local", "--until-idle", "-o", "json", "--endpoint-url", &proxy.url], 3);
    let summary: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!((summary["skipped"].as_u64(), summary["on_failure_records"].as_u64()), (Some(1), Some(1)), "{summary}");
    let doomed_key = ("doomed-user".to_string(), "888".to_string());
    assert!(!common::table_keys(&clients.dynamodb, &outputs.table_name).await.contains(&doomed_key));
    let bodies = queue_bodies(&clients.sqs, &queue).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");

    // Dry run: the batch and its record shown, nothing sent, the message still there.
    let (out, _) = w.run(&["redrive", "--dry-run", "-o", "json"], 0);
    let dry: Value = serde_json::from_str(&out).expect("json");
    let batch = &dry["batches"][0];
    assert_eq!((batch["start_sequence_number"].as_str(), batch["lost"].as_u64()), (Some(doomed.as_str()), Some(0)));
    assert_eq!(batch["records"][0]["partition_key"], "p");
    assert!(batch["records"][0]["data"].as_str().is_some_and(|d| d.contains("doomed-user")), "{batch}");
    assert_eq!(batch["deleted"], false);
    let (text, _) = w.run(&["redrive", "--dry-run"], 0);
    assert!(text.contains(&doomed) && text.contains("doomed-user") && text.contains("to nowhere (dry run)"), "{text}");
    assert_eq!(queue_bodies(&clients.sqs, &queue).await.len(), 1, "a dry run deletes nothing");

    // The fault is gone: redriven through the local environment, written, the queue empty.
    let (out, err) = w.run(&["redrive", "--local", "-o", "json"], 0);
    let done: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (done["batches"][0]["deleted"].as_bool(), done["batches"][0]["failed"].as_u64()),
        (Some(true), Some(0)),
        "{done}"
    );
    assert!(err.contains("sending 1 records of shardId-000000000000"), "{err}");
    assert!(
        common::table_keys(&clients.dynamodb, &outputs.table_name).await.contains(&doomed_key),
        "redriven and written"
    );
    assert!(queue_bodies(&clients.sqs, &queue).await.is_empty(), "the message is gone");
    let before = common::table_keys(&clients.dynamodb, &outputs.table_name).await;
    let (out, _) = w.run(&["redrive", "--local"], 0);
    assert!(out.starts_with("nothing to redrive"), "{out}");
    assert_eq!(
        common::table_keys(&clients.dynamodb, &outputs.table_name).await,
        before,
        "a second run changes nothing"
    );

    // Through the deployed function (moto's Lambda answers what it is told): a reported failure
    // keeps the message; success deletes it.
    clients.sqs.send_message().queue_url(&queue).message_body(&bodies[0]).send().await.expect("the batch again");
    let answers = serde_json::json!({
        "results": [format!(r#"{{"batchItemFailures":[{{"itemIdentifier":"{doomed}"}}]}}"#), "{}"],
        "region": w.region,
    });
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL set by scripts/test");
    let answer = common::moto_api(&endpoint, "/moto-api/static/lambda-simple/response", &answers.to_string());
    assert!(answer.starts_with("HTTP/1.1 201") || answer.starts_with("HTTP/1.0 201"), "{answer}");
    let (out, err) = w.run(&["redrive"], 3);
    assert!(out.contains("1 failed") && out.contains(&format!("reported 1 records failed: {doomed}")), "{out}");
    common::assert_error_lines(&err, "1 of 1 failed batches did not succeed", "run `stream redrive` again");
    assert_eq!(queue_bodies(&clients.sqs, &queue).await.len(), 1, "kept for the next run");
    let (out, _) = w.run(&["redrive"], 0);
    assert!(
        out.contains("done (message deleted)") && out.contains(&format!("function {}", outputs.function_name)),
        "{out}"
    );
    assert!(queue_bodies(&clients.sqs, &queue).await.is_empty());

    // A batch of a shard the stream no longer has (lost to the stream) and one of another stream:
    // both kept, visible again at once; --limit takes one; --forget-lost deletes the lost one only.
    let failed: Value = serde_json::from_str(&bodies[0]).expect("on-failure record");
    let forged = |shard: &str, stream_arn: &str| {
        let mut body = failed.clone();
        let info = &mut body["KinesisBatchInfo"];
        (info["shardId"], info["batchSize"], info["streamArn"]) = (shard.into(), 3.into(), stream_arn.into());
        body.to_string()
    };
    let other = outputs.stream_arn.replace(&outputs.stream_name, "another-stream");
    for body in [forged("shardId-000000000099", &outputs.stream_arn), forged("shardId-000000000000", &other)] {
        clients.sqs.send_message().queue_url(&queue).message_body(body).send().await.expect("forged batch");
    }
    let (out, _) = w.run(&["redrive", "--limit", "1", "-o", "json"], 3);
    let one: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(one["batches"].as_array().map(Vec::len), Some(1), "{one}");
    let (out, err) = w.run(&["redrive", "-o", "json"], 3);
    common::assert_error_lines(&err, "2 of 2 failed batches did not succeed", "run `stream redrive` again");
    let kept: Value = serde_json::from_str(&out).expect("json");
    let batch = |v: &Value, shard: &str| {
        let found = v["batches"].as_array().and_then(|b| b.iter().find(|b| b["shard_id"] == shard).cloned());
        found.unwrap_or_else(|| panic!("no batch of {shard}: {v}"))
    };
    let lost = batch(&kept, "shardId-000000000099");
    assert_eq!((lost["lost"].as_u64(), lost["deleted"].as_bool()), (Some(3), Some(false)), "{lost}");
    assert!(lost["problem"].as_str().is_some_and(|p| p.contains("no longer holds this batch")), "{lost}");
    let foreign = batch(&kept, "shardId-000000000000");
    assert!(foreign["problem"].as_str().is_some_and(|p| p.contains("from another stream")), "{foreign}");
    assert_eq!(queue_bodies(&clients.sqs, &queue).await.len(), 2, "both kept, visible again at once");
    let (out, _) = w.run(&["redrive", "--forget-lost", "-o", "json"], 3);
    let forgot: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(batch(&forgot, "shardId-000000000099")["deleted"], true, "{forgot}");
    assert_eq!(batch(&forgot, "shardId-000000000000")["deleted"], false, "{forgot}");
    let left = queue_bodies(&clients.sqs, &queue).await;
    assert!(left.len() == 1 && left[0].contains("another-stream"), "{left:?}");
    w.run(&["destroy", "--yes"], 0);
}
