//! The function under `stream local` runs as its execution role, with provided.al2023's
//! environment: a static bootstrap that writes down its environment shows the role's temporary
//! credentials (STS says whose they are) and exactly the variables Lambda sets, each with the value
//! Lambda gives it on provided.al2023. (moto can also
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
    let root = path.parent().expect("dir").to_str().expect("utf8");
    let function = clients
        .lambda
        .get_function_configuration()
        .function_name(&outputs.function_name)
        .send()
        .await
        .expect("function");
    // provided.al2023's values, as Lambda documents and sets them
    // (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
    let log_group = function.logging_config().and_then(|l| l.log_group()).map(str::to_string);
    let mut expected: BTreeMap<String, String> = [
        ("AWS_LAMBDA_FUNCTION_NAME", outputs.function_name.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", log_group.unwrap_or(format!("/aws/lambda/{}", outputs.function_name))),
        ("AWS_REGION", w.region.clone()),
        ("AWS_DEFAULT_REGION", w.region.clone()),
        ("_HANDLER", "bootstrap".into()),
        ("LAMBDA_TASK_ROOT", root.into()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
        ("TZ", ":UTC".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
        (
            "LD_LIBRARY_PATH",
            format!("/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:{root}:{root}/lib:/opt/lib"),
        ),
        // X-Ray's, set whether or not tracing is active: the daemon's address for the SDKs, and
        // errors logged rather than thrown when a segment is missing.
        ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR".into()),
        ("AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129:2000".into()),
        ("_AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129".into()),
        ("_AWS_XRAY_DAEMON_PORT", "2000".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // The function's own, as Lambda holds them (the stack's tables among them).
    let own = function.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
    assert_eq!(
        (own.get("TABLE_NAME"), own.get("REJECTED_TABLE_NAME")),
        (Some(&outputs.table_name), Some(&outputs.rejected_table))
    );
    assert_eq!(
        own.len(),
        6,
        "TABLE_NAME, REJECTED_TABLE_NAME, WRITE_CONCURRENCY, RUST_LOG, EVENT_SCHEMA, GLIBC_TUNABLES: {own:?}"
    );
    // The template's fixed ones reach the deployed function as written.
    for (name, value) in stream::template::function_constants() {
        assert_eq!(own.get(&name), Some(&value), "{name}");
    }
    expected.extend(own);
    // Where each service is, as this test's own calls resolve it (the emulator).
    let emulator = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    expected.extend(stream::aws::SERVICE_IDS.iter().map(|s| (stream::aws::endpoint_variable(s), emulator.clone())));
    let per_process = ["AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];
    let per_process = per_process.iter().chain(&["AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_LOG_STREAM_NAME"]);
    let fixed: BTreeMap<String, String> = env
        .iter()
        .filter(|(k, _)| !per_process.clone().any(|p| p == *k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let names: std::collections::BTreeSet<&String> = fixed.keys().chain(expected.keys()).collect();
    let differ: Vec<String> = names
        .into_iter()
        .filter(|k| fixed.get(*k) != expected.get(*k))
        .map(|k| format!("{k}: {:?} where Lambda has {:?}", fixed.get(k), expected.get(k)))
        .collect();
    assert!(
        differ.is_empty(),
        "exactly the variables Lambda sets, with its values, and the endpoints:\n{}",
        differ.join("\n")
    );
    // The rest change with each process: the Runtime API on loopback, a log stream of today.
    let api = env["AWS_LAMBDA_RUNTIME_API"];
    assert!(api.strip_prefix("127.0.0.1:").is_some_and(|p| p.parse::<u16>().is_ok()), "{api}");
    let stream_name = env["AWS_LAMBDA_LOG_STREAM_NAME"];
    let today = chrono::Utc::now().format("%Y/%m/%d/[$LATEST]").to_string();
    let id = stream_name.strip_prefix(&today).unwrap_or_else(|| panic!("{stream_name} starts with {today}"));
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{stream_name}");
    assert_eq!(env["AWS_ACCESS_KEY"], env["AWS_ACCESS_KEY_ID"]);
    assert!(!env["AWS_SESSION_TOKEN"].is_empty(), "temporary credentials");
    assert_eq!(env.len(), fixed.len() + 6, "{env:?}");

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
    let role = function.role().expect("role").rsplit('/').next().expect("name").to_string();
    let arn = me.arn().expect("arn");
    assert!(arn.contains(":assumed-role/") && arn.contains(&role), "{arn} is the role {role}");
    w.run(&["destroy", "--yes"], 0);
}
