//! `stream local`: the deployed function run as Lambda would run it, without AWS or Docker. The
//! function runs in the `sandbox` (its code, Lambda's environment, its role, its limits, the Runtime
//! API); the stack's event source mapping is applied with its own settings (`mapping`), each shard
//! read as Lambda reads it (`reader`); checkpoints persist between runs (`checkpoint`); the counts
//! are `stats`. The rest of
//! AWS (stream, tables, on-failure queue) is whatever the endpoint is: AWS itself, or the emulator.

pub mod checkpoint;
pub mod mapping;
pub mod reader;
pub mod stats;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::args::range;
use crate::aws::Clients;
use crate::error::Error;
use crate::kinesis;
use crate::output::SummaryFormat;
use crate::progress::{self, LiveLine};
use crate::sandbox::function::{self, Prepared};
use crate::sandbox::limits::Limits;
use crate::sandbox::{self, Pool};
use crate::shutdown::Shutdown;
use crate::stack::{self, Outputs};
use checkpoint::CheckpointFile;
use mapping::{Settings, ShardEnd};
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
    /// Set when the function ran under emulation (another architecture than this machine's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emulated: Option<String>,
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
             {} duplicates dropped, {}{} quarantined, {} batch retries, {} bisections, {} function errors \
             ({} timeouts, {} crashes), {} cold starts, {} given up, {} filtered out, {} read throttles\n\
             limits: {}",
            c.records,
            self.shards,
            c.invocations,
            self.seconds,
            c.written,
            c.duplicates,
            if c.superseded > 0 { format!("{} superseded by newer versions, ", c.superseded) } else { String::new() },
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
        )?;
        match &self.emulated {
            Some(how) => write!(f, "\nemulated: {how}"),
            None => Ok(()),
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
    deployed.local_run()?;
    let function = stack::function_configuration(clients, &deployed.outputs.function_name).await?;
    let settings = mapping_settings(clients, &deployed.outputs, args).await?;
    let dir = sandbox::state_dir(args.state_dir.as_deref(), &clients.region, stack_name)?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let stats = Arc::new(Stats::default());
    let counts = stats.clone();
    let (log_path, log) = function::log_sink(&dir, move |line| counts.metrics_line(line))?;
    let Prepared { spec, role_arn, role, emulated } =
        function::prepare(clients, &function, deployed.code()?, &dir, log).await?;
    if let Some(how) = &emulated {
        progress::status(format!("stream local: {how}"));
    }
    let on_failure = match &settings.on_failure {
        Some(arn) => on_failure_queue(clients, arn, &role).await?,
        None => None,
    };
    let checkpoints =
        CheckpointFile::open(&dir.join("checkpoints.json"), &deployed.outputs.stream_arn, &settings.uuid, args.reset)?;
    let memory_mb = spec.memory_mb.unwrap_or(128);
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
        emulated,
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
    let mut lineage = kinesis::Lineage::default();
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
        let ready = if ctx.shutdown.is_triggered() { Vec::new() } else { lineage.ready(&shards) };
        for shard in ready {
            let (ctx, id) = (ctx.clone(), shard.shard_id().to_string());
            tasks.spawn(async move { (id.clone(), mapping::run_shard(ctx, id, until_idle).await) });
        }
        if tasks.is_empty() {
            return Ok(lineage.started());
        }
        tokio::select! {
            Some(done) = tasks.join_next() => {
                let (shard, end) = done.unwrap_or_else(|e| {
                    (String::new(), Err(Error::failed(format!("a shard task stopped: {e}"), "run `stream local` again")))
                });
                match end {
                    Ok(ShardEnd::Closed) => {
                        progress::status(format!("stream local: shard {shard} is closed and done; its children may start"));
                        lineage.done(&shard);
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
