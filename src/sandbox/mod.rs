//! Lambda's execution environment on this machine, for every command that runs the function here
//! (`local`, `redrive --local`): the function's `bootstrap` runs as a child process with Lambda's
//! environment, the role's credentials and the function's limits (`function`, `limits`), and
//! talks to a Runtime API served on loopback (`api`). Around it the rules Lambda applies: init has its own
//! 10 s (past it, init is tried again within the first invocation's timeout); the deadline kills
//! the process; a crash, an init error or running out of memory ends the environment, and the next
//! invocation starts a new one (a cold start); an environment is replaced before its credentials
//! expire, as Lambda recycles its sandboxes.

pub mod api;
pub mod emulation;
pub mod function;
pub mod limits;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::error::Error;
use api::{Api, Event, Pending};
use limits::Limits;

pub use api::{API_PREFIX, MAX_RESPONSE_BYTES};

/// Lambda gives the init phase (runtime start to its first `next`) up to this long.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the process's memory is looked at while it runs.
const MEMORY_CHECK: Duration = Duration::from_millis(50);
/// An environment whose credentials expire sooner than this is replaced before its next invocation.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// Where the function's output lines go.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How the function runs: its code, environment, identity and limits.
pub struct FunctionSpec {
    /// The unpacked `bootstrap`.
    pub bootstrap: PathBuf,
    /// Its directory (LAMBDA_TASK_ROOT, the working directory).
    pub task_root: PathBuf,
    /// Lambda's environment variables and the function's own (the Runtime API's address and the
    /// role's credentials are added per process).
    pub env: Vec<(String, String)>,
    /// The execution role's credentials, fetched for each process (`None`: `env` carries them).
    pub credentials: Option<SharedCredentialsProvider>,
    /// MemorySize in MB: the process is held to it (`None`: no limit, for benchmarks).
    pub memory_mb: Option<u64>,
    /// The function's ARN (Lambda-Runtime-Invoked-Function-Arn).
    pub function_arn: String,
    /// The function's timeout.
    pub timeout: Duration,
    /// How long init may take before it is tried again within the invocation (`INIT_TIMEOUT`).
    pub init_timeout: Duration,
    /// Receives every line the function writes to stdout or stderr (its CloudWatch log).
    pub log: LogSink,
    /// Processes started so far (cold starts).
    pub starts: AtomicU64,
}

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function answered.
    Response(Bytes),
    /// The function reported an invocation error, or broke a limit Lambda enforces (memory,
    /// response size).
    Error {
        /// The error type (from Lambda-Runtime-Function-Error-Type, or Lambda's own).
        error_type: String,
        /// errorMessage.
        message: String,
    },
    /// The deadline passed; the process was killed.
    Timeout,
    /// The process exited during the invocation (or its init).
    Crash(String),
    /// The runtime could not start or reported an init error.
    InitError(String),
}

impl Outcome {
    /// True for the outcomes Lambda counts as a function error.
    pub fn is_function_error(&self) -> bool {
        !matches!(self, Outcome::Response(_))
    }

    /// The error type, as Lambda's logs name it.
    pub fn kind(&self) -> &str {
        match self {
            Outcome::Response(_) => "response",
            Outcome::Error { error_type, .. } => error_type,
            Outcome::Timeout => "Sandbox.Timedout",
            Outcome::Crash(_) => "Runtime.ExitError",
            Outcome::InitError(_) => "Runtime.InitError",
        }
    }

    /// True when the environment is gone after this outcome: the next invocation starts a new one.
    fn ends_environment(&self) -> bool {
        match self {
            Outcome::Response(_) => false,
            Outcome::Error { error_type, .. } => error_type == "Runtime.OutOfMemory",
            Outcome::Timeout | Outcome::Crash(_) | Outcome::InitError(_) => true,
        }
    }
}

/// How a cold start went.
enum Init {
    /// The runtime asked for its first invocation in time.
    Done,
    /// It did not within `INIT_TIMEOUT`: it was started again, and this init counts against the
    /// invocation's timeout, as Lambda does.
    InInvocation,
    /// It failed: the invocation's outcome.
    Failed(Outcome),
}

/// One execution environment: a Runtime API endpoint and, once started, the bootstrap process.
pub struct Environment {
    api: Arc<Api>,
    events: mpsc::UnboundedReceiver<Event>,
    addr: std::net::SocketAddr,
    server: tokio::task::JoinHandle<()>,
    child: Option<Child>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    spec: Arc<FunctionSpec>,
    limits: Option<Limits>,
    /// Processes started in this environment.
    pub starts: u64,
    started_at: Option<Instant>,
    init_done_at: Option<Instant>,
    /// True once a REPORT line gave this process's Init Duration (only the first one does).
    init_reported: bool,
    credentials_expire: Option<SystemTime>,
}

/// Lambda's execution environment needs Linux here: its limits are cgroups, its memory watch
/// /proc, and the bootstrap a Linux executable. Elsewhere (a Mac) the commands that run the
/// function here refuse with one line and what to do; everything that talks to AWS works.
pub fn here() -> Result<(), Error> {
    if cfg!(target_os = "linux") {
        return Ok(());
    }
    Err(Error::usage(
        "the function runs here in Lambda's execution environment, which needs Linux (cgroups, /proc, a Linux bootstrap)",
        "run stream local (or redrive --local) on Linux: a VM, a Linux CI runner, or WSL; deploy, produce, tail, logs, status, scan-table and plan work from here",
    ))
}

/// Environments made so far by this process, for unique cgroup names.
static ENVIRONMENTS: AtomicU64 = AtomicU64::new(0);

impl Environment {
    /// Binds the Runtime API on a free loopback port; the process starts with the first invocation.
    pub async fn new(spec: Arc<FunctionSpec>) -> std::io::Result<Environment> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (api, events) = Api::new(spec.function_arn.clone());
        let server = tokio::spawn(api.clone().serve(listener));
        let n = ENVIRONMENTS.fetch_add(1, Ordering::Relaxed);
        let limits = spec.memory_mb.map(|mb| Limits::new(mb, &format!("stream-local-{}-{n}", std::process::id())));
        Ok(Environment {
            api,
            events,
            addr,
            server,
            child: None,
            readers: Vec::new(),
            spec,
            limits,
            starts: 0,
            started_at: None,
            init_done_at: None,
            init_reported: false,
            credentials_expire: None,
        })
    }

    /// The pid of the running bootstrap, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The running process's init: from its start to its first `next` request (a cold start).
    pub fn init_duration(&self) -> Option<Duration> {
        Some(self.init_done_at?.saturating_duration_since(self.started_at?))
    }

    /// Where this environment's Runtime API listens (AWS_LAMBDA_RUNTIME_API).
    pub fn api_address(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// What limits hold here, for the summary.
    pub fn limits(&self) -> Option<String> {
        self.limits.as_ref().map(Limits::describe)
    }

    /// Starts the bootstrap with the environment, fresh credentials, and its limits.
    async fn start(&mut self) -> Result<(), String> {
        let spec = self.spec.clone();
        // A bootstrap of the other architecture runs under user-mode emulation.
        let runner = emulation::Runner::for_bootstrap(&spec.bootstrap).map_err(|e| e.to_string())?;
        let mut command = runner.command(&spec.bootstrap);
        command
            .current_dir(&spec.task_root)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", self.addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        self.credentials_expire = None;
        if let Some(provider) = &spec.credentials {
            let creds = provider
                .provide_credentials()
                .await
                .map_err(|e| format!("could not get the execution role's credentials: {e}"))?;
            command
                .env("AWS_ACCESS_KEY_ID", creds.access_key_id())
                .env("AWS_ACCESS_KEY", creds.access_key_id())
                .env("AWS_SECRET_ACCESS_KEY", creds.secret_access_key())
                .env("AWS_SESSION_TOKEN", creds.session_token().unwrap_or_default());
            self.credentials_expire = creds.expiry();
        }
        // Events of a process that is gone mean nothing to the next one.
        while self.events.try_recv().is_ok() {}
        self.api.reset();
        let mut child = command.spawn().map_err(|e| format!("could not start {}: {e}", spec.bootstrap.display()))?;
        if let (Some(limits), Some(pid)) = (&self.limits, child.id()) {
            limits.apply(pid);
        }
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
        self.started_at = Some(Instant::now());
        self.init_done_at = None;
        self.init_reported = false;
        self.child = Some(child);
        self.starts += 1;
        spec.starts.fetch_add(1, Ordering::Relaxed);
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

    /// True when the process holds credentials that expire within `CREDENTIALS_MARGIN`.
    fn credentials_expire_soon(&self) -> bool {
        self.credentials_expire.is_some_and(|t| t < SystemTime::now() + CREDENTIALS_MARGIN)
    }

    /// True when the process is over the function's memory.
    fn out_of_memory(&self) -> bool {
        self.limits.as_ref().is_some_and(|l| l.exceeded(self.pid()))
    }

    /// Runs one invocation: hands `body` to the function's `next` request and waits for its answer,
    /// its exit, its memory, or the deadline (the function's timeout from the hand-out).
    pub async fn invoke(&mut self, body: Bytes) -> Outcome {
        if self.child.is_some() && self.credentials_expire_soon() {
            self.stop().await;
        }
        // The timeout runs from the invocation, whether or not the runtime is back in `next` yet;
        // an init retried within the invocation counts against it.
        if self.child.is_none()
            && let Init::Failed(outcome) = self.cold_start().await
        {
            return outcome;
        }
        let started = (tokio::time::Instant::now(), SystemTime::now());
        let id = request_id();
        let deadline = started.1 + self.spec.timeout;
        (self.spec.log)(&format!("START RequestId: {id} Version: $LATEST"));
        self.api.offer(Pending { id: id.clone(), body, deadline });
        let outcome = self.await_answer(&id, started.0 + self.spec.timeout).await;
        self.log_end(&id, &outcome, started.0.elapsed());
        if outcome.ends_environment() {
            self.stop().await;
        }
        outcome
    }

    /// The platform lines Lambda writes after an invocation: a timeout's notice, END, and REPORT
    /// (duration, billed duration, memory size, max memory used, a cold start's init duration, and
    /// how a failed invocation ended).
    fn log_end(&mut self, id: &str, outcome: &Outcome, took: Duration) {
        let log = &self.spec.log;
        if *outcome == Outcome::Timeout {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
            let now = crate::tweet::iso_millis(now);
            log(&format!("{now} {id} Task timed out after {:.2} seconds", self.spec.timeout.as_secs_f64()));
        }
        log(&format!("END RequestId: {id}"));
        let ms = took.as_secs_f64() * 1000.0;
        let mut report = format!("REPORT RequestId: {id}\tDuration: {ms:.2} ms\tBilled Duration: {:.0} ms", ms.ceil());
        if let Some(mb) = self.spec.memory_mb {
            report.push_str(&format!("\tMemory Size: {mb} MB"));
        }
        if let Some(peak) = self.pid().and_then(limits::peak_resident_bytes) {
            report.push_str(&format!("\tMax Memory Used: {} MB", peak.div_ceil(1024 * 1024)));
        }
        if !self.init_reported
            && let Some(init) = self.init_duration()
        {
            self.init_reported = true;
            report.push_str(&format!("\tInit Duration: {:.2} ms", init.as_secs_f64() * 1000.0));
        }
        match outcome {
            Outcome::Response(_) => {}
            Outcome::Timeout => report.push_str("\tStatus: timeout"),
            other => report.push_str(&format!("\tStatus: error\tError Type: {}", other.kind())),
        }
        log(&report);
    }

    /// Starts the process and waits for its init: the first `next`, an init error, its exit, or
    /// `INIT_TIMEOUT`, after which it is started again with its init inside the invocation.
    async fn cold_start(&mut self) -> Init {
        if let Err(e) = self.start().await {
            return Init::Failed(Outcome::InitError(e));
        }
        let until = tokio::time::Instant::now() + self.spec.init_timeout;
        let mut memory = tokio::time::interval(MEMORY_CHECK);
        loop {
            let Some(child) = self.child.as_mut() else { return Init::Failed(Outcome::InitError("no process".into())) };
            // Events first: a runtime that reports its init error exits once the API has answered,
            // by which time the error is queued here; unbiased, its exit could win and be reported
            // as a crash instead of the reason it gave.
            tokio::select! {
                biased;
                event = self.events.recv() => match event {
                    Some(Event::InitDone) => {
                        self.init_done_at = Some(Instant::now());
                        return Init::Done;
                    }
                    Some(Event::InitError(e)) => {
                        self.stop().await;
                        return Init::Failed(Outcome::InitError(e));
                    }
                    _ => {}
                },
                status = child.wait() => {
                    let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    let outcome = self.exited(&status, "during init");
                    self.stop().await;
                    return Init::Failed(outcome);
                }
                _ = tokio::time::sleep_until(until) => {
                    let limit = self.spec.init_timeout;
                    tracing::warn!("the function's init did not finish within {limit:?}: started again within the invocation");
                    self.stop().await;
                    return match self.start().await {
                        Ok(()) => Init::InInvocation,
                        Err(e) => Init::Failed(Outcome::InitError(e)),
                    };
                }
                _ = memory.tick() => {
                    if self.out_of_memory() {
                        self.stop().await;
                        return Init::Failed(out_of_memory("init"));
                    }
                }
            }
        }
    }

    /// Waits for the invocation `id` to end, or its `deadline`.
    async fn await_answer(&mut self, id: &str, deadline: tokio::time::Instant) -> Outcome {
        let mut memory = tokio::time::interval(MEMORY_CHECK);
        loop {
            let Some(child) = self.child.as_mut() else { return Outcome::InitError("no process".into()) };
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(Event::Answered { id: answered, outcome }) if answered == id => return outcome,
                    // An init retried within the invocation can still fail.
                    Some(Event::InitError(e)) => return Outcome::InitError(e),
                    Some(Event::InitDone) => self.init_done_at = Some(Instant::now()),
                    None => return Outcome::Crash("the runtime API closed".into()),
                    Some(_) => {}
                },
                status = child.wait() => {
                    let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    return self.exited(&status, "during the invocation");
                }
                () = tokio::time::sleep_until(deadline) => return Outcome::Timeout,
                _ = memory.tick() => {
                    if self.out_of_memory() {
                        return out_of_memory(id);
                    }
                }
            }
        }
    }

    /// The outcome of a process that exited on its own: out of memory (a cgroup's OOM kill), or a crash.
    fn exited(&self, status: &str, when: &str) -> Outcome {
        if self.limits.as_ref().is_some_and(|l| l.exceeded(None)) {
            return out_of_memory(when);
        }
        Outcome::Crash(format!("the bootstrap exited {when} ({status})"))
    }
}

/// The error Lambda reports for a function that ran out of its memory.
fn out_of_memory(request: &str) -> Outcome {
    Outcome::Error {
        error_type: "Runtime.OutOfMemory".into(),
        message: format!("RequestId: {request} Error: Runtime exited with error: signal: killed"),
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Where `stream local` keeps a stack's checkpoints, unpacked code and function log: `explicit`
/// (--state-dir, STREAM_STATE_DIR), else $XDG_STATE_HOME/stream, else ~/.local/state/stream; then
/// local/REGION/STACK.
pub fn state_dir(
    explicit: Option<&std::path::Path>,
    region: &str,
    stack: &str,
) -> Result<PathBuf, crate::error::Error> {
    use crate::error::Error;
    let base = match explicit {
        Some(d) => d.to_path_buf(),
        None => match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x).join("stream"),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".local/state/stream"))
                .ok_or_else(|| Error::config("HOME is not set", "set HOME, or pass --state-dir DIR"))?,
        },
    };
    Ok(base.join("local").join(region).join(stack))
}

/// A request id in the form Lambda uses: a random (version 4) UUID.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock would be a bug in this file; the data stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Idle environments, reused the way Lambda reuses warm ones; one per invocation in flight.
pub struct Pool {
    spec: Arc<FunctionSpec>,
    idle: Mutex<Vec<Environment>>,
    limits: Mutex<Option<String>>,
}

impl Pool {
    /// An empty pool for `spec`.
    pub fn new(spec: Arc<FunctionSpec>) -> Self {
        Pool { spec, idle: Mutex::new(Vec::new()), limits: Mutex::new(None) }
    }

    /// A warm environment if one is idle, else a new one.
    pub async fn take(&self) -> std::io::Result<Environment> {
        let warm = lock(&self.idle).pop();
        match warm {
            Some(e) => Ok(e),
            None => {
                let env = Environment::new(self.spec.clone()).await?;
                lock(&self.limits).get_or_insert_with(|| env.limits().unwrap_or_default());
                Ok(env)
            }
        }
    }

    /// Returns an environment after its invocation.
    pub fn give(&self, env: Environment) {
        lock(&self.idle).push(env);
    }

    /// Processes started so far.
    pub fn cold_starts(&self) -> u64 {
        self.spec.starts.load(Ordering::Relaxed)
    }

    /// What limits held for the environments, once one was made.
    pub fn limits(&self) -> Option<String> {
        lock(&self.limits).clone()
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
    use std::collections::HashMap;

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
        spec_with(script, timeout, |_| {})
    }

    fn spec_with(
        script: &str,
        timeout: Duration,
        change: impl FnOnce(&mut FunctionSpec),
    ) -> (tempfile::TempDir, Arc<FunctionSpec>) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let bootstrap = dir.path().join("bootstrap");
        std::fs::write(&bootstrap, format!("#!/bin/sh\n{script}\n")).expect("write");
        std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut spec = FunctionSpec {
            task_root: dir.path().to_path_buf(),
            bootstrap,
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            credentials: None,
            memory_mb: None,
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            timeout,
            init_timeout: INIT_TIMEOUT,
            log: Arc::new(|_: &str| {}),
            starts: AtomicU64::new(0),
        };
        change(&mut spec);
        (dir, Arc::new(spec))
    }

    /// One HTTP/1.1 exchange with the Runtime API: (status, headers lower-cased, body).
    async fn call(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        body: &str,
    ) -> (u16, HashMap<String, String>, String) {
        call_with(addr, method, path, &[], body.as_bytes()).await
    }

    async fn call_with(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, HashMap<String, String>, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        let head = format!(
            "{method} {API_PREFIX}{path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).await.expect("send");
        conn.write_all(body).await.expect("send body");
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

    fn now_ms() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
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
            let now = now_ms();
            assert!(deadline > now + 19_000 && deadline <= now + 20_000, "deadline = invocation + timeout");
            let trace = &headers["lambda-runtime-trace-id"];
            assert!(
                trace.starts_with("Root=1-") && trace.contains(";Parent=") && trace.ends_with(";Sampled=0"),
                "{trace}"
            );
            let (status, _, body) = call(addr, "POST", "/invocation/nope/response", "{}").await;
            assert_eq!(
                (status, body.as_str()),
                (400, r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#)
            );
            let (status, _, body) = call(addr, "POST", &format!("/invocation/{id}/response"), r#"{"ok":1}"#).await;
            assert_eq!((status, body.as_str()), (202, r#"{"status":"OK"}"#));
            // A second answer to the same invocation is a refused state transition, as in Lambda.
            let (status, _, body) = call(addr, "POST", &format!("/invocation/{id}/response"), "{}").await;
            assert_eq!(status, 403);
            assert!(
                body.contains("InvalidStateTransition") && body.contains("from RuntimeResponseSentState"),
                "{body}"
            );
        };
        let (outcome, ()) = tokio::join!(env.invoke(Bytes::from_static(br#"{"Records":[]}"#)), client);
        assert_eq!(outcome, Outcome::Response(Bytes::from_static(br#"{"ok":1}"#)));
        // The next invocation reuses the same process (a warm start). The error type comes from the
        // Lambda-Runtime-Function-Error-Type header, not from the body.
        for (header, expected) in [
            (Some("Function.TableGone"), "Function.TableGone"),
            (Some("unhandled"), "Runtime.Unknown"),
            (None, "Runtime.Unknown"),
        ] {
            let client = async {
                let (_, headers, _) = call(addr, "GET", "/invocation/next", "").await;
                let id = &headers["lambda-runtime-aws-request-id"];
                let error = br#"{"errorType":"Handled","errorMessage":"the table is gone"}"#;
                let h: Vec<(&str, &str)> = header.iter().map(|h| ("Lambda-Runtime-Function-Error-Type", *h)).collect();
                assert_eq!(call_with(addr, "POST", &format!("/invocation/{id}/error"), &h, error).await.0, 202);
            };
            let (outcome, ()) = tokio::join!(env.invoke(Bytes::from_static(b"{}")), client);
            assert_eq!(outcome, Outcome::Error { error_type: expected.into(), message: "the table is gone".into() });
        }
        assert_eq!(env.starts, 1);
        env.stop().await;
    }

    /// After `next`, an init error is a refused state transition; a response over 6,291,556 bytes
    /// is refused with 413 and fails the invocation.
    #[tokio::test]
    async fn the_runtime_api_refuses_what_lambda_refuses() {
        let (_dir, spec) = environment_with("exec sleep 30", Duration::from_secs(20));
        let mut env = Environment::new(spec).await.expect("environment");
        let addr = env.api_address();
        let client = async {
            let (_, headers, _) = call(addr, "GET", "/invocation/next", "").await;
            let id = headers["lambda-runtime-aws-request-id"].clone();
            let (status, _, body) = call(addr, "POST", "/init/error", r#"{"errorMessage":"late"}"#).await;
            assert_eq!(status, 403);
            assert!(body.contains("State transition from Running to InitError failed"), "{body}");
            let big = vec![b'x'; MAX_RESPONSE_BYTES + 1];
            let (status, _, body) = call_with(addr, "POST", &format!("/invocation/{id}/response"), &[], &big).await;
            assert_eq!(status, 413);
            assert_eq!(
                body,
                r#"{"errorMessage":"Exceeded maximum allowed payload size (6291556 bytes).","errorType":"RequestEntityTooLarge"}"#
            );
        };
        let (outcome, ()) = tokio::join!(env.invoke(Bytes::from_static(b"{}")), client);
        assert!(
            matches!(&outcome, Outcome::Error { error_type, .. } if error_type == "Function.ResponseSizeTooLarge"),
            "{outcome:?}"
        );
        env.stop().await;
    }

    #[tokio::test]
    async fn the_deadline_kills_the_process_and_the_next_invocation_starts_a_new_one() {
        let (_dir, spec) = environment_with("exec sleep 30", Duration::from_millis(300));
        let mut env = Environment::new(spec.clone()).await.expect("environment");
        let addr = env.api_address();
        for _ in 0..2 {
            // The runtime takes the invocation and never answers.
            let client = async { call(addr, "GET", "/invocation/next", "").await.0 };
            let (outcome, status) = tokio::join!(env.invoke(Bytes::from_static(b"{}")), client);
            assert_eq!((outcome, status), (Outcome::Timeout, 200));
            assert!(env.pid().is_none(), "the process is gone");
        }
        assert_eq!(spec.starts.load(Ordering::Relaxed), 2, "a cold start after the timeout");
    }

    /// Init has its own limit: a runtime that does not ask for an invocation in time is started
    /// again, and that second init counts against the invocation's timeout.
    #[tokio::test]
    async fn a_slow_init_is_tried_again_within_the_invocation() {
        let (_dir, spec) =
            spec_with("exec sleep 30", Duration::from_millis(300), |s| s.init_timeout = Duration::from_millis(200));
        let mut env = Environment::new(spec.clone()).await.expect("environment");
        let started = Instant::now();
        assert_eq!(env.invoke(Bytes::from_static(b"{}")).await, Outcome::Timeout);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(5),
            "init limit, then the timeout: {took:?}"
        );
        assert_eq!(spec.starts.load(Ordering::Relaxed), 2, "started again after the init limit");
    }

    #[tokio::test]
    async fn an_init_error_ends_the_invocation_at_once_and_an_exit_is_a_crash() {
        // The "bootstrap" exits only once the test lets it: the init error alone must end the invocation.
        let (dir, spec) = environment_with("while [ ! -e go ]; do sleep 0.01; done", Duration::from_secs(20));
        let mut env = Environment::new(spec).await.expect("environment");
        let addr = env.api_address();
        let client = async {
            let error = br#"{"errorType":"Runtime.ConfigError","errorMessage":"TABLE_NAME is not set"}"#;
            let h = [("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")];
            call_with(addr, "POST", "/init/error", &h, error).await.0
        };
        let (outcome, status) = tokio::join!(env.invoke(Bytes::from_static(b"{}")), client);
        assert_eq!(status, 202);
        assert_eq!(outcome, Outcome::InitError("Runtime.ConfigError: TABLE_NAME is not set".into()));
        assert!(env.pid().is_none(), "the environment ended with the init error");
        // Exiting without a word is a crash.
        std::fs::write(dir.path().join("go"), b"").expect("let the bootstrap exit");
        let outcome = env.invoke(Bytes::from_static(b"{}")).await;
        assert!(matches!(&outcome, Outcome::Crash(why) if why.contains("exited")), "{outcome:?}");
    }

    /// The process gets exactly its environment, the Runtime API's address and the role's
    /// credentials (session token included): nothing of the caller's shell.
    #[tokio::test]
    async fn the_process_gets_the_role_credentials_and_nothing_else() {
        use aws_credential_types::Credentials;
        let creds = Credentials::new("ASIAROLE", "role-secret", Some("role-token".into()), None, "test");
        let (dir, spec) = spec_with("env > env.txt", Duration::from_secs(5), |s| {
            s.credentials = Some(SharedCredentialsProvider::new(creds));
            s.env.push(("TABLE_NAME".into(), "t".into()));
        });
        let mut env = Environment::new(spec).await.expect("environment");
        let outcome = env.invoke(Bytes::from_static(b"{}")).await;
        assert!(matches!(outcome, Outcome::Crash(_)), "the script exits: {outcome:?}");
        let text = std::fs::read_to_string(dir.path().join("env.txt")).expect("env dump");
        let mut names: Vec<&str> = text.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
        names.sort();
        // `PWD` and `SHLVL` are the shell's own.
        names.retain(|n| !matches!(*n, "PWD" | "SHLVL" | "_" | "OLDPWD"));
        assert_eq!(
            names,
            [
                "AWS_ACCESS_KEY",
                "AWS_ACCESS_KEY_ID",
                "AWS_LAMBDA_RUNTIME_API",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "PATH",
                "TABLE_NAME"
            ]
        );
        assert!(text.contains("AWS_SESSION_TOKEN=role-token") && text.contains("AWS_ACCESS_KEY_ID=ASIAROLE"));
    }

    /// A function that grows past its MemorySize is stopped and reported as Lambda reports it.
    /// Under a memory cgroup the kernel evicts the cgroup's file pages (the interpreter's own) over
    /// and over before it kills: that took 2 to 27 s on this machine, so the invocation may run for
    /// 120 s; the test ends when the kill comes.
    #[tokio::test]
    async fn running_out_of_memory_is_reported_as_lambda_does() {
        let grow = "exec python3 -c 'import time; x = bytearray(160 * 1024 * 1024); time.sleep(300)'";
        let (_dir, spec) = spec_with(grow, Duration::from_secs(120), |s| s.memory_mb = Some(64));
        let mut env = Environment::new(spec).await.expect("environment");
        let outcome = env.invoke(Bytes::from_static(b"{}")).await;
        assert!(
            matches!(&outcome, Outcome::Error { error_type, .. } if error_type == "Runtime.OutOfMemory"),
            "{outcome:?}"
        );
        assert!(env.pid().is_none(), "the process is gone");
        assert!(env.limits().is_some_and(|l| l.starts_with("memory 64 MB")));
    }
}
