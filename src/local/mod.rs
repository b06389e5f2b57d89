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

/// A `Ctx` that makes no call: clients of an endpoint-less configuration, a function that is never
/// started, checkpoints under `dir`. For the unit tests of what a shard task decides by itself.
#[cfg(test)]
pub(crate) fn test_ctx(settings: Settings, dir: &std::path::Path) -> Arc<Ctx> {
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let spec = crate::sandbox::FunctionSpec {
        bootstrap: dir.join("bootstrap"),
        task_root: dir.to_path_buf(),
        env: Vec::new(),
        credentials: None,
        memory_mb: None,
        function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        timeout: Duration::from_secs(3),
        init_timeout: crate::sandbox::INIT_TIMEOUT,
        log: Arc::new(|_: &str| {}),
        starts: Default::default(),
    };
    let stream_arn = "arn:aws:kinesis:us-east-1:123456789012:stream/s";
    let outputs = Outputs {
        stream_name: "s".into(),
        stream_arn: stream_arn.into(),
        table_name: "t".into(),
        function_name: "f".into(),
        region: "us-east-1".into(),
        producer_user: "p".into(),
        rejected_table: "r".into(),
    };
    let checkpoints =
        CheckpointFile::open(&dir.join("checkpoints.json"), stream_arn, &settings.uuid, true).expect("checkpoints");
    Arc::new(Ctx {
        clients: Clients::new(&config),
        outputs,
        settings,
        function_arn: spec.function_arn.clone(),
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        on_failure: None,
        pool: Pool::new(Arc::new(spec)),
        checkpoints,
        stats: Arc::new(Stats::default()),
        shutdown: Shutdown::new(),
    })
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
    let Prepared { spec, role_arn, role, emulated } = function::prepare(
        clients,
        &function,
        deployed.parameter(crate::template::param::ARCHITECTURE),
        deployed.code()?,
        &dir,
        log,
    )
    .await?;
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

/// The shards, as Lambda reads them across a split or a merge: the stream's shards listed with
/// ListShards, each read by `mapping::run_shard`, in the order `follow_lineage` allows. Returns how
/// many shards were read.
async fn run_shards(ctx: &Arc<Ctx>, until_idle: bool) -> Result<usize, Error> {
    let list = || kinesis::list_shards(&ctx.clients.kinesis, &ctx.outputs.stream_name);
    let read = |shard: String| mapping::run_shard(ctx.clone(), shard, until_idle);
    follow_lineage(list, read, &ctx.shutdown, SHARD_RELIST).await
}

/// One task per shard, a child started only once its parents are closed and done (so a key's
/// records stay in order), the shards listed again every `relist` and whenever a task ends. The
/// first task to fail stops the others. Returns how many shards were started.
async fn follow_lineage<L, LF, R, RF>(
    mut list: L,
    read: R,
    shutdown: &Shutdown,
    relist: Duration,
) -> Result<usize, Error>
where
    L: FnMut() -> LF,
    LF: std::future::Future<Output = Result<Vec<aws_sdk_kinesis::types::Shard>, Error>>,
    R: Fn(String) -> RF,
    RF: std::future::Future<Output = Result<ShardEnd, Error>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut lineage = kinesis::Lineage::default();
    let mut relist = tokio::time::interval(relist);
    loop {
        let shards = match list().await {
            Ok(s) => s,
            Err(e) => {
                shutdown.fire();
                while tasks.join_next().await.is_some() {}
                return Err(e);
            }
        };
        let ready = if shutdown.is_triggered() { Vec::new() } else { lineage.ready(&shards) };
        for shard in ready {
            let id = shard.shard_id().to_string();
            let task = read(id.clone());
            tasks.spawn(async move { (id, task.await) });
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
                        shutdown.fire();
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::types::{HashKeyRange, SequenceNumberRange, Shard};
    use std::sync::Mutex;

    /// A listed shard: `parents` are its ParentShardId and AdjacentParentShardId.
    fn shard(id: &str, parents: &[&str], closed: bool) -> Shard {
        let mut seq = SequenceNumberRange::builder().starting_sequence_number("1");
        if closed {
            seq = seq.ending_sequence_number("9");
        }
        let range = HashKeyRange::builder().starting_hash_key("0").ending_hash_key("1").build().expect("range");
        let mut b =
            Shard::builder().shard_id(id).hash_key_range(range).sequence_number_range(seq.build().expect("seq"));
        if let Some(p) = parents.first() {
            b = b.parent_shard_id(*p);
        }
        if let Some(a) = parents.get(1) {
            b = b.adjacent_parent_shard_id(*a);
        }
        b.build().expect("shard")
    }

    /// Runs `follow_lineage` over `listed`, each shard's task taking its time from `takes` (ms) and
    /// ending Closed when the shard is listed closed; returns the log of starts and ends, in order.
    async fn run(listed: Vec<Shard>, takes: &'static [(&'static str, u64)]) -> (usize, Vec<String>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let closed: Vec<String> = listed
            .iter()
            .filter(|s| s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some())
            .map(|s| s.shard_id().to_string())
            .collect();
        let list = || {
            let listed = listed.clone();
            async move { Ok(listed) }
        };
        let read = |id: String| {
            let (log, is_closed) = (log.clone(), closed.contains(&id));
            let ms = takes.iter().find(|(s, _)| *s == id).map_or(0, |(_, ms)| *ms);
            async move {
                log.lock().expect("log").push(format!("start {id}"));
                tokio::time::sleep(Duration::from_millis(ms)).await;
                log.lock().expect("log").push(format!("end {id}"));
                Ok(if is_closed { ShardEnd::Closed } else { ShardEnd::Idle })
            }
        };
        let started = follow_lineage(list, read, &Shutdown::new(), SHARD_RELIST).await.expect("ran");
        let log = log.lock().expect("log").clone();
        (started, log)
    }

    fn position(log: &[String], entry: &str) -> usize {
        log.iter().position(|e| e == entry).unwrap_or_else(|| panic!("{entry} in {log:?}"))
    }

    /// A split's children are started only once their parent has ended closed (read to its end,
    /// every record done), both of them, each once; a merge's child only once both its parents
    /// have. Listing every shard at once would start them all together.
    #[tokio::test(start_paused = true)]
    async fn shards_are_started_parents_first_across_a_split_and_a_merge() {
        let listed = vec![
            shard("s0", &[], true),
            shard("s1", &["s0"], true),
            shard("s2", &["s0"], true),
            shard("s3", &["s1", "s2"], false),
            shard("other", &[], false),
        ];
        let (started, log) = run(listed, &[("s0", 300), ("s1", 100), ("s2", 200), ("other", 50)]).await;
        assert_eq!(started, 5, "{log:?}");
        assert_eq!(log.len(), 10, "each shard started and ended once: {log:?}");
        let at = |e: &str| position(&log, e);
        assert!(at("start other") < at("end s0"), "an unrelated shard does not wait: {log:?}");
        for child in ["s1", "s2"] {
            assert!(at("end s0") < at(&format!("start {child}")), "{child} after its parent: {log:?}");
        }
        assert!(at("end s1") < at("start s3") && at("end s2") < at("start s3"), "the merge's child last: {log:?}");
    }
}
