//! What users of the AWS CLI expect, through the real binary: no region anywhere is refused (not a
//! silent us-east-1), except by the commands that need no AWS.

use std::process::Command;

use crate::common::{self, DEAD_ENDPOINT, assert_error_lines};

/// `stream ARGS` with credentials in the environment but no region anywhere: no AWS_REGION, no
/// AWS_DEFAULT_REGION, a HOME without ~/.aws, no config file. Returns (stdout, stderr).
fn without_region(args: &[&str], code: i32) -> (String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(common::bin())
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_CONFIG_FILE", home.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("stream runs");
    common::check(&out, code, args)
}

#[test]
fn no_region_anywhere_is_refused_as_the_aws_cli_refuses() {
    for command in [&["status"][..], &["produce", "--count", "1"], &["scan-table"], &["deploy"], &["schema", "show"]] {
        let args = [command, &["--endpoint-url", DEAD_ENDPOINT]].concat();
        let (_, err) = without_region(&args, 2);
        assert_error_lines(&err, "no AWS region is set", "give --region eu-west-1, export AWS_REGION");
    }
    // A region from any of the usual places is enough to get past the check (to the dead endpoint).
    let (_, err) = without_region(&["status", "--region", "eu-west-1", "--endpoint-url", DEAD_ENDPOINT], 1);
    assert!(err.contains("cannot reach the endpoint"), "{err}");
    // The commands that need no AWS keep their stated default.
    let (out, _) = without_region(&["plan", "--rate", "100", "--endpoint-url", DEAD_ENDPOINT], 0);
    assert!(out.contains("settings from the template's defaults (AWS is not set up here)"), "{out}");
    without_region(&["template"], 0);
    without_region(&["completions", "bash"], 0);
    without_region(&["schema", "check", "iot"], 0);
    let (_, err) = without_region(&["logs", "--local"], 2);
    assert_error_lines(&err, "no function log at", "run `stream local` first");
    assert!(err.contains("/local/us-east-1/"), "logs --local reads a file, named after the stated default: {err}");
}

/// A loopback endpoint that answers every request with a 503 and counts them.
struct Failing {
    url: String,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Failing {
    fn start() -> Failing {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = (&conn)
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Failing { url, count }
    }

    fn requests(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `stream status` against an endpoint that always fails, with these variables and `config` as
/// the AWS config file; how many requests it made.
fn attempts_made(env: &[(&str, &str)], config: &str) -> (usize, String) {
    let endpoint = Failing::start();
    let home = tempfile::tempdir().expect("tempdir");
    let config_file = home.path().join("config");
    std::fs::write(&config_file, config).expect("config");
    let out = Command::new(common::bin())
        .args(["status", "--region", "eu-west-1", "--endpoint-url", &endpoint.url])
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_CONFIG_FILE", &config_file)
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .envs(env.iter().copied())
        .output()
        .expect("stream runs");
    (endpoint.requests(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// The SDK makes the attempts the user configured — AWS_MAX_ATTEMPTS, else the profile's
/// max_attempts — and stream's own default only where they set nothing; nothing is added on top.
#[test]
fn retries_add_up_to_what_the_user_configured() {
    assert_eq!(attempts_made(&[], "").0, stream::aws::DEFAULT_MAX_ATTEMPTS as usize, "ours when nothing is set");
    assert_eq!(attempts_made(&[("AWS_MAX_ATTEMPTS", "2")], "").0, 2);
    assert_eq!(attempts_made(&[], "[default]\nmax_attempts = 1\n").0, 1, "the profile's");
    assert_eq!(
        attempts_made(&[("AWS_MAX_ATTEMPTS", "3")], "[default]\nmax_attempts = 1\n").0,
        3,
        "the variable beats the profile"
    );
    assert_eq!(
        attempts_made(&[("AWS_PROFILE", "ops")], "[profile ops]\nmax_attempts = 2\n").0,
        2,
        "the selected profile's"
    );
    // What the SDK cannot take is refused before any call, not a panic.
    let (made, err) = attempts_made(&[("AWS_MAX_ATTEMPTS", "0")], "");
    assert_eq!(made, 0);
    assert_error_lines(
        &err,
        "AWS_MAX_ATTEMPTS is \"0\", not a number of attempts (1 or more)",
        "a whole number such as 3",
    );
    // Legacy, which the Rust SDK lacks, is standard, and says so.
    let (made, err) = attempts_made(&[("AWS_RETRY_MODE", "legacy")], "");
    assert_eq!(made, stream::aws::DEFAULT_MAX_ATTEMPTS as usize);
    let warning = "warning: AWS_RETRY_MODE is legacy, which the AWS SDK for Rust does not have";
    assert_eq!(err.matches(warning).count(), 1, "said once: {err}");
    let (_, err) = attempts_made(&[], "");
    assert!(!err.contains("warning:"), "{err}");
    let (made, err) = attempts_made(&[], "[default]\nretry_mode = fastest\n");
    assert_eq!(made, 0);
    assert_error_lines(&err, "the profile's retry_mode is \"fastest\", not a retry mode", "standard or adaptive");
}
