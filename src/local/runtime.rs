//! Lambda's execution environment on this machine: the function's `bootstrap` runs as a child
//! process with Lambda's environment and talks to a Runtime API served on loopback (next
//! invocation, response, invocation error, init error). Around it the rules Lambda applies: the
//! deadline (the process is killed and the next invocation starts a new one), a crash (started
//! again), an init error (reported as the invocation's error), a response over 6 MB (refused).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{Notify, oneshot};

/// Lambda refuses synchronous responses larger than this.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
const API_PREFIX: &str = "/2018-06-01/runtime";

/// How the function runs: its code, environment and limits.
pub struct FunctionSpec {
    /// The unpacked `bootstrap`.
    pub bootstrap: PathBuf,
    /// Its directory (LAMBDA_TASK_ROOT, the working directory).
    pub task_root: PathBuf,
    /// Lambda's environment variables and the function's own (AWS_LAMBDA_RUNTIME_API is added per process).
    pub env: Vec<(String, String)>,
    /// The function's ARN (Lambda-Runtime-Invoked-Function-Arn).
    pub function_arn: String,
    /// The function's timeout.
    pub timeout: Duration,
    /// Receives every line the function writes to stdout or stderr (its CloudWatch log).
    pub log: LogSink,
    /// Processes started so far (cold starts).
    pub starts: std::sync::atomic::AtomicU64,
}

/// Where the function's output lines go.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function answered.
    Response(Bytes),
    /// The function reported an invocation error.
    Error {
        /// errorType (or the Lambda-Runtime-Function-Error-Type header).
        error_type: String,
        /// errorMessage.
        message: String,
    },
    /// The deadline passed; the process was killed.
    Timeout,
    /// The process exited during the invocation.
    Crash(String),
    /// The runtime could not start or reported an init error.
    InitError(String),
}

impl Outcome {
    /// True for the outcomes Lambda counts as a function error.
    pub fn is_function_error(&self) -> bool {
        !matches!(self, Outcome::Response(_))
    }

    /// A short name for logs and on-failure records.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Response(_) => "response",
            Outcome::Error { .. } => "Unhandled",
            Outcome::Timeout => "Sandbox.Timedout",
            Outcome::Crash(_) => "Runtime.ExitError",
            Outcome::InitError(_) => "Runtime.InitError",
        }
    }
}

/// An invocation waiting for the function's `next` request.
struct Pending {
    id: String,
    body: Bytes,
    deadline_ms: u64,
}

/// State shared by one environment's Runtime API server and its invoker.
#[derive(Default)]
struct Api {
    next: Mutex<Option<Pending>>,
    ready: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<String>>,
    /// When the running process first asked for an invocation: the end of its init.
    first_next: Mutex<Option<std::time::Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks would be a bug in this file; the data stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One execution environment: a Runtime API endpoint and, once started, the bootstrap process.
pub struct Environment {
    api: Arc<Api>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
    child: Option<Child>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    spec: Arc<FunctionSpec>,
    /// Processes started in this environment.
    pub starts: u64,
    /// When the running process was started.
    started_at: Option<std::time::Instant>,
}

impl Environment {
    /// Binds the Runtime API on a free loopback port; the process starts with the first invocation.
    pub async fn new(spec: Arc<FunctionSpec>) -> std::io::Result<Environment> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let api = Arc::new(Api::default());
        let server = tokio::spawn(serve(listener, api.clone(), spec.function_arn.clone()));
        Ok(Environment { api, addr, server, child: None, readers: Vec::new(), spec, starts: 0, started_at: None })
    }

    /// The pid of the running bootstrap, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The running process's init: from its start to its first `next` request (a cold start).
    pub fn init_duration(&self) -> Option<Duration> {
        let first = (*lock(&self.api.first_next))?;
        Some(first.saturating_duration_since(self.started_at?))
    }

    /// Where this environment's Runtime API listens (AWS_LAMBDA_RUNTIME_API).
    pub fn api_address(&self) -> SocketAddr {
        self.addr
    }

    fn start(&mut self) -> Result<(), String> {
        let spec = &self.spec;
        let mut child = Command::new(&spec.bootstrap)
            .current_dir(&spec.task_root)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", self.addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", spec.bootstrap.display()))?;
        for out in [
            child.stdout.take().map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child.stderr.take().map(|e| Box::new(e) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = spec.log.clone();
            self.readers.push(tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log(&line);
                }
            }));
        }
        *lock(&self.api.init_error) = None;
        *lock(&self.api.first_next) = None;
        self.started_at = Some(std::time::Instant::now());
        self.child = Some(child);
        self.starts += 1;
        self.spec.starts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Kills the process (if any), waits for it, and for the last of its log lines.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
        }
    }

    /// Runs one invocation: hands `body` to the function's `next` request and waits for its answer,
    /// its exit, or the deadline. After a timeout, crash or init error the process is gone; the next
    /// invocation starts a new one (a cold start, as in Lambda).
    pub async fn invoke(&mut self, body: Bytes) -> Outcome {
        if self.child.is_none()
            && let Err(e) = self.start()
        {
            return Outcome::InitError(e);
        }
        let id = request_id();
        let deadline = tokio::time::Instant::now() + self.spec.timeout;
        let deadline_ms = SystemTime::now()
            .checked_add(self.spec.timeout)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        let (tx, rx) = oneshot::channel();
        lock(&self.api.waiting).insert(id.clone(), tx);
        *lock(&self.api.next) = Some(Pending { id: id.clone(), body, deadline_ms });
        self.api.ready.notify_one();

        let Some(child) = self.child.as_mut() else { return Outcome::InitError("no process".into()) };
        let outcome = tokio::select! {
            biased;
            answer = rx => answer.unwrap_or_else(|_| Outcome::Crash("the runtime API closed".into())),
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                match lock(&self.api.init_error).take() {
                    Some(e) => Outcome::InitError(e),
                    None => Outcome::Crash(format!("the bootstrap exited ({status})")),
                }
            }
            _ = tokio::time::sleep_until(deadline) => Outcome::Timeout,
        };
        if matches!(outcome, Outcome::Timeout | Outcome::Crash(_) | Outcome::InitError(_)) {
            self.stop().await;
            lock(&self.api.waiting).remove(&id);
            *lock(&self.api.next) = None;
        }
        outcome
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A request id in the form Lambda uses: a random (version 4) UUID.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn serve(listener: TcpListener, api: Arc<Api>, function_arn: String) {
    while let Ok((stream, _)) = listener.accept().await {
        let (api, arn) = (api.clone(), function_arn.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (api, arn) = (api.clone(), arn.clone());
                async move { Ok::<_, std::convert::Infallible>(route(req, &api, &arn).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The Runtime API's four calls.
async fn route(req: Request<Incoming>, api: &Api, function_arn: &str) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(API_PREFIX) else {
        return reply(StatusCode::NOT_FOUND, "unknown path");
    };
    if req.method() == hyper::Method::GET && rest == "/invocation/next" {
        lock(&api.first_next).get_or_insert_with(std::time::Instant::now);
        let pending = loop {
            if let Some(p) = lock(&api.next).take() {
                break p;
            }
            api.ready.notified().await;
        };
        let mut r = reply(StatusCode::OK, pending.body);
        let h = r.headers_mut();
        for (k, v) in [
            ("lambda-runtime-aws-request-id", pending.id.clone()),
            ("lambda-runtime-deadline-ms", pending.deadline_ms.to_string()),
            ("lambda-runtime-invoked-function-arn", function_arn.to_string()),
            (
                "lambda-runtime-trace-id",
                format!("Root=1-{:08x}-{}", pending.deadline_ms / 1000, &pending.id.replace('-', "")[..24]),
            ),
            ("content-type", "application/json".to_string()),
        ] {
            if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        return r;
    }
    if req.method() != hyper::Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    let error_type_header =
        req.headers().get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    if rest == "/init/error" {
        *lock(&api.init_error) = Some(error_text(&body, error_type_header.as_deref()));
        return reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#);
    }
    let Some((id, what)) = rest.strip_prefix("/invocation/").and_then(|r| r.split_once('/')) else {
        return reply(StatusCode::NOT_FOUND, "unknown path");
    };
    let Some(tx) = lock(&api.waiting).remove(id) else {
        return reply(
            StatusCode::BAD_REQUEST,
            r#"{"errorType":"InvalidRequestID","errorMessage":"unknown request id"}"#,
        );
    };
    let (status, outcome) = match what {
        "response" if body.len() > MAX_RESPONSE_BYTES => (
            StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::Error {
                error_type: "Function.ResponseSizeTooLarge".into(),
                message: format!("response of {} bytes is over the 6 MB limit", body.len()),
            },
        ),
        "response" => (StatusCode::ACCEPTED, Outcome::Response(body)),
        "error" => {
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let error_type = parsed["errorType"]
                .as_str()
                .map(str::to_string)
                .or(error_type_header)
                .unwrap_or_else(|| "Unhandled".into());
            (
                StatusCode::ACCEPTED,
                Outcome::Error { error_type, message: parsed["errorMessage"].as_str().unwrap_or_default().to_string() },
            )
        }
        _ => return reply(StatusCode::NOT_FOUND, "unknown path"),
    };
    let _ = tx.send(outcome);
    reply(status, r#"{"status":"OK"}"#)
}

fn error_text(body: &[u8], header: Option<&str>) -> String {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let kind = parsed["errorType"].as_str().or(header).unwrap_or("Runtime.InitError");
    match parsed["errorMessage"].as_str() {
        Some(m) => format!("{kind}: {m}"),
        None => kind.to_string(),
    }
}

/// Idle environments, reused the way Lambda reuses warm ones; one per invocation in flight.
pub struct Pool {
    spec: Arc<FunctionSpec>,
    idle: Mutex<Vec<Environment>>,
}

impl Pool {
    /// An empty pool for `spec`.
    pub fn new(spec: Arc<FunctionSpec>) -> Self {
        Pool { spec, idle: Mutex::new(Vec::new()) }
    }

    /// A warm environment if one is idle, else a new one.
    pub async fn take(&self) -> std::io::Result<Environment> {
        let warm = lock(&self.idle).pop();
        match warm {
            Some(e) => Ok(e),
            None => Environment::new(self.spec.clone()).await,
        }
    }

    /// Returns an environment after its invocation.
    pub fn give(&self, env: Environment) {
        lock(&self.idle).push(env);
    }

    /// Processes started so far.
    pub fn cold_starts(&self) -> u64 {
        self.spec.starts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops every idle environment's process.
    pub async fn shutdown(&self) {
        let envs: Vec<Environment> = std::mem::take(&mut *lock(&self.idle));
        for mut e in envs {
            e.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_lambdas() {
        let id = request_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
        assert!(parts[2].starts_with('4'));
        assert_ne!(request_id(), id);
    }

    /// An environment whose "bootstrap" is a shell script; the test plays the runtime client.
    fn environment_with(script: &str, timeout: Duration) -> (tempfile::TempDir, Arc<FunctionSpec>) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let bootstrap = dir.path().join("bootstrap");
        std::fs::write(&bootstrap, format!("#!/bin/sh\n{script}\n")).expect("write");
        std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let spec = Arc::new(FunctionSpec {
            task_root: dir.path().to_path_buf(),
            bootstrap,
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            timeout,
            log: Arc::new(|_: &str| {}),
            starts: std::sync::atomic::AtomicU64::new(0),
        });
        (dir, spec)
    }

    /// One HTTP/1.1 exchange with the Runtime API: (status, headers lower-cased, body).
    async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, HashMap<String, String>, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "{method} {API_PREFIX}{path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(request.as_bytes()).await.expect("send");
        let mut raw = String::new();
        conn.read_to_string(&mut raw).await.expect("read");
        let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).expect("status");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, headers, body.to_string())
    }

    #[tokio::test]
    async fn next_hands_out_the_event_with_lambdas_headers_and_response_ends_it() {
        let (_dir, spec) = environment_with("exec sleep 30", Duration::from_secs(20));
        let mut env = Environment::new(spec).await.expect("environment");
        let addr = env.api_address();
        let client = async {
            let (status, headers, body) = call(addr, "GET", "/invocation/next", "").await;
            assert_eq!((status, body.as_str()), (200, r#"{"Records":[]}"#));
            let id = headers["lambda-runtime-aws-request-id"].clone();
            assert_eq!(
                headers["lambda-runtime-invoked-function-arn"],
                "arn:aws:lambda:us-east-1:123456789012:function:f"
            );
            let deadline: u64 = headers["lambda-runtime-deadline-ms"].parse().expect("deadline");
            let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
            assert!(deadline > now + 18_000 && deadline <= now + 20_000, "deadline = now + timeout");
            assert!(headers["lambda-runtime-trace-id"].starts_with("Root=1-"));
            assert_eq!(call(addr, "POST", "/invocation/nope/response", "{}").await.0, 400, "unknown request id");
            let (status, _, _) = call(addr, "POST", &format!("/invocation/{id}/response"), r#"{"ok":1}"#).await;
            assert_eq!(status, 202);
        };
        let (outcome, ()) = tokio::join!(env.invoke(Bytes::from_static(br#"{"Records":[]}"#)), client);
        assert_eq!(outcome, Outcome::Response(Bytes::from_static(br#"{"ok":1}"#)));
        // The next invocation reuses the same process (a warm start); an invocation error comes back as such.
        let client = async {
            let (_, headers, _) = call(addr, "GET", "/invocation/next", "").await;
            let id = &headers["lambda-runtime-aws-request-id"];
            let error = r#"{"errorType":"Handled","errorMessage":"the table is gone"}"#;
            assert_eq!(call(addr, "POST", &format!("/invocation/{id}/error"), error).await.0, 202);
        };
        let (outcome, ()) = tokio::join!(env.invoke(Bytes::from_static(b"{}")), client);
        assert_eq!(outcome, Outcome::Error { error_type: "Handled".into(), message: "the table is gone".into() });
        assert_eq!(env.starts, 1);
        env.stop().await;
    }

    #[tokio::test]
    async fn the_deadline_kills_the_process_and_the_next_invocation_starts_a_new_one() {
        let (_dir, spec) = environment_with("exec sleep 30", Duration::from_millis(300));
        let mut env = Environment::new(spec.clone()).await.expect("environment");
        let outcome = env.invoke(Bytes::from_static(b"{}")).await;
        assert_eq!(outcome, Outcome::Timeout);
        assert!(env.pid().is_none(), "the process is gone");
        assert_eq!(env.invoke(Bytes::from_static(b"{}")).await, Outcome::Timeout);
        assert_eq!(spec.starts.load(std::sync::atomic::Ordering::Relaxed), 2, "a cold start after the timeout");
    }

    #[tokio::test]
    async fn an_init_error_or_an_exit_is_the_invocations_error() {
        // The "bootstrap" exits only once the test has reported its init error: no race with a timer.
        let (dir, spec) = environment_with("while [ ! -e go ]; do sleep 0.01; done", Duration::from_secs(20));
        let mut env = Environment::new(spec).await.expect("environment");
        let addr = env.api_address();
        let go = dir.path().join("go");
        let client = async {
            let error = r#"{"errorType":"Runtime.ConfigError","errorMessage":"TABLE_NAME is not set"}"#;
            assert_eq!(call(addr, "POST", "/init/error", error).await.0, 202);
            std::fs::write(&go, b"").expect("let the bootstrap exit");
        };
        let (outcome, ()) = tokio::join!(env.invoke(Bytes::from_static(b"{}")), client);
        assert_eq!(outcome, Outcome::InitError("Runtime.ConfigError: TABLE_NAME is not set".into()));
        // Exiting without a word is a crash.
        let outcome = env.invoke(Bytes::from_static(b"{}")).await;
        assert!(matches!(&outcome, Outcome::Crash(why) if why.contains("exited")), "{outcome:?}");
    }

    #[test]
    fn init_errors_read_type_and_message() {
        let body = br#"{"errorType":"Runtime.Config","errorMessage":"TABLE_NAME is not set"}"#;
        assert_eq!(error_text(body, None), "Runtime.Config: TABLE_NAME is not set");
        assert_eq!(error_text(b"", Some("Runtime.Unknown")), "Runtime.Unknown");
    }
}
