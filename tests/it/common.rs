//! Shared helpers of the integration tests: run the real `stream` binary, and SDK clients that
//! look at what landed in the emulator. Tests that need moto are `#[ignore]`d; `scripts/test`
//! starts a fresh moto server, exports AWS_ENDPOINT_URL and runs them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use stream::aws::{AwsArgs, Clients, RetryMode, load_config};

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_stream")
}

/// A test's own world: a stack name, a region (so artifact buckets never collide between tests
/// running at once), and a credentials file in a temporary directory.
pub struct World {
    pub stack: String,
    pub region: String,
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new(stack: &str, region: &str) -> Self {
        let stack = format!("{stack}-{}", std::process::id() % 100_000);
        World { stack, region: region.to_string(), dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn credentials_file(&self) -> PathBuf {
        self.dir.path().join("credentials")
    }

    /// Where `stream local` keeps checkpoints, code and the function's log for this test.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `stream ARGS --stack <stack> --region <region>` with the test's credentials file.
    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_of(Path::new(bin()), args)
    }

    /// As `cmd`, running `program` (a copy of the binary placed elsewhere) instead.
    pub fn cmd_of(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .args(["--stack", &self.stack, "--region", &self.region])
            .env("AWS_SHARED_CREDENTIALS_FILE", self.credentials_file())
            .env("STREAM_STATE_DIR", self.state_dir())
            .env_remove("STREAM_STACK")
            .env_remove("AWS_PROFILE");
        c
    }

    /// Runs `stream ARGS`, asserts the exit code, returns stdout and stderr.
    pub fn run(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.cmd(args).output().expect("stream runs");
        check(&out, code, args)
    }

    pub async fn clients(&self) -> Clients {
        Clients::new(
            &load_config(&AwsArgs { region: Some(self.region.clone()), ..Default::default() }, RetryMode::Standard)
                .await,
        )
    }

    pub async fn lambda(&self) -> aws_sdk_lambda::Client {
        let config =
            load_config(&AwsArgs { region: Some(self.region.clone()), ..Default::default() }, RetryMode::Standard)
                .await;
        aws_sdk_lambda::Client::new(&config)
    }
}

/// Asserts the exit code of a finished `stream` run and returns (stdout, stderr).
pub fn check(out: &Output, code: i32, args: &[&str]) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "stream {args:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(!stderr.contains("panicked"), "no panics: {stderr}");
    (stdout, stderr)
}

/// Runs the binary with exactly these args and env (no test world).
pub fn run_plain(args: &[&str], env: &[(&str, &str)], code: i32) -> (String, String) {
    let mut c = Command::new(bin());
    c.args(args).env_remove("STREAM_STACK");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("stream runs");
    check(&out, code, args)
}

/// The number in `text` between the first `before` and the next `after` (a summary line's figure),
/// or a panic naming the text.
pub fn number_after<T: std::str::FromStr>(text: &str, before: &str, after: &str) -> T {
    text.split(before)
        .nth(1)
        .and_then(|rest| rest.split(after).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {before:?} in: {text}"))
}

/// Every record of every shard of `stream`, oldest first per shard: (shard id, partition key, data).
pub async fn read_stream(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<(String, String, Vec<u8>)> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    let mut out = Vec::new();
    for shard in stream::kinesis::list_shards(kinesis, stream).await.expect("shards") {
        let mut it = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator;
        while let Some(i) = it {
            let page = kinesis.get_records().shard_iterator(i).limit(10_000).send().await.expect("records");
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                let key = r.partition_key().unwrap_or_default().to_string();
                out.push((shard.shard_id().to_string(), key, r.data().as_ref().to_vec()));
            }
            it = page.next_shard_iterator;
        }
    }
    out
}

/// An endpoint nothing listens on: a command that passes with it made no AWS call.
pub const DEAD_ENDPOINT: &str = "http://127.0.0.1:9";

/// The two lines every error prints: what went wrong (naming `what`) and what to do (`hint`).
pub fn assert_error_lines(stderr: &str, what: &str, hint: &str) {
    let lines: Vec<&str> =
        stderr.lines().filter(|l| l.starts_with("stream: error:") || l.starts_with("hint:")).collect();
    assert_eq!(lines.len(), 2, "one error line and one hint line: {stderr}");
    assert!(lines[0].contains(what), "error names {what:?}: {stderr}");
    assert!(lines[1].contains(hint), "hint says {hint:?}: {stderr}");
}

/// True when an SDK error is the service's "no such resource" answer (not any other failure).
pub fn is_not_found<T, E, R>(result: &Result<T, aws_smithy_runtime_api::client::result::SdkError<E, R>>) -> bool
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    const NOT_FOUND: &[&str] = &["ResourceNotFoundException", "NoSuchEntity", "NoSuchBucket", "NotFound", "NoSuchKey"];
    match result {
        Ok(_) => false,
        Err(e) => e.as_service_error().and_then(|s| s.code()).is_some_and(|c| NOT_FOUND.contains(&c)),
    }
}

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A moto server of a test's own (the project's venv, 127.0.0.1, a free port), for setups the
/// shared one cannot be: a second emulator, IAM enforcement. Stopped on drop.
pub struct Moto {
    pub url: String,
    child: std::process::Child,
}

impl Moto {
    /// Starts moto with `env` added to its environment and waits until it answers.
    pub fn start(env: &[(&str, &str)]) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let mut cmd = Command::new(repo().join(".venv/bin/moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("moto_server from the venv (scripts/local-aws install)");
        let url = format!("http://127.0.0.1:{port}");
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < until, "moto did not start on {url}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // As scripts/local-aws does: moto's own attempt to run the function (through Docker, for
        // every record put) is turned off; `stream local` runs it.
        let answer = moto_api(&url, "/moto-api/config", r#"{"lambda":{"use_docker":false}}"#);
        assert!(answer.starts_with("HTTP/1.1 20") || answer.starts_with("HTTP/1.0 20"), "moto config: {answer}");
        Moto { url, child }
    }

    /// Clients of this server (region `region`), signing with `credentials` (id, secret).
    pub async fn clients(&self, region: &str, credentials: (&str, &str)) -> Clients {
        let creds = aws_credential_types::Credentials::new(credentials.0, credentials.1, None, None, "test");
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(&self.url)
            .credentials_provider(creds)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .load()
            .await;
        Clients::new(&config)
    }
}

/// POSTs `body` (JSON) to moto's own API at `path` on the server at `url`; its raw answer.
pub fn moto_api(url: &str, path: &str, body: &str) -> String {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut conn = std::net::TcpStream::connect(host).expect("moto");
    std::io::Write::write_all(&mut conn, request.as_bytes()).expect("moto api");
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut conn, &mut answer);
    answer
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal valid tweet (v1.1 shape) by `name`, as bytes for the stream.
pub fn tweet(id: &str, name: &str, text: &str) -> Vec<u8> {
    serde_json::json!({
        "id_str": id, "created_at": "Wed Oct 10 20:19:24 +0000 2018", "text": text,
        "user": {"name": name, "screen_name": name, "id_str": "1"}
    })
    .to_string()
    .into_bytes()
}

/// Every (Username, Id) in `table`, each seen once.
pub async fn table_keys(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> std::collections::BTreeSet<(String, String)> {
    let mut keys = std::collections::BTreeSet::new();
    let mut pages = dynamodb.scan().table_name(table).into_paginator().items().send();
    while let Some(item) = pages.next().await {
        let item = item.expect("scan");
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        assert!(keys.insert((s("Username"), s("Id"))), "each key once");
    }
    keys
}

/// How many items `table` holds (a counting Scan, every page).
pub async fn item_count(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> usize {
    let mut pages =
        dynamodb.scan().table_name(table).select(aws_sdk_dynamodb::types::Select::Count).into_paginator().send();
    let mut n = 0;
    while let Some(page) = pages.next().await {
        n += page.expect("scan").count() as usize;
    }
    n
}

/// Puts (partition key, data) `records` in order, `per_call` at a time, one call in flight (moto
/// loses records under concurrent puts to one shard); every entry must be accepted.
pub async fn put_all(kinesis: &aws_sdk_kinesis::Client, stream: &str, records: &[(String, Vec<u8>)], per_call: usize) {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    for chunk in records.chunks(per_call) {
        let entries: Vec<PutRecordsRequestEntry> = chunk
            .iter()
            .map(|(k, d)| {
                PutRecordsRequestEntry::builder().partition_key(k).data(Blob::new(d.clone())).build().expect("entry")
            })
            .collect();
        let out = kinesis.put_records().stream_name(stream).set_records(Some(entries)).send().await.expect("put");
        assert_eq!(out.failed_record_count(), Some(0));
    }
}
