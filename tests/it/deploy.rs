//! `stream deploy` parameters through the real binary on moto: flags reach the stream, the function
//! and the mapping; a later deploy without a flag keeps the current value; nothing to change is
//! "up to date"; the iterator-age alarm (and its SNS topic with --alarm-email) is in the stack.

use crate::common;

use common::World;

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn flags_are_applied_and_remembered() {
    let w = World::new("flags", "us-east-2");
    let clients = w.clients().await;
    let lambda = w.lambda().await;
    let flags = [
        "deploy",
        "--shards",
        "2",
        "--memory",
        "512",
        "--timeout",
        "120",
        "--batching-window",
        "5",
        "--parallelization",
        "3",
        "--retention-hours",
        "48",
        "--batch-size",
        "50",
        "--alarm-email",
        "ops@example.com",
    ];
    let (out, _) = w.run(&flags, 0);
    assert!(out.contains("created"), "{out}");
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;

    let check = |batch: i32| {
        let (lambda, outputs, clients, stack) = (lambda.clone(), outputs.clone(), clients.clone(), w.stack.clone());
        async move {
            let s = clients
                .kinesis
                .describe_stream_summary()
                .stream_name(&outputs.stream_name)
                .send()
                .await
                .expect("stream");
            let s = s.stream_description_summary().expect("summary");
            assert_eq!((s.open_shard_count(), s.retention_period_hours()), (2, 48));
            let f = lambda
                .get_function_configuration()
                .function_name(&outputs.function_name)
                .send()
                .await
                .expect("function");
            assert_eq!((f.memory_size(), f.timeout()), (Some(512), Some(120)));
            let m =
                lambda.list_event_source_mappings().function_name(&outputs.function_name).send().await.expect("esm");
            let m = &m.event_source_mappings()[0];
            assert_eq!(m.batch_size(), Some(batch));
            assert_eq!(m.maximum_batching_window_in_seconds(), Some(5));
            assert_eq!(m.parallelization_factor(), Some(3));
            // The alarm address is remembered too (an update that sent it empty would drop the topic).
            let stacks = clients.cfn.describe_stacks().stack_name(&stack).send().await.expect("stack");
            assert_eq!(stream::stack::parameter(&stacks.stacks()[0], "AlarmEmail"), Some("ops@example.com"));
        }
    };
    check(50).await;
    let resources = clients.cfn.describe_stack_resources().stack_name(&w.stack).send().await.expect("resources");
    // moto lists alarms with neither type nor logical id: count them, and find them in the template.
    let logical: Vec<&str> = resources.stack_resources().iter().filter_map(|r| r.logical_resource_id()).collect();
    assert!(logical.contains(&"AlarmTopic"), "{logical:?}");
    assert!(logical.contains(&"Dashboard"), "{logical:?}");
    assert_eq!(resources.stack_resources().len(), 15, "four alarms among them: {logical:?}");
    let template = clients.cfn.get_template().stack_name(&w.stack).send().await.expect("template");
    let body = template.template_body().unwrap_or_default();
    for alarm in ["IteratorAgeAlarm", "FunctionErrorsAlarm", "FailedBatchesAlarm", "QuarantineAlarm"] {
        assert!(body.contains(alarm), "{alarm}");
    }

    // One flag changed; the others keep their values.
    let (out, _) = w.run(&["deploy", "--batch-size", "70"], 0);
    assert!(out.contains("updated"), "{out}");
    check(70).await;
    let (out, _) = w.run(&["deploy"], 0);
    assert!(out.contains("up to date"), "{out}");
    check(70).await;

    // Out of range: refused before any call (the endpoint is dead), nothing changed.
    let (_, err) = w.run(&["deploy", "--parallelization", "11", "--endpoint-url", common::DEAD_ENDPOINT], 2);
    common::assert_error_lines(&err, "--parallelization 11 is out of range", "from 1 to 10");
    check(70).await;
    w.run(&["destroy", "--yes"], 0);
}

#[tokio::test]
#[ignore = "needs moto and scripts/build: scripts/test"]
async fn code_only_replaces_the_function_code_and_waits_for_it() {
    let w = World::new("codeonly", "eu-west-3");
    let clients = w.clients().await;
    let lambda = w.lambda().await;
    w.run(&["deploy"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    let before =
        lambda.get_function_configuration().function_name(&outputs.function_name).send().await.expect("function");
    let events_before =
        clients.cfn.describe_stack_events().stack_name(&w.stack).send().await.expect("events").stack_events().len();

    let static_bin = std::env::var("STREAM_STATIC_BIN").expect("STREAM_STATIC_BIN set by scripts/test");
    let (out, err) = w.run(&["deploy", "--code-only", "--bootstrap", &static_bin], 0);
    assert!(out.contains("function code updated"), "{out}");
    assert!(err.contains("updating the code of function"), "{err}");
    let after =
        lambda.get_function_configuration().function_name(&outputs.function_name).send().await.expect("function");
    assert_ne!(after.code_sha256(), before.code_sha256(), "the new binary is the function's code");
    assert_eq!(after.last_update_status().map(|s| s.as_str()), Some("Successful"));
    let events_after =
        clients.cfn.describe_stack_events().stack_name(&w.stack).send().await.expect("events").stack_events().len();
    assert_eq!(events_after, events_before, "no stack update");

    w.run(&["destroy", "--yes"], 0);
    let (_, err) = w.run(&["deploy", "--code-only"], 1);
    common::assert_error_lines(&err, &format!("stack \"{}\" does not exist", w.stack), "stream deploy --stack");
}

/// Runs `stream ARGS` for `w` on a pseudo-terminal (`script`), typing `answer`; returns the screen.
fn on_terminal(w: &World, args: &str, answer: &str) -> (bool, String) {
    use std::io::Write;
    let command = format!("{} {args} --stack {} --region {}", common::bin(), w.stack, w.region);
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("AWS_SHARED_CREDENTIALS_FILE", w.credentials_file())
        .env_remove("STREAM_STACK")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script runs");
    // Answer once the question is on screen (the plan takes a moment); the pty buffers it meanwhile.
    child.stdin.take().expect("stdin").write_all(answer.as_bytes()).expect("type the answer");
    let out = child.wait_with_output().expect("script ends");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn an_update_shows_its_plan_and_asks_on_a_terminal() {
    let w = World::new("plan", "ap-northeast-3");
    let clients = w.clients().await;
    let lambda = w.lambda().await;
    let (_, err) = w.run(&["deploy"], 0);
    assert!(err.contains("plan for new stack") && err.contains("+ add") && err.contains("EventDataTable"), "{err}");
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    let batch_size = || {
        let (lambda, function) = (lambda.clone(), outputs.function_name.clone());
        async move {
            let m = lambda.list_event_source_mappings().function_name(function).send().await.expect("esm");
            m.event_source_mappings()[0].batch_size()
        }
    };
    let change_sets = || {
        let (cfn, stack) = (clients.cfn.clone(), w.stack.clone());
        async move {
            // Executed change sets may stay listed; one that was declined or empty must not.
            let list = cfn.list_change_sets().stack_name(stack).send().await.expect("change sets");
            list.summaries()
                .iter()
                .filter(|c| c.execution_status().map(|s| s.as_str()) != Some("EXECUTE_COMPLETE"))
                .count()
        }
    };

    // A terminal is asked; "n" changes nothing and leaves no change set behind.
    let (ok, screen) = on_terminal(&w, "deploy --batch-size 40", "n\n");
    assert!(!ok, "{screen}");
    assert!(screen.contains("plan for stack") && screen.contains("parameter BatchSize: 100 → 40"), "{screen}");
    assert!(screen.contains("Apply this plan to stack") && screen.contains("deploy cancelled"), "{screen}");
    assert_eq!(batch_size().await, Some(100));
    assert_eq!(change_sets().await, 0);

    // "y" applies it.
    let (ok, screen) = on_terminal(&w, "deploy --batch-size 40", "y\n");
    assert!(ok && screen.contains("UPDATE_COMPLETE") && screen.contains("updated"), "{screen}");
    assert_eq!(batch_size().await, Some(40));

    // Without a terminal a plan that removes or replaces nothing goes ahead; --yes never asks.
    let (out, err) = w.run(&["deploy", "--batch-size", "30"], 0);
    assert!(out.contains("updated") && err.contains("parameter BatchSize: 40 → 30"), "{err}");
    let (out, _) = w.run(&["deploy", "--batch-size", "20", "--yes"], 0);
    assert!(out.contains("updated"), "{out}");
    assert_eq!(batch_size().await, Some(20));
    // The same parameters again: an empty change set is success.
    let (out, _) = w.run(&["deploy", "--yes"], 0);
    assert!(out.contains("up to date"), "{out}");
    assert_eq!(change_sets().await, 0, "the empty change set is deleted");
    w.run(&["destroy", "--yes"], 0);
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn destroy_keep_data_keeps_the_tables_and_their_items() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let w = World::new("keep", "sa-east-1");
    let clients = w.clients().await;
    w.run(&["deploy"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    let item = |user: &str| {
        [("Username", user), ("Id", "1"), ("Timestamp", "2025-01-01T00:00:00.000Z"), ("Message", "kept")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
            .collect::<std::collections::HashMap<_, _>>()
    };
    clients.dynamodb.put_item().table_name(&outputs.table_name).set_item(Some(item("ana"))).send().await.expect("put");

    let (out, err) = w.run(&["destroy", "--keep-data", "--yes"], 0);
    assert!(err.contains("DataRetention=Retain"), "{err}");
    assert!(
        out.contains("deleted") && out.contains(&format!("kept with their items: {}", outputs.table_name)),
        "{out}"
    );
    assert!(stream::stack::find(&clients, &w.stack).await.expect("describe").is_none(), "stack gone");
    let stream_left = clients.kinesis.describe_stream_summary().stream_name(&outputs.stream_name).send().await;
    assert!(common::is_not_found(&stream_left), "the stream went with the stack: {stream_left:?}");
    for table in [&outputs.table_name, &outputs.rejected_table] {
        clients.dynamodb.describe_table().table_name(table).send().await.expect("table kept");
    }
    let scan = clients.dynamodb.scan().table_name(&outputs.table_name).send().await.expect("scan");
    assert_eq!(scan.items(), &[item("ana")], "items kept");

    // The kept tables hold the names a new stack would take: deploy says so before creating anything.
    let (_, err) = w.run(&["deploy"], 1);
    common::assert_error_lines(&err, &format!("table {} already exists", outputs.table_name), "another --stack");
    assert!(stream::stack::find(&clients, &w.stack).await.expect("describe").is_none());

    // Safe to run twice.
    let (out, _) = w.run(&["destroy", "--keep-data", "--yes"], 0);
    assert!(out.contains("nothing to delete"), "{out}");
    for table in [&outputs.table_name, &outputs.rejected_table] {
        clients.dynamodb.delete_table().table_name(table).send().await.expect("clean up");
    }
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn destroy_removes_every_version_of_the_stacks_artifacts() {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let w = World::new("versions", "eu-south-1");
    let clients = w.clients().await;
    w.run(&["deploy"], 0);
    let stack = stream::stack::find(&clients, &w.stack).await.expect("describe").expect("stack");
    let param = |name: &str| {
        stack.parameters().iter().find(|p| p.parameter_key() == Some(name)).and_then(|p| p.parameter_value())
    };
    let (bucket, key) = (param("CodeBucket").expect("bucket"), param("CodeKey").expect("key"));
    let s3 = &clients.s3;
    // An operator turned versioning on: older artifacts and deleted ones stay as versions.
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .expect("versioning");
    let old = format!("{}/old.zip", w.stack);
    for (k, body) in [(key, "again"), (old.as_str(), "v1"), (old.as_str(), "v2")] {
        s3.put_object()
            .bucket(bucket)
            .key(k)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .expect("put");
    }
    s3.delete_object().bucket(bucket).key(&old).send().await.expect("delete marker");
    // Another stack's artifact in the same bucket stays, and so does the bucket.
    s3.put_object()
        .bucket(bucket)
        .key("other-stack/a.zip")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");

    let (out, _) = w.run(&["destroy", "--yes"], 0);
    assert!(out.contains("2 artifact(s) removed"), "{out}");
    let versions = s3.list_object_versions().bucket(bucket).send().await.expect("versions");
    let keys: Vec<&str> = versions
        .versions()
        .iter()
        .filter_map(|v| v.key())
        .chain(versions.delete_markers().iter().filter_map(|m| m.key()))
        .collect();
    assert_eq!(keys, ["other-stack/a.zip"], "every version and delete marker of this stack is gone");
    s3.head_bucket().bucket(bucket).send().await.expect("the bucket stays while it holds another's artifact");

    // Once the other artifact is gone too, the bucket goes with the last destroy.
    let v = &versions.versions()[0];
    s3.delete_object()
        .bucket(bucket)
        .key("other-stack/a.zip")
        .set_version_id(v.version_id().map(str::to_string))
        .send()
        .await
        .expect("delete");
    let (out, _) = w.run(&["destroy", "--yes"], 0);
    assert!(out.contains("empty artifact bucket removed"), "{out}");
    let head = s3.head_bucket().bucket(bucket).send().await;
    assert!(common::is_not_found(&head), "the bucket is gone: {head:?}");
}
