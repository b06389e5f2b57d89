//! `stream deploy` parameters through the real binary on moto: flags reach the stream, the function
//! and the mapping; a later deploy without a flag keeps the current value; nothing to change is
//! "up to date"; the iterator-age alarm (and its SNS topic with --alarm-email) is in the stack.

mod common;

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
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs");

    let check = |batch: i32| {
        let (lambda, outputs, clients) = (lambda.clone(), outputs.clone(), clients.clone());
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
        }
    };
    check(50).await;
    let resources = clients.cfn.describe_stack_resources().stack_name(&w.stack).send().await.expect("resources");
    // moto lists the alarm with neither type nor logical id: count it, and find it in the template.
    let logical: Vec<&str> = resources.stack_resources().iter().filter_map(|r| r.logical_resource_id()).collect();
    assert!(logical.contains(&"AlarmTopic"), "{logical:?}");
    assert_eq!(resources.stack_resources().len(), 10, "{logical:?}");
    let template = clients.cfn.get_template().stack_name(&w.stack).send().await.expect("template");
    assert!(template.template_body().unwrap_or_default().contains("IteratorAgeAlarm"));

    // One flag changed; the others keep their values.
    let (out, _) = w.run(&["deploy", "--batch-size", "70"], 0);
    assert!(out.contains("updated"), "{out}");
    check(70).await;
    let (out, _) = w.run(&["deploy"], 0);
    assert!(out.contains("up to date"), "{out}");
    check(70).await;

    // Out of range: refused before any call, nothing changed.
    let (_, err) = w.run(&["deploy", "--parallelization", "11"], 2);
    assert!(err.contains("--parallelization 11 is out of range") && err.contains("from 1 to 10"), "{err}");
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
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs");
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
    assert!(err.contains("does not exist"), "--code-only never creates a stack: {err}");
}
