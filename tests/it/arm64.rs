//! arm64 (Graviton) functions: `deploy --arch` picks the build for the architecture or says which
//! command makes it (before any call); on moto, a stack deployed with the arm64 build runs it under
//! `stream local` emulated (qemu-user), as Lambda would on Graviton, and writes exactly what the
//! x86_64 build writes; changing the architecture of a deployed stack is an ordinary update.

use std::collections::BTreeSet;

use crate::common::{self, DEAD_ENDPOINT, World, assert_error_lines, run_plain};

/// The arm64 static build scripts/test makes (`scripts/build --arch all`).
fn arm64_bin() -> String {
    std::env::var("STREAM_STATIC_BIN_ARM64").expect("STREAM_STATIC_BIN_ARM64 set by scripts/test")
}

#[test]
fn deploy_arch_without_that_build_is_refused_before_any_call() {
    let env = [("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x"), ("AWS_REGION", "us-east-1")];
    // The test binary is an x86_64 build with no stream-arm64 beside it.
    let (_, err) = run_plain(&["deploy", "--arch", "arm64", "--endpoint-url", DEAD_ENDPOINT], &env, 2);
    let beside = std::path::Path::new(common::bin()).with_file_name("stream-arm64");
    assert_error_lines(
        &err,
        &format!("no arm64 build of stream beside {} (looked for {})", common::bin(), beside.display()),
        "scripts/build --arch arm64",
    );
    // A --bootstrap of the other architecture than --arch says so.
    let (_, err) = run_plain(
        &["deploy", "--arch", "arm64", "--bootstrap", common::bin(), "--endpoint-url", DEAD_ENDPOINT],
        &env,
        2,
    );
    assert_error_lines(
        &err,
        &format!("{} is built for x86_64, not arm64", common::bin()),
        "give --arch x86_64, or a build for arm64",
    );
}

/// Every (Username, Id) the table holds, each once.
async fn keys(clients: &stream::aws::Clients, table: &str) -> BTreeSet<(String, String)> {
    common::table_keys(&clients.dynamodb, table).await
}

/// The function's `Architectures` as the stack has it: the template's property, its `Ref`s resolved
/// with the stack's parameters. (moto's Lambda takes no `Architectures` from CloudFormation, so
/// the function itself would say x86_64 whatever the stack holds.)
async fn function_architectures(clients: &stream::aws::Clients, stack_name: &str) -> Vec<String> {
    let stack = stream::stack::find(clients, stack_name).await.expect("describe").expect("stack");
    let body = clients.cfn.get_template().stack_name(stack_name).send().await.expect("template");
    let doc: serde_json::Value = serde_json::from_str(body.template_body().expect("body")).expect("yaml");
    let property = &doc["Resources"]["Function"]["Properties"]["Architectures"];
    let items = property.as_array().expect("Architectures is a list");
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(arch) => arch.to_string(),
            None => {
                let name = item["Ref"].as_str().expect("a Ref");
                stream::stack::parameter(&stack, name).expect("the referenced parameter").to_string()
            }
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn an_arm64_function_runs_emulated_and_writes_what_x86_64_writes() {
    let w = World::new("graviton", "eu-west-2");
    let clients = w.clients().await;
    // As scripts/build --arch all leaves them: this binary with stream-arm64 beside it, which
    // `deploy --arch arm64` finds and uploads (no --bootstrap).
    let install = w.dir.path().join("install");
    std::fs::create_dir(&install).expect("install dir");
    std::fs::copy(common::bin(), install.join("stream")).expect("copy stream");
    std::fs::copy(arm64_bin(), install.join("stream-arm64")).expect("copy stream-arm64");
    let deploy = w.cmd_of(&install.join("stream"), &["deploy", "--arch", "arm64"]).output().expect("deploy runs");
    let (out, err) = common::check(&deploy, 0, &["deploy", "--arch", "arm64"]);
    assert!(out.contains("created") && err.contains("(arm64,"), "{err}");
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    assert_eq!(function_architectures(&clients, &w.stack).await, ["arm64"]);
    let (status, _) = w.run(&["status"], 0);
    assert!(status.contains("Architecture       arm64"), "{status}");

    w.run(&["produce", "--count", "1000", "--seed", "64"], 0);
    let expected: BTreeSet<(String, String)> = common::read_stream(&clients.kinesis, &outputs.stream_name)
        .await
        .iter()
        .map(|(_, _, data)| {
            let item = stream::tweet::item_from_payload(data).expect("tweet");
            (item.username, item.id)
        })
        .collect();
    let (out, err) = w.run(&["local", "--until-idle"], 0);
    assert!(out.contains("processed 1000 records"), "{out}");
    assert!(out.contains("emulated: the arm64 function ran emulated on this x86_64 machine"), "{out}");
    assert!(out.contains("not Lambda's"), "{out}");
    assert!(err.contains("ran emulated"), "said when it starts: {err}");
    assert_eq!(keys(&clients, &outputs.table_name).await, expected, "exactly the tweets");

    // Back to x86_64: an ordinary update of the function (no replacement), the mapping kept.
    let (out, err) = w.run(&["deploy", "--arch", "x86_64", "--yes"], 0);
    assert!(out.contains("updated") && err.contains("parameter Architecture: arm64 → x86_64"), "{err}");
    assert!(!err.contains("replace"), "the function is updated in place: {err}");
    assert_eq!(function_architectures(&clients, &w.stack).await, ["x86_64"]);
    w.run(&["produce", "--count", "10", "--seed", "65"], 0);
    let (out, _) = w.run(&["local", "--until-idle"], 0);
    assert!(
        out.contains("processed 10 records") && !out.contains("emulated"),
        "resumes after its checkpoint, natively: {out}"
    );
    // A stack declaring arm64 around the x86_64 code (changed behind stream's back): Lambda would
    // fail at init, and `local` says so rather than run it.
    let stack = stream::stack::find(&clients, &w.stack).await.expect("describe").expect("stack");
    let parameters = stack.parameters().iter().map(|p| {
        let key = p.parameter_key().unwrap_or_default();
        let builder = aws_sdk_cloudformation::types::Parameter::builder().parameter_key(key);
        let value = if key == "Architecture" { "arm64" } else { p.parameter_value().unwrap_or_default() };
        builder.parameter_value(value).build()
    });
    let capabilities = [aws_sdk_cloudformation::types::Capability::CapabilityNamedIam];
    let update = clients.cfn.update_stack().stack_name(&w.stack).use_previous_template(true);
    update
        .set_parameters(Some(parameters.collect()))
        .set_capabilities(Some(capabilities.to_vec()))
        .send()
        .await
        .expect("update");
    let (_, err) = w.run(&["local", "--until-idle"], 1);
    assert_error_lines(
        &err,
        "is declared arm64, but its bootstrap is an x86_64 executable",
        "deploy again with --arch x86_64",
    );

    w.run(&["destroy", "--yes"], 0);
}
