//! `stream local`: the deployed function run as Lambda would run it, without AWS or Docker. The
//! function's code is the zip `deploy` uploaded, unpacked and given Lambda's environment (`function`),
//! started as a child process with a Runtime API on loopback (`runtime`); the stack's event source
//! mapping is applied with its own settings (`mapping`), each shard read as Lambda reads it
//! (`reader`); checkpoints persist between runs (`checkpoint`); the counts are `stats`. The rest of
//! AWS (stream, tables, on-failure queue) is whatever the endpoint is: AWS itself, or the emulator.

pub mod checkpoint;
pub mod function;
pub mod limits;
pub mod mapping;
pub mod reader;
pub mod runtime;
pub mod stats;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::args::range;
use crate::aws::Clients;
use crate::error::Error;
use crate::kinesis;
use crate::output::SummaryFormat;
use crate::progress::{self, LiveLine};
use crate::shutdown::Shutdown;
use crate::stack::{self, Deployed, Outputs};
use crate::template::param;
use checkpoint::CheckpointFile;
use limits::Limits;
use mapping::{Settings, ShardEnd};
use runtime::{FunctionSpec, Pool};
use stats::{Counts, Stats};

/// How often the stream's shards are listed again while running (splits and merges).
const SHARD_RELIST: Duration = Duration::from_secs(5);

/// `stream local`
#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    /// Exit once every shard is caught up
    #[arg(long)]
    pub until_idle: bool,

    /// Records per invocation (default: the event source mapping's batch size)
    #[arg(long, value_name = "N", value_parser = range::<u32>(1, 10_000))]
    pub batch_size: Option<u32>,

    /// Where checkpoints, the unpacked code and the function's log live
    /// (default: $XDG_STATE_HOME/stream or ~/.local/state/stream)
    #[arg(long, value_name = "DIR", env = "STREAM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Forget the saved checkpoints: start from the mapping's starting position
    #[arg(long)]
    pub reset: bool,

    /// Summary format
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
}

/// The summary of `stream local`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LocalOutput {
    /// Shards read.
    pub shards: usize,
    /// What happened to the records and the invocations.
    #[serde(flatten)]
    pub counts: Counts,
    /// Bootstrap processes started (cold starts).
    pub cold_starts: u64,
    /// The memory and CPU the function was held to, and how.
    pub limits: String,
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
        } else if self.counts.skipped > 0 {
            Some(Error::Partial {
                what: format!(
                    "{} records were given up after the mapping's limits ({} on-failure records sent)",
                    self.counts.skipped, self.counts.on_failure_records
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
        let c = &self.counts;
        write!(
            f,
            "processed {} records from {} shard(s) in {} invocation(s) in {:.2} s: {} items written, \
             {} duplicates dropped, {} quarantined, {} batch retries, {} bisections, {} function errors \
             ({} timeouts, {} crashes), {} cold starts, {} given up, {} filtered out, {} read throttles\n\
             limits: {}",
            c.records,
            self.shards,
            c.invocations,
            self.seconds,
            c.written,
            c.duplicates,
            c.quarantined,
            c.retries,
            c.bisections,
            c.function_errors,
            c.timeouts,
            c.crashes,
            self.cold_starts,
            c.skipped,
            c.filtered,
            c.read_throttles,
            self.limits
        )
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
    /// The on-failure queue: a client signing as the function's role (Lambda sends these records
    /// with the execution role), and the queue's URL.
    pub on_failure: Option<(aws_sdk_sqs::Client, String)>,
    /// Warm environments.
    pub pool: Pool,
    /// Saved positions.
    pub checkpoints: CheckpointFile,
    /// Counters (shared with the function's log reader).
    pub stats: Arc<Stats>,
    /// Stops the shard tasks: Ctrl-C, or one of them failing.
    pub shutdown: Shutdown,
}

/// `stream local`: the stack's function and mapping, run here until caught up or Ctrl-C.
pub async fn run(
    args: &LocalArgs,
    stack_name: &str,
    clients: &Clients,
    shutdown: Shutdown,
) -> Result<LocalOutput, Error> {
    let deployed = stack::load(clients, stack_name).await?;
    let function = stack::function_configuration(clients, &deployed.outputs.function_name).await?;
    check_architecture(&function)?;
    let settings = mapping_settings(clients, &deployed.outputs, args).await?;
    let role_arn = function.role().unwrap_or_default().to_string();
    let role = function::assume_role(clients, &role_arn, &deployed.outputs.function_name).await?;
    let on_failure = match &settings.on_failure {
        Some(arn) => on_failure_queue(clients, arn, &role).await?,
        None => None,
    };
    let dir = state_dir(args, &clients.region, stack_name)?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let bootstrap = code(clients, &deployed, &dir).await?;
    let checkpoints =
        CheckpointFile::open(&dir.join("checkpoints.json"), &deployed.outputs.stream_arn, &settings.uuid, args.reset)?;
    let stats = Arc::new(Stats::default());
    let (log_path, log) = function::log_sink(&dir, stats.clone())?;
    let task_root = bootstrap.parent().map(Path::to_path_buf).unwrap_or_default();
    let memory_mb = function.memory_size().unwrap_or(128).max(128) as u64;
    let spec = FunctionSpec {
        env: function::environment(clients, &function, &task_root),
        task_root,
        bootstrap,
        credentials: Some(role),
        memory_mb: Some(memory_mb),
        function_arn: function.function_arn().unwrap_or_default().to_string(),
        timeout: Duration::from_secs(function.timeout().unwrap_or(3).max(1) as u64),
        init_timeout: runtime::INIT_TIMEOUT,
        log,
        starts: AtomicU64::new(0),
    };
    let ctx = Arc::new(Ctx {
        clients: clients.clone(),
        function_arn: spec.function_arn.clone(),
        role_arn,
        pool: Pool::new(Arc::new(spec)),
        outputs: deployed.outputs,
        settings,
        on_failure,
        checkpoints,
        stats,
        shutdown: shutdown.child(),
    });
    let started = Instant::now();
    let live = live_line(ctx.clone(), started);
    let ran = run_shards(&ctx, args.until_idle).await;
    live.finish();
    ctx.pool.shutdown().await;
    let shards = ran?;
    let limits = ctx.pool.limits().unwrap_or_else(|| Limits::new(memory_mb, "stream-local-probe").describe());
    Ok(LocalOutput {
        shards,
        limits,
        counts: ctx.stats.snapshot(),
        cold_starts: ctx.pool.cold_starts(),
        seconds: started.elapsed().as_secs_f64(),
        log: log_path.display().to_string(),
        checkpoints: ctx.checkpoints.path().display().to_string(),
        interrupted: shutdown.is_triggered(),
    })
}

/// The shards, as Lambda reads them across a split or a merge: one task per shard, a child
/// started only once its parents are closed and done (so a key's records stay in order), the
/// shard list read again while running. The first task to fail stops the others. Returns how many
/// shards were read.
async fn run_shards(ctx: &Arc<Ctx>, until_idle: bool) -> Result<usize, Error> {
    let mut tasks = tokio::task::JoinSet::new();
    let (mut started, mut closed) = (BTreeSet::new(), BTreeSet::<String>::new());
    let mut relist = tokio::time::interval(SHARD_RELIST);
    loop {
        let shards = match kinesis::list_shards(&ctx.clients.kinesis, &ctx.outputs.stream_name).await {
            Ok(s) => s,
            Err(e) => {
                ctx.shutdown.fire();
                while tasks.join_next().await.is_some() {}
                return Err(e);
            }
        };
        let listed: BTreeSet<&str> = shards.iter().map(|s| s.shard_id()).collect();
        for shard in &shards {
            if parents_done(shard, &closed, &listed)
                && !ctx.shutdown.is_triggered()
                && started.insert(shard.shard_id().to_string())
            {
                let (ctx, id) = (ctx.clone(), shard.shard_id().to_string());
                tasks.spawn(async move { (id.clone(), mapping::run_shard(ctx, id, until_idle).await) });
            }
        }
        if tasks.is_empty() {
            return Ok(started.len());
        }
        tokio::select! {
            Some(done) = tasks.join_next() => {
                let (shard, end) = done.unwrap_or_else(|e| {
                    (String::new(), Err(Error::failed(format!("a shard task stopped: {e}"), "run `stream local` again")))
                });
                match end {
                    Ok(ShardEnd::Closed) => {
                        progress::status(format!("stream local: shard {shard} is closed and done; its children may start"));
                        closed.insert(shard);
                    }
                    Ok(ShardEnd::Idle | ShardEnd::Stopped) => {}
                    Err(e) => {
                        ctx.shutdown.fire();
                        while tasks.join_next().await.is_some() {}
                        return Err(e);
                    }
                }
            }
            _ = relist.tick() => {}
        }
    }
}

/// True when `shard` may be read: each of its parents (a split has one, a merge two) is closed and
/// done, or no longer listed (expired with its records).
fn parents_done(shard: &aws_sdk_kinesis::types::Shard, closed: &BTreeSet<String>, listed: &BTreeSet<&str>) -> bool {
    let parents = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()];
    parents.into_iter().flatten().all(|p| closed.contains(p) || !listed.contains(p))
}

/// The function's architecture must be this machine's: its bootstrap runs here.
fn check_architecture(
    function: &aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput,
) -> Result<(), Error> {
    let host_arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "x86_64" };
    match function.architectures().first().map(|a| a.as_str()) {
        Some(arch) if arch != host_arch => Err(Error::failed(
            format!("the function is built for {arch} and this machine is {host_arch}"),
            "run `stream local` on a machine of the function's architecture",
        )),
        _ => Ok(()),
    }
}

/// The stack's event source mapping, enabled, as settings (`--batch-size` overrides its batch size).
async fn mapping_settings(clients: &Clients, outputs: &Outputs, args: &LocalArgs) -> Result<Settings, Error> {
    let mapping = stack::mapping(clients, outputs).await?.ok_or_else(|| {
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
    let mut settings = Settings::from_mapping(&mapping)?;
    if let Some(n) = args.batch_size {
        settings.batch_size = n as usize;
    }
    Ok(settings)
}

/// The function's `bootstrap`, from the zip the stack's CodeBucket/CodeKey name.
async fn code(clients: &Clients, deployed: &Deployed, dir: &Path) -> Result<PathBuf, Error> {
    let (Some(bucket), Some(key)) = (deployed.parameter(param::CODE_BUCKET), deployed.parameter(param::CODE_KEY))
    else {
        let name = deployed.stack.stack_name().unwrap_or_default();
        return Err(Error::failed(
            format!("stack \"{name}\" does not say where its code is"),
            format!("run `stream deploy --stack {name}` to update it"),
        ));
    };
    function::unpack_code(clients, bucket, key, dir).await
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

/// The on-failure destination: an SQS client that signs as the function's role, and the queue's
/// URL (from its ARN, arn:aws:sqs:region:account:name).
async fn on_failure_queue(
    clients: &Clients,
    arn: &str,
    role: &aws_credential_types::provider::SharedCredentialsProvider,
) -> Result<Option<(aws_sdk_sqs::Client, String)>, Error> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() != 6 {
        return Err(mapping::unsupported(&format!("an on-failure destination that is not a queue ARN ({arn})")));
    }
    let out = clients
        .sqs
        .get_queue_url()
        .queue_name(parts[5])
        .queue_owner_aws_account_id(parts[4])
        .send()
        .await
        .map_err(|e| Error::aws("GetQueueUrl", arn, e))?;
    let config = aws_sdk_sqs::config::Builder::from(&clients.config).credentials_provider(role.clone()).build();
    Ok(out.queue_url.map(|url| (aws_sdk_sqs::Client::from_conf(config), url)))
}

/// The live line on a terminal: invocations, records/s, lag per shard, errors.
fn live_line(ctx: Arc<Ctx>, started: Instant) -> LiveLine {
    LiveLine::start(Duration::from_millis(500), move || {
        let c = ctx.stats.snapshot();
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let lag: Vec<String> = ctx
            .stats
            .lags()
            .iter()
            .map(|(shard, ms)| format!("{}:{ms}ms", shard.trim_start_matches("shardId-").trim_start_matches('0')))
            .collect();
        format!(
            "{} invocations  {} records  {:.0} records/s  lag {}  {} errors  {} retries",
            c.invocations,
            c.records,
            c.records as f64 / secs,
            if lag.is_empty() { "-".to_string() } else { lag.join(" ") },
            c.function_errors,
            c.retries,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::types::Shard;

    fn shard(id: &str, parent: Option<&str>, adjacent: Option<&str>) -> Shard {
        Shard::builder()
            .shard_id(id)
            .set_parent_shard_id(parent.map(str::to_string))
            .set_adjacent_parent_shard_id(adjacent.map(str::to_string))
            .build()
            .expect("shard")
    }

    /// Children wait for their parents (one after a split, two after a merge); a parent that is
    /// no longer listed has expired and holds nothing to wait for.
    #[test]
    fn a_child_is_read_after_its_parents() {
        let listed: BTreeSet<&str> = ["s0", "s1", "s2", "s3", "s4"].into_iter().collect();
        let mut closed = BTreeSet::new();
        let split_child = shard("s3", Some("s0"), None);
        let merged = shard("s4", Some("s1"), Some("s2"));
        assert!(parents_done(&shard("s0", None, None), &closed, &listed));
        assert!(!parents_done(&split_child, &closed, &listed));
        closed.insert("s0".to_string());
        assert!(parents_done(&split_child, &closed, &listed));
        closed.insert("s1".to_string());
        assert!(!parents_done(&merged, &closed, &listed), "both parents of a merge");
        closed.insert("s2".to_string());
        assert!(parents_done(&merged, &closed, &listed));
        let orphan = shard("s9", Some("gone"), None);
        assert!(parents_done(&orphan, &BTreeSet::new(), &listed), "an expired parent");
    }
}
