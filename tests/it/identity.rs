//! The function under `stream local` runs as its execution role, with provided.al2023's
//! environment: a static bootstrap that writes down its environment shows the role's temporary
//! credentials (STS says whose they are) and exactly the variables Lambda sets. (moto can also
//! check IAM, but once it does it refuses the Rust SDK's signatures — SignatureDoesNotMatch on
//! CreateStack and on Lambda's GetFunctionConfiguration — so a policy taken from the role cannot
//! be shown to fail the function on moto; the fault proxy's AccessDenied does, in `local`.)

use crate::common;

use std::collections::BTreeMap;

use common::World;

/// A static program that writes its environment to `env.txt` in its working directory and exits.
fn env_dump(dir: &std::path::Path) -> std::path::PathBuf {
    let source = dir.join("envdump.c");
    std::fs::write(
        &source,
        "#include <stdio.h>\nextern char **environ;\nint main(void) {\n  FILE *f = fopen(\"env.txt\", \"w\");\n  \
         for (char **e = environ; *e; e++) fprintf(f, \"%s\\n\", *e);\n  fclose(f);\n  return 1;\n}\n",
    )
    .expect("write");
    let exe = dir.join("bootstrap");
    let built = std::process::Command::new("gcc").args(["-static", "-O2"]).arg(&source).arg("-o").arg(&exe).status();
    assert!(built.expect("gcc runs").success(), "gcc -static builds the probe");
    exe
}

/// Where the function wrote `env.txt` under `dir`.
fn find_env(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_env(&path) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == "env.txt") {
            return Some(path);
        }
    }
    None
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn the_function_runs_as_its_role_with_lambdas_environment() {
    let w = World::new("envdump", "ap-southeast-1");
    let clients = w.clients().await;
    let exe = env_dump(w.dir.path());
    w.run(&["deploy", "--bootstrap", exe.to_str().expect("utf8"), "--max-retries", "0", "--batch-size", "1"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    w.run(&["produce", "-n", "1", "--seed", "1"], 0);
    // The probe exits at once: the one record is given up, after one invocation.
    w.run(&["local", "--until-idle"], 3);

    let path = find_env(&w.state_dir()).expect("the function wrote env.txt");
    let text = std::fs::read_to_string(&path).expect("env.txt");
    let env: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let mut expected: Vec<String> = [
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "_HANDLER",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "TZ",
        "LANG",
        "PATH",
        "LD_LIBRARY_PATH",
        // The function's own.
        "TABLE_NAME",
        "REJECTED_TABLE_NAME",
        "WRITE_CONCURRENCY",
        "RUST_LOG",
        "EVENT_SCHEMA",
    ]
    .map(String::from)
    .to_vec();
    // Where each service is, as this test's own calls resolve it (the emulator).
    expected.extend(stream::aws::SERVICE_IDS.iter().map(|s| stream::aws::endpoint_variable(s)));
    expected.sort();
    let got: Vec<String> = env.keys().map(|k| k.to_string()).collect();
    assert_eq!(got, expected, "exactly the variables Lambda sets, and the endpoints");
    assert_eq!(env["LAMBDA_TASK_ROOT"], path.parent().expect("dir").to_str().expect("utf8"), "the code's directory");
    assert_eq!(env["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], outputs.function_name);
    assert_eq!(env["AWS_ACCESS_KEY"], env["AWS_ACCESS_KEY_ID"]);
    assert!(!env["AWS_SESSION_TOKEN"].is_empty(), "temporary credentials");

    // STS says whose the credentials are: the function's role, assumed.
    let creds = aws_credential_types::Credentials::new(
        env["AWS_ACCESS_KEY_ID"],
        env["AWS_SECRET_ACCESS_KEY"],
        Some(env["AWS_SESSION_TOKEN"].to_string()),
        None,
        "function",
    );
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&clients.config).credentials_provider(creds).build(),
    );
    let me = sts.get_caller_identity().send().await.expect("caller identity");
    let function = clients
        .lambda
        .get_function_configuration()
        .function_name(&outputs.function_name)
        .send()
        .await
        .expect("function");
    let role = function.role().expect("role").rsplit('/').next().expect("name").to_string();
    let arn = me.arn().expect("arn");
    assert!(arn.contains(":assumed-role/") && arn.contains(&role), "{arn} is the role {role}");
    w.run(&["destroy", "--yes"], 0);
}
