//! `stream local`: the deployed function run as Lambda would run it, without AWS or Docker. The
//! function's code is the zip `deploy` uploaded (the stack's CodeBucket/CodeKey), unpacked and
//! started as a child process with Lambda's environment and a Runtime API on loopback
//! (`runtime`); the stack's event source mapping is applied with its own settings (`mapping`);
//! checkpoints persist between runs (`checkpoint`). The rest of AWS (stream, tables, on-failure
//! queue) is whatever the endpoint is: AWS itself, or the local emulator.

pub mod checkpoint;
pub mod mapping;
pub mod runtime;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::{EncryptionType, Record, Shard};
use serde::Serialize;

use crate::aws::Clients;
use crate::cli::LocalArgs;
use crate::error::Error;
use crate::process::event::KinesisData;
use crate::shutdown::Shutdown;
use crate::stack::{self, Outputs};
use crate::template::param;
use checkpoint::CheckpointFile;
use mapping::{Settings, Verdict};
use runtime::{FunctionSpec, Outcome, Pool};

/// The summary of `stream local`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LocalOutput {
    /// Shards read.
    pub shards: usize,
    /// Records done: processed, or given up after the mapping's limits.
    pub records: u64,
    /// Invocations of the function.
    pub invocations: u64,
    /// Records delivered to the function, retries included.
    pub deliveries: u64,
    /// Items the function wrote (from its metrics lines).
    pub written: u64,
    /// Records the function dropped as duplicates.
    pub duplicates: u64,
    /// Poison records the function quarantined.
    pub quarantined: u64,
    /// Batches retried (partial failure or function error).
    pub retries: u64,
    /// Batches split in two after a function error.
    pub bisections: u64,
    /// Invocations that ended in a function error (error, timeout, crash, init error).
    pub function_errors: u64,
    /// Invocations stopped at the function's timeout.
    pub timeouts: u64,
    /// Bootstrap processes that exited during an invocation.
    pub crashes: u64,
    /// Bootstrap processes started (cold starts).
    pub cold_starts: u64,
    /// Most invocations in flight at once (shards × ParallelizationFactor at most).
    pub peak_concurrency: u64,
    /// Records given up (retries exhausted or too old).
    pub skipped: u64,
    /// On-failure records sent.
    pub on_failure_records: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// The function's log (its stdout and stderr).
    pub log: String,
    /// The checkpoint file.
    pub checkpoints: String,
    /// True when Ctrl-C stopped the run.
    pub interrupted: bool,
}

impl LocalOutput {
    /// The error that decides the exit code, if any.
    pub fn problem(&self) -> Option<Error> {
        if self.interrupted {
            Some(Error::Interrupted)
        } else if self.skipped > 0 {
            Some(Error::Partial {
                what: format!(
                    "{} records were given up after the mapping's limits ({} on-failure records sent)",
                    self.skipped, self.on_failure_records
                ),
                hint: format!("see why in the function's log ({}) and the stack's FailedBatches queue", self.log),
            })
        } else {
            None
        }
    }
}

impl fmt::Display for LocalOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "processed {} records from {} shard(s) in {} invocation(s) in {:.2} s: {} items written, \
             {} duplicates dropped, {} quarantined, {} batch retries, {} bisections, {} function errors \
             ({} timeouts, {} crashes), {} cold starts, {} given up",
            self.records,
            self.shards,
            self.invocations,
            self.seconds,
            self.written,
            self.duplicates,
            self.quarantined,
            self.retries,
            self.bisections,
            self.function_errors,
            self.timeouts,
            self.crashes,
            self.cold_starts,
            self.skipped
        )
    }
}

/// Counters shared by the shard tasks, the function's log reader and the live line.
#[derive(Default)]
pub struct Stats {
    records: AtomicU64,
    invocations: AtomicU64,
    deliveries: AtomicU64,
    written: AtomicU64,
    duplicates: AtomicU64,
    quarantined: AtomicU64,
    retries: AtomicU64,
    bisections: AtomicU64,
    function_errors: AtomicU64,
    timeouts: AtomicU64,
    crashes: AtomicU64,
    skipped: AtomicU64,
    on_failure: AtomicU64,
    inflight: AtomicU64,
    peak: AtomicU64,
    lag: Mutex<BTreeMap<String, i64>>,
    errors: Mutex<Vec<String>>,
}

impl Stats {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Milliseconds the shard is behind the stream's tip.
    pub fn set_lag(&self, shard: &str, ms: i64) {
        self.lag.lock().unwrap_or_else(|p| p.into_inner()).insert(shard.to_string(), ms);
    }

    /// A problem worth a line (once per distinct text).
    pub fn error(&self, what: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if !errors.contains(&what) {
            crate::progress::status(format!("stream local: {what}"));
            errors.push(what);
        }
    }

    /// An invocation finished with `outcome`, read as `verdict`.
    pub fn outcome(&self, outcome: &Outcome, verdict: &Verdict) {
        Self::add(&self.invocations, 1);
        match outcome {
            Outcome::Response(_) => {}
            Outcome::Timeout => Self::add(&self.timeouts, 1),
            Outcome::Crash(why) => {
                Self::add(&self.crashes, 1);
                tracing::warn!("function crashed: {why}");
            }
            Outcome::InitError(why) => self.error(format!("the function failed to start: {why}")),
            Outcome::Error { error_type, message } => tracing::warn!("function error {error_type}: {message}"),
        }
        if outcome.is_function_error() {
            Self::add(&self.function_errors, 1);
        }
        if *verdict == Verdict::Bisect {
            Self::add(&self.bisections, 1);
        }
    }

    /// A batch goes round again.
    pub fn retry(&self) {
        Self::add(&self.retries, 1);
    }

    /// Records handed to the function; one more invocation in flight.
    pub fn delivered(&self, n: usize) {
        Self::add(&self.deliveries, n as u64);
        let now = self.inflight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// An invocation is over.
    pub fn returned(&self) {
        self.inflight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Records done.
    pub fn records_done(&self, n: usize) {
        Self::add(&self.records, n as u64);
    }

    /// Records given up; one on-failure record.
    pub fn skipped(&self, n: usize) {
        Self::add(&self.skipped, n as u64);
        Self::add(&self.on_failure, 1);
    }

    /// Reads the counts out of the function's metrics line (CloudWatch embedded metric format).
    fn metrics_line(&self, line: &str) {
        if !line.contains("\"_aws\"") {
            return;
        }
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else { return };
        for (name, counter) in
            [("Written", &self.written), ("DuplicatesDropped", &self.duplicates), ("Quarantined", &self.quarantined)]
        {
            Self::add(counter, doc[name].as_f64().unwrap_or(0.0) as u64);
        }
    }
}

/// Everything a shard task needs.
pub struct Ctx {
    /// Service clients.
    pub clients: Clients,
    /// The stack's outputs.
    pub outputs: Outputs,
    /// The mapping's settings.
    pub settings: Settings,
    /// The function's ARN.
    pub function_arn: String,
    /// The function's execution role (invokeIdentityArn).
    pub role_arn: String,
    /// The on-failure queue's URL.
    pub on_failure_url: Option<String>,
    /// Warm environments.
    pub pool: Pool,
    /// Saved positions.
    pub checkpoints: CheckpointFile,
    /// Counters (shared with the function's log reader).
    pub stats: Arc<Stats>,
    /// Ctrl-C.
    pub shutdown: Shutdown,
}

/// Lists every shard of the stream. ListShards has no paginator: this is its one `next_token` loop.
pub async fn list_shards(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<Vec<Shard>, Error> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // With a token, the stream name must be left out.
        let req = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let out = req.send().await.map_err(|e| Error::aws("ListShards", stream, e))?;
        shards.extend(out.shards.unwrap_or_default());
        token = out.next_token;
        if token.is_none() {
            return Ok(shards);
        }
    }
}

/// A Kinesis record as the event source mapping puts it into the event.
pub fn event_record(record: &Record, shard_id: &str, outputs: &Outputs, role_arn: &str) -> crate::process::Record {
    use base64::Engine;
    let arrival = record.approximate_arrival_timestamp().map_or(0.0, |t| t.as_secs_f64());
    crate::process::Record {
        kinesis: KinesisData {
            kinesis_schema_version: "1.0".into(),
            partition_key: record.partition_key().unwrap_or_default().to_string(),
            sequence_number: record.sequence_number().to_string(),
            data: base64::engine::general_purpose::STANDARD.encode(record.data().as_ref()),
            // Lambda reports arrival times with millisecond precision.
            approximate_arrival_timestamp: (arrival * 1000.0).round() / 1000.0,
            encryption_type: (record.encryption_type() == Some(&EncryptionType::Kms)).then(|| "KMS".to_string()),
        },
        event_source: "aws:kinesis".into(),
        event_version: "1.0".into(),
        event_id: format!("{shard_id}:{}", record.sequence_number()),
        event_name: "aws:kinesis:record".into(),
        invoke_identity_arn: role_arn.to_string(),
        aws_region: outputs.region.clone(),
        event_source_arn: outputs.stream_arn.clone(),
    }
}

impl LocalArgs {
    /// Checks the flags before any call.
    pub fn validate(&self) -> Result<(), Error> {
        match self.batch_size {
            Some(n) if !(1..=10_000).contains(&n) => Err(Error::usage(
                format!("--batch-size {n} is out of range"),
                "give --batch-size a value from 1 to 10000",
            )),
            _ => Ok(()),
        }
    }
}

/// Where `stream local` keeps checkpoints, the unpacked code and the function's log.
fn state_dir(args: &LocalArgs, region: &str, stack: &str) -> Result<PathBuf, Error> {
    let base = match &args.state_dir {
        Some(d) => d.clone(),
        None => match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x).join("stream"),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".local/state/stream"))
                .ok_or_else(|| Error::config("HOME is not set", "set HOME, or pass --state-dir DIR"))?,
        },
    };
    Ok(base.join("local").join(region).join(stack))
}

/// Downloads the function's zip (the stack's CodeBucket/CodeKey) once and unpacks `bootstrap`.
async fn unpack_code(clients: &Clients, bucket: &str, key: &str, dir: &Path) -> Result<PathBuf, Error> {
    let name: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
    let root = dir.join("code").join(name);
    let bootstrap = root.join("bootstrap");
    if bootstrap.is_file() {
        return Ok(bootstrap);
    }
    let location = format!("s3://{bucket}/{key}");
    let object = clients
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| Error::aws("GetObject", &location, e))?;
    let zip = object
        .body
        .collect()
        .await
        .map_err(|e| Error::failed(format!("reading {location}: {e}"), "run `stream local` again"))?
        .into_bytes();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| {
        Error::failed(format!("{location} is not a zip: {e}"), "deploy again to upload the function's code")
    })?;
    let mut file = archive.by_name("bootstrap").map_err(|_| {
        Error::failed(
            format!("{location} holds no `bootstrap`"),
            "deploy again: a provided.al2023 zip needs a bootstrap",
        )
    })?;
    let mut data = Vec::with_capacity(file.size() as usize);
    std::io::Read::read_to_end(&mut file, &mut data).map_err(|e| Error::io(&location, e))?;
    std::fs::create_dir_all(&root).map_err(|e| Error::io(root.display().to_string(), e))?;
    let tmp = root.join("bootstrap.tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o755)
            .open(&tmp)
            .map_err(|e| Error::io(tmp.display().to_string(), e))?;
        f.write_all(&data).map_err(|e| Error::io(tmp.display().to_string(), e))?;
    }
    std::fs::rename(&tmp, &bootstrap).map_err(|e| Error::io(bootstrap.display().to_string(), e))?;
    Ok(bootstrap)
}

/// The URL of an SQS queue from its ARN (arn:aws:sqs:region:account:name).
async fn queue_url(clients: &Clients, arn: &str) -> Result<Option<String>, Error> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() != 6 || parts[2] != "sqs" {
        tracing::warn!("on-failure destination {arn} is not an SQS queue: on-failure records are only counted");
        return Ok(None);
    }
    let out = clients
        .sqs
        .get_queue_url()
        .queue_name(parts[5])
        .queue_owner_aws_account_id(parts[4])
        .send()
        .await
        .map_err(|e| Error::aws("GetQueueUrl", arn, e))?;
    Ok(out.queue_url)
}

/// `stream local`: the stack's function and mapping, run here until caught up or Ctrl-C.
pub async fn run(
    args: &LocalArgs,
    stack_name: &str,
    clients: &Clients,
    shutdown: Shutdown,
) -> Result<LocalOutput, Error> {
    let found =
        stack::describe(clients, stack_name).await?.ok_or_else(|| Error::StackNotFound { stack: stack_name.into() })?;
    if !stack::is_managed(&found) {
        return Err(Error::failed(
            format!("stack \"{stack_name}\" was not created by stream"),
            "choose the --stack that `stream deploy` created",
        ));
    }
    let outputs = stack::load(clients, stack_name).await?;
    let param = |name: &str| {
        found.parameters().iter().find(|p| p.parameter_key() == Some(name)).and_then(|p| p.parameter_value())
    };
    let (Some(bucket), Some(key)) = (param(param::CODE_BUCKET), param(param::CODE_KEY)) else {
        return Err(Error::failed(
            format!("stack \"{stack_name}\" does not say where its code is"),
            format!("run `stream deploy --stack {stack_name}` to update it"),
        ));
    };
    let function = stack::function_configuration(clients, &outputs.function_name).await?;
    let host_arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "x86_64" };
    if let Some(arch) = function.architectures().first().map(|a| a.as_str())
        && arch != host_arch
    {
        return Err(Error::failed(
            format!("the function is built for {arch} and this machine is {host_arch}"),
            "run `stream local` on a machine of the function's architecture",
        ));
    }
    let mapping = stack::mapping(clients, &outputs).await?.ok_or_else(|| {
        Error::failed(
            format!("function {} has no event source mapping on {}", outputs.function_name, outputs.stream_arn),
            "deploy the stack again to restore its mapping",
        )
    })?;
    if mapping.state().is_some_and(|s| s.eq_ignore_ascii_case("Disabled")) {
        return Err(Error::failed(
            format!("the event source mapping of {} is disabled", outputs.function_name),
            "enable it (aws lambda update-event-source-mapping --enabled) as Lambda would need too",
        ));
    }
    let mut settings = Settings::from_mapping(&mapping);
    if let Some(n) = args.batch_size {
        settings.batch_size = n as usize;
    }
    let on_failure_url = match &settings.on_failure {
        Some(arn) => queue_url(clients, arn).await?,
        None => None,
    };

    let dir = state_dir(args, &clients.region, stack_name)?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let bootstrap = unpack_code(clients, bucket, key, &dir).await?;
    let checkpoints =
        CheckpointFile::open(&dir.join("checkpoints.json"), &outputs.stream_arn, &settings.uuid, args.reset)?;

    let log_path = dir.join("function.log");
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(log_path.display().to_string(), e))?;
    // The function's log lines go to the file; its metrics lines also feed the counters.
    let stats = Arc::new(Stats::default());
    let sink = {
        let (w, stats) = (Mutex::new(log_file), stats.clone());
        Arc::new(move |line: &str| {
            let _ = writeln!(w.lock().unwrap_or_else(|p| p.into_inner()), "{line}");
            stats.metrics_line(line);
        })
    };

    let env = function_env(clients, &function, &dir).await?;
    let spec = FunctionSpec {
        task_root: bootstrap.parent().map(Path::to_path_buf).unwrap_or_default(),
        bootstrap,
        env,
        function_arn: function.function_arn().unwrap_or_default().to_string(),
        timeout: Duration::from_secs(function.timeout().unwrap_or(3).max(1) as u64),
        log: sink,
        starts: AtomicU64::new(0),
    };
    // Stops the shard tasks on Ctrl-C, or when one of them fails.
    let (stop_trigger, stop) = Shutdown::new();
    let stop_trigger = Arc::new(stop_trigger);
    {
        let (mut outside, trigger) = (shutdown.clone(), stop_trigger.clone());
        tokio::spawn(async move {
            outside.wait().await;
            trigger.fire();
        });
    }
    let ctx = Arc::new(Ctx {
        clients: clients.clone(),
        function_arn: spec.function_arn.clone(),
        role_arn: function.role().unwrap_or_default().to_string(),
        pool: Pool::new(Arc::new(spec)),
        outputs,
        settings,
        on_failure_url,
        checkpoints,
        stats,
        shutdown: stop,
    });

    let shards: Vec<String> = list_shards(&clients.kinesis, &ctx.outputs.stream_name)
        .await?
        .iter()
        .map(|s| s.shard_id().to_string())
        .collect();
    let started = Instant::now();
    let live = crate::progress::stderr_is_tty().then(|| tokio::spawn(live_line(ctx.clone(), started)));
    let tasks: Vec<_> = shards
        .iter()
        .map(|shard| tokio::spawn(mapping::run_shard(ctx.clone(), shard.clone(), args.until_idle)))
        .collect();
    let mut failure = None;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failure.get_or_insert(e);
                stop_trigger.fire();
            }
            Err(e) => {
                failure.get_or_insert(Error::failed(format!("a shard task stopped: {e}"), "run `stream local` again"));
                stop_trigger.fire();
            }
        }
    }
    if let Some(l) = live {
        l.abort();
        eprintln!();
    }
    ctx.pool.shutdown().await;
    if let Some(e) = failure {
        return Err(e);
    }
    let s = &ctx.stats;
    let g = Stats::get;
    Ok(LocalOutput {
        shards: shards.len(),
        records: g(&s.records),
        invocations: g(&s.invocations),
        deliveries: g(&s.deliveries),
        written: g(&s.written),
        duplicates: g(&s.duplicates),
        quarantined: g(&s.quarantined),
        retries: g(&s.retries),
        bisections: g(&s.bisections),
        function_errors: g(&s.function_errors),
        timeouts: g(&s.timeouts),
        crashes: g(&s.crashes),
        cold_starts: ctx.pool.cold_starts(),
        peak_concurrency: g(&s.peak),
        skipped: g(&s.skipped),
        on_failure_records: g(&s.on_failure),
        seconds: started.elapsed().as_secs_f64(),
        log: log_path.display().to_string(),
        checkpoints: ctx.checkpoints.path().display().to_string(),
        interrupted: shutdown.is_triggered(),
    })
}

/// Lambda's environment for the function: its own variables, the runtime's, and credentials.
/// Locally the function signs with the caller's credentials (in Lambda: its role's), and talks to
/// the same endpoint as `stream local` (the emulator, when there is one).
async fn function_env(
    clients: &Clients,
    function: &aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput,
    dir: &Path,
) -> Result<Vec<(String, String)>, Error> {
    use aws_credential_types::provider::ProvideCredentials;
    let name = function.function_name().unwrap_or_default().to_string();
    let log_group = function
        .logging_config()
        .and_then(|l| l.log_group())
        .map(str::to_string)
        .unwrap_or_else(|| format!("/aws/lambda/{name}"));
    let today = chrono::Utc::now().format("%Y/%m/%d");
    let mut env: Vec<(String, String)> = vec![
        ("AWS_LAMBDA_FUNCTION_NAME".into(), name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), function.memory_size().unwrap_or(128).to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), function.version().unwrap_or("$LATEST").to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME".into(), log_group),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), format!("{today}/[$LATEST]{:032x}", rand::random::<u128>())),
        ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
        ("AWS_REGION".into(), clients.region.clone()),
        ("AWS_DEFAULT_REGION".into(), clients.region.clone()),
        ("_HANDLER".into(), function.handler().unwrap_or("bootstrap").to_string()),
        ("LAMBDA_TASK_ROOT".into(), dir.display().to_string()),
        ("LAMBDA_RUNTIME_DIR".into(), "/var/runtime".into()),
        ("TZ".into(), ":UTC".into()),
        ("LANG".into(), "en_US.UTF-8".into()),
        ("PATH".into(), "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
    ];
    if let Some(vars) = function.environment().and_then(|e| e.variables()) {
        let mut vars: Vec<_> = vars.iter().collect();
        vars.sort();
        env.extend(vars.into_iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let creds = match clients.config.credentials_provider() {
        Some(p) => p.provide_credentials().await.map_err(|e| {
            Error::config(format!("no credentials to hand to the function: {e}"), crate::aws::CREDENTIALS_HINT)
        })?,
        None => return Err(Error::config("no credentials to hand to the function", crate::aws::CREDENTIALS_HINT)),
    };
    env.push(("AWS_ACCESS_KEY_ID".into(), creds.access_key_id().to_string()));
    env.push(("AWS_SECRET_ACCESS_KEY".into(), creds.secret_access_key().to_string()));
    if let Some(token) = creds.session_token() {
        env.push(("AWS_SESSION_TOKEN".into(), token.to_string()));
    }
    if let Some(url) = &clients.endpoint_url {
        env.push(("AWS_ENDPOINT_URL".into(), url.clone()));
    }
    Ok(env)
}

/// The live line on a terminal: invocations, records/s, lag per shard, errors.
async fn live_line(ctx: Arc<Ctx>, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let s = &ctx.stats;
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let records = Stats::get(&s.records);
        let lag: Vec<String> = s
            .lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(shard, ms)| format!("{}:{ms}ms", shard.trim_start_matches("shardId-").trim_start_matches('0')))
            .collect();
        eprint!(
            "\r\x1b[2K{} invocations  {records} records  {:.0} records/s  lag {}  {} errors  {} retries",
            Stats::get(&s.invocations),
            records as f64 / secs,
            if lag.is_empty() { "-".to_string() } else { lag.join(" ") },
            Stats::get(&s.function_errors),
            Stats::get(&s.retries),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Event;
    use aws_sdk_kinesis::primitives::{Blob, DateTime};

    /// AWS's documented sample Kinesis event (Lambda developer guide, "Using Lambda with Kinesis").
    const AWS_SAMPLE_EVENT: &str = r#"{
    "Records": [
        {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": "1",
                "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
                "data": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==",
                "approximateArrivalTimestamp": 1545084650.987
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": "shardId-000000000006:49590338271490256608559692538361571095921575989136588898",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
            "awsRegion": "us-east-2",
            "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"
        }
    ]
}"#;

    #[test]
    fn the_event_is_byte_for_byte_the_documented_sample() {
        let record = Record::builder()
            .sequence_number("49590338271490256608559692538361571095921575989136588898")
            .partition_key("1")
            .data(Blob::new("Hello, this is a test.".as_bytes()))
            .approximate_arrival_timestamp(DateTime::from_millis(1_545_084_650_987))
            .build()
            .expect("valid record");
        let outputs = Outputs {
            stream_name: "lambda-stream".into(),
            stream_arn: "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream".into(),
            table_name: "t".into(),
            function_name: "f".into(),
            region: "us-east-2".into(),
            producer_user: "u".into(),
            rejected_table: "r".into(),
        };
        let role = "arn:aws:iam::123456789012:role/lambda-role";
        let event = Event { records: vec![event_record(&record, "shardId-000000000006", &outputs, role)] };
        let ours = serde_json::to_string(&event).expect("json");
        let sample: String = AWS_SAMPLE_EVENT.split_whitespace().collect();
        assert_eq!(ours, sample, "same fields, same order, same values");
    }

    #[test]
    fn event_record_has_the_shape_lambda_sends() {
        let record = Record::builder()
            .sequence_number("49590338271490256608559692538361571095921575989136588898")
            .partition_key("pk")
            .data(Blob::new("hello 🌏".as_bytes()))
            .approximate_arrival_timestamp(DateTime::from_millis(1_545_084_650_987))
            .encryption_type(EncryptionType::Kms)
            .build()
            .expect("valid record");
        let outputs = Outputs {
            stream_name: "s".into(),
            stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s".into(),
            table_name: "t".into(),
            function_name: "f".into(),
            region: "us-east-1".into(),
            producer_user: "u".into(),
            rejected_table: "r".into(),
        };
        let event = Event {
            records: vec![event_record(&record, "shardId-000000000006", &outputs, "arn:aws:iam::123456789012:role/r")],
        };
        let json = serde_json::to_value(&event).expect("json");
        let r = &json["Records"][0];
        assert_eq!(r["eventID"], "shardId-000000000006:49590338271490256608559692538361571095921575989136588898");
        assert_eq!(r["eventSource"], "aws:kinesis");
        assert_eq!(r["eventName"], "aws:kinesis:record");
        assert_eq!(r["eventSourceARN"], "arn:aws:kinesis:us-east-1:123456789012:stream/s");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["invokeIdentityArn"], "arn:aws:iam::123456789012:role/r");
        assert_eq!(r["eventVersion"], "1.0");
        assert_eq!(r["kinesis"]["data"], "aGVsbG8g8J+Mjw==");
        assert_eq!(r["kinesis"]["partitionKey"], "pk");
        assert_eq!(r["kinesis"]["kinesisSchemaVersion"], "1.0");
        assert_eq!(r["kinesis"]["encryptionType"], "KMS");
        assert_eq!(r["kinesis"]["approximateArrivalTimestamp"].as_f64(), Some(1_545_084_650.987));
        // The same JSON reads as aws_lambda_events' type too.
        let theirs: aws_lambda_events::kinesis::KinesisEvent =
            serde_json::from_value(json.clone()).expect("their type");
        assert_eq!(theirs.records[0].kinesis.data.as_slice(), "hello 🌏".as_bytes());
    }
}
