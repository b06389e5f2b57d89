//! The command line as users meet it: help, template, and bad input answered with one line of
//! what is wrong, one of what to do, the right exit code, and no AWS call where it can be avoided.
//! Tests marked `#[ignore]` need moto (scripts/test).

use crate::common;

use common::{World, run_plain};

use common::{DEAD_ENDPOINT, assert_error_lines};

fn offline(args: &[&str], code: i32) -> (String, String) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--endpoint-url", DEAD_ENDPOINT]);
    run_plain(&all, &[("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x"), ("AWS_REGION", "us-east-1")], code)
}

#[test]
fn help_lists_commands_and_exit_codes() {
    let (out, _) = run_plain(&["--help"], &[], 0);
    for cmd in ["deploy", "destroy", "produce", "local", "scan-table", "template"] {
        assert!(out.contains(cmd), "{cmd} in help");
    }
    assert!(out.contains("Exit codes: 0 success"));
}

#[test]
fn template_prints_the_embedded_stack() {
    let (out, _) = run_plain(&["template"], &[], 0);
    let file = std::fs::read_to_string(common::repo().join("template/stack.yaml")).expect("template file");
    assert_eq!(out.trim_end(), file.trim_end());
}

#[test]
fn invalid_stack_name_is_refused_before_any_call() {
    let (_, err) = offline(&["produce", "--stack", "9-bad_name"], 2);
    assert_error_lines(&err, "invalid stack name \"9-bad_name\"", "letters, digits and hyphens");
}

#[test]
fn out_of_range_parameter_is_refused_before_any_call() {
    let (_, err) = offline(&["deploy", "--batch-size", "20000"], 2);
    assert_error_lines(&err, "--batch-size 20000 is out of range", "from 1 to 10000");
    let (_, err) = offline(&["deploy", "--max-record-age", "10"], 2);
    assert_error_lines(&err, "--max-record-age 10", "from 60 to 604800");
    let (_, err) = offline(&["local", "--batch-size", "0"], 2);
    assert_error_lines(&err, "--batch-size 0 is out of range", "from 1 to 10000");
}

#[test]
fn invalid_region_and_endpoint_are_refused() {
    let (_, err) = offline(&["scan-table", "--region", "mars-1"], 2);
    assert_error_lines(&err, "invalid region \"mars-1\"", "us-east-1");
    let (_, err) = run_plain(&["scan-table", "--endpoint-url", "localhost:4566"], &[], 2);
    assert_error_lines(&err, "invalid endpoint URL", "http://127.0.0.1:4566");
}

/// Runs `stream` in an environment without any AWS configuration: no credentials, no config file,
/// no endpoint, no instance metadata to ask.
fn bare(args: &[&str], env: &[(&str, &str)], code: i32) -> (String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let mut c = std::process::Command::new(common::bin());
    c.args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied());
    let out = c.output().expect("stream runs");
    common::check(&out, code, args)
}

/// A region name of the wrong form is refused before any call, from the environment as from the
/// flag. One of the right form is AWS's to know (no list of regions here to go stale): the dead
/// endpoint below proves nothing was called for the bad one.
#[test]
fn regions_are_checked_by_form_from_the_environment_too() {
    let creds = [("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x")];
    let env = [creds[0], creds[1], ("AWS_REGION", "Mars_1"), ("AWS_ENDPOINT_URL", DEAD_ENDPOINT)];
    let (_, err) = bare(&["status"], &env, 2);
    assert_error_lines(&err, "invalid region \"Mars_1\"", "describe-regions");
}

#[test]
fn missing_credentials_are_named_before_any_call() {
    let (_, err) = bare(&["deploy", "--region", "eu-west-1"], &[], 2);
    assert_error_lines(&err, "no AWS credentials found", "aws configure");
    // A profile that does not exist is the same problem, named.
    let (_, err) = bare(&["scan-table", "--region", "eu-west-1", "--profile", "nobody"], &[], 2);
    assert_error_lines(&err, "no usable credentials in profile \"nobody\"", "list-profiles");
}

#[test]
fn bootstrap_that_is_not_a_lambda_executable_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("bootstrap.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("write");
    let (_, err) = offline(&["deploy", "--bootstrap", script.to_str().expect("utf8")], 2);
    assert_error_lines(&err, "is not a Linux ELF executable", "--bootstrap");
    let (_, err) = offline(&["deploy", "--bootstrap", "/no/such/file"], 1);
    assert_error_lines(&err, "/no/such/file", "path");
}

#[test]
fn unreachable_endpoint_says_so() {
    let (_, err) = offline(&["scan-table", "--stack", "s1"], 1);
    assert_error_lines(&err, "cannot reach the endpoint", "--endpoint-url");
}

#[test]
fn bad_flag_is_a_usage_error() {
    let (_, err) = run_plain(&["produce", "--count", "many"], &[], 2);
    assert_error_lines(&err, "invalid value 'many' for '--count <N>'", "stream produce --help");
    // A flag that does not exist: clap's own tip names the one meant.
    let (_, err) = run_plain(&["deploy", "--shard", "2"], &[], 2);
    assert_error_lines(&err, "unexpected argument '--shard'", "--shards");
    // --code-only changes no parameter: every parameter flag is refused with it (it was 6 of 12).
    let (_, err) = run_plain(&["deploy", "--code-only", "--max-retries", "5"], &[], 2);
    assert_error_lines(&err, "--code-only cannot be used with --max-retries", "leave out --code-only or --max-retries");
}

#[test]
fn started_as_bootstrap_outside_lambda_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("bootstrap");
    std::os::unix::fs::symlink(common::bin(), &link).expect("symlink");
    let out = std::process::Command::new(&link).env_remove("AWS_LAMBDA_RUNTIME_API").output().expect("runs");
    let (_, err) = common::check(&out, 2, &["bootstrap"]);
    assert_error_lines(&err, "outside Lambda", "stream local");
}

#[test]
fn lambda_mode_without_lambda_variables_fails_cleanly() {
    // lambda_runtime would panic without these; the binary must say what is missing instead.
    let (_, err) = run_plain(&[], &[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")], 2);
    assert_error_lines(&err, "AWS_LAMBDA_FUNCTION_NAME is not set", "stream local");
    let env = [
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"),
        ("AWS_LAMBDA_FUNCTION_NAME", "f"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ];
    let (_, err) = run_plain(&[], &env, 2);
    assert_error_lines(&err, "TABLE_NAME is not set", "stream deploy");
}

#[test]
#[ignore = "needs moto: scripts/test"]
fn missing_stack_is_named_with_what_to_do() {
    let w = World::new("nostack", "ap-southeast-2");
    let (_, err) = w.run(&["scan-table"], 1);
    assert_error_lines(&err, &format!("stack \"{}\" does not exist", w.stack), "stream deploy --stack");
    let (_, err) = w.run(&["produce", "-n", "1"], 1);
    assert_error_lines(&err, "does not exist", "stream deploy");
    let (out, _) = w.run(&["destroy", "--yes"], 0);
    assert!(out.contains("nothing to delete"), "{out}");
}

#[test]
#[ignore = "needs moto: scripts/test"]
fn destroy_asks_before_deleting_and_refuses_without_a_terminal() {
    let w = World::new("confirm", "ca-central-1");
    w.run(&["deploy"], 0);
    let (_, err) = w.run(&["destroy"], 2);
    assert_error_lines(&err, "without confirmation", "--yes");
    let clients = futures_lite_block(w.clients());
    let still = futures_lite_block(stream::stack::find(&clients, &w.stack)).expect("describe");
    assert!(still.is_some(), "the stack was not deleted");
    w.run(&["destroy", "--yes"], 0);
}

fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_stack_not_made_by_stream_is_left_alone() {
    let w = World::new("foreign", "us-west-2");
    let clients = w.clients().await;
    let template = r#"{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}"#;
    clients
        .cfn
        .create_stack()
        .stack_name(&w.stack)
        .template_body(template)
        .send()
        .await
        .expect("create a foreign stack");
    for args in [&["scan-table"][..], &["produce", "-n", "1"], &["deploy"], &["destroy", "--yes"]] {
        let (_, err) = w.run(args, 1);
        assert_error_lines(&err, "was not created by stream", "stream");
    }
    let still = stream::stack::find(&clients, &w.stack).await.expect("describe");
    assert!(still.is_some(), "the foreign stack is untouched");
}

/// Compiles, with the C compiler `cc`, a probe dynamically linked against the machine's glibc that
/// calls arc4random, which arrived in glibc 2.36: it needs GLIBC_2.36.
fn newer_glibc_probe(dir: &std::path::Path, cc: &str) -> std::path::PathBuf {
    let source = dir.join("new.c");
    std::fs::write(&source, "#include <stdlib.h>\nint main(void) { return (int)(arc4random() & 1); }\n")
        .expect("write");
    let exe = dir.join(format!("new-glibc-{cc}"));
    let built = std::process::Command::new(cc).arg(&source).arg("-o").arg(&exe).status();
    assert!(built.is_ok_and(|s| s.success()), "{cc} builds the probe");
    exe
}

/// An executable linked against a glibc newer than provided.al2023's 2.34 would start here and
/// fail in Lambda: deploy refuses it (no terminal to ask), before any call.
#[test]
fn a_bootstrap_linked_against_a_newer_glibc_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = newer_glibc_probe(dir.path(), "gcc");
    let (_, err) = offline(&["deploy", "--bootstrap", exe.to_str().expect("utf8")], 2);
    assert_error_lines(&err, "needs GLIBC_2.36 (provided.al2023 has glibc 2.34)", "scripts/build");
}

/// The same check for an arm64 executable (built with the cross compiler scripts/build installs
/// for `--arch arm64`): refused before any call, whatever the machine deploying it runs.
#[test]
#[ignore = "needs aarch64-linux-gnu-gcc: scripts/build --arch arm64 installs it (scripts/test)"]
fn an_arm64_bootstrap_linked_against_a_newer_glibc_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = newer_glibc_probe(dir.path(), "aarch64-linux-gnu-gcc");
    let bytes = std::fs::read(&exe).expect("read probe");
    assert_eq!(stream::deploy::elf::lambda_arch(&bytes), Ok(stream::deploy::elf::Arch::Arm64));
    let (_, err) = offline(&["deploy", "--bootstrap", exe.to_str().expect("utf8")], 2);
    assert_error_lines(&err, "needs GLIBC_2.36 (provided.al2023 has glibc 2.34)", "scripts/build");
}

/// scan-table's flags are checked before any call, each refusal naming AWS's bound.
#[test]
fn scan_table_flags_are_checked_before_any_call() {
    let (_, err) = offline(&["scan-table", "--count", "--limit", "5"], 2);
    assert_error_lines(&err, "--count cannot be used with --limit", "leave out --count or --limit");
    let (_, err) = offline(&["scan-table", "--segments", "1000001"], 2);
    assert_error_lines(&err, "--segments 1000001 is out of range", "from 1 to 1000000 (Scan's TotalSegments)");
    let (_, err) = offline(&["scan-table", "--page-size", "2147483648"], 2);
    assert_error_lines(&err, "--page-size 2147483648 is out of range", "a whole number from 1 to 2147483647");
}

/// A filter pattern is checked before any call; more filters than a mapping takes are refused.
#[test]
fn bad_filters_are_refused_before_any_call() {
    let (_, err) = offline(&["deploy", "--filter", r#"{"partitionKey":["a"]}"#], 2);
    assert_error_lines(&err, "filters on \"partitionKey\"", "--filter a JSON pattern on data");
    let pattern = r#"{"data":{"lang":["en"]}}"#;
    let mut args = vec!["deploy"];
    for _ in 0..11 {
        args.extend(["--filter", pattern]);
    }
    let (_, err) = offline(&args, 2);
    assert_error_lines(&err, "11 --filter patterns are more than a mapping takes (10)", "at most 10");
    let (_, err) = offline(&["deploy", "--filter", r#"{"data":{"n":[{"numeric":[">",10,"<",5]}]}}"#], 2);
    assert_error_lines(&err, "has a malformed \"numeric\" at data.n", "--filter a JSON pattern on data");
}

/// A process the system refuses its runtime (here: no file descriptor left for the epoll
/// instance's waker) gets the two lines and exit 1, not a panic.
#[test]
fn a_runtime_the_system_refuses_is_an_error_not_a_panic() {
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -n 4 && exec \"$0\" status --stack x", common::bin()])
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("sh runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_error_lines(&err, "cannot start: the system refused a thread or an epoll instance", "ulimit -n");
}
