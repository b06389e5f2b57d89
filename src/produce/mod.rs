//! `stream produce`: records from a source into the stack's stream. Every source (`source`:
//! synthetic events of any kind, a JSON-lines file or stdin; `live`: Bluesky, X) feeds one channel
//! of chunks, each record checked against the stack's event schema and keyed as it says; one loop
//! (`feed`) takes from it, up to `--count`, at `--rate`, and routes each record to `delivery`, whose
//! per-shard workers batch, pace and put it, resending only failed entries; what still fails goes
//! to the dead-letter file (`deadletter`). The stream's name and the schema come from `stack`.

pub mod deadletter;
pub mod delivery;
pub mod live;
pub mod source;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::args::{at_least, range_of};
use crate::aws::Clients;
use crate::error::Error;
use crate::kinesis::{self, MAX_RECORDS_PER_CALL, ShardMap};
use crate::progress::LiveLine;
use crate::schema::Schema;
use crate::shutdown::Shutdown;
use crate::stack;
use crate::synthetic::Kind;
use delivery::{Counts, Delivery};
use source::Chunk;

/// `stream produce`
#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    /// Where records come from
    #[arg(long, value_enum, default_value_t = SourceKind::Synthetic)]
    pub source: SourceKind,

    /// JSON-lines file of events for --source file (`-` reads stdin)
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Kind of synthetic events (default: the one named like the stack's schema, else tweets)
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,

    /// Events to make (synthetic, default 100), or stop after N records (file, stdin, bluesky, x)
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,

    /// Jetstream endpoint for --source bluesky
    #[arg(long, value_name = "URL", default_value = BLUESKY_URL)]
    pub bluesky_url: String,

    /// X API base URL for --source x (bearer token from X_BEARER_TOKEN)
    #[arg(long, value_name = "URL", default_value = "https://api.x.com")]
    pub x_url: String,

    /// Filtered-stream rule for --source x (repeat for several)
    #[arg(long, value_name = "RULE")]
    pub track: Vec<String>,

    /// Scales the live sources' reconnect waits (tests)
    #[arg(long, default_value_t = 1.0, hide = true)]
    pub reconnect_scale: f64,

    /// Records per second in total (default: as fast as the shards take them)
    #[arg(long, value_name = "N", value_parser = at_least::<u32>(1))]
    pub rate: Option<u32>,

    /// Seed for the synthetic events: the same seed gives the same events
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Records per PutRecords call (1-500)
    #[arg(long, default_value_t = MAX_RECORDS_PER_CALL, value_name = "N", value_parser = range_of::<usize>(1, MAX_RECORDS_PER_CALL as u64, "PutRecords' limit"))]
    pub batch_size: usize,

    /// Milliseconds a partly filled batch may wait for more records
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub linger_ms: u64,

    /// Pack records into KPL aggregates (the function deaggregates them)
    #[arg(long)]
    pub aggregate: bool,

    /// Put with the producer IAM user's key (the profile `deploy` wrote), as an external client would
    #[arg(long)]
    pub as_producer: bool,

    /// File that receives records still failing after retries (JSON lines, with the reason)
    #[arg(long, default_value = "stream-dead-letter.jsonl", value_name = "FILE")]
    pub dead_letter: PathBuf,
}

/// Where `produce` reads records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// Realistic synthetic events of --kind (deterministic with --seed)
    Synthetic,
    /// JSON lines from --file (`-`: stdin), any events the stack's schema takes
    File,
    /// JSON lines from standard input (as --source file --file -)
    Stdin,
    /// Live posts from the Bluesky Jetstream (free, no account)
    Bluesky,
    /// The X API v2 filtered stream (X_BEARER_TOKEN, --track)
    X,
}

/// The public Jetstream instance, posts only.
pub const BLUESKY_URL: &str = "wss://jetstream2.us-east.bsky.network/subscribe?wantedCollections=app.bsky.feed.post";

/// The summary of `stream produce`.
#[derive(Debug, Clone, Serialize)]
pub struct ProduceOutput {
    /// Stream written to.
    pub stream: String,
    /// Shards written to.
    pub shards: usize,
    /// Records taken from the source and handed to delivery: `sent` + `failed` in the end.
    pub made: u64,
    /// What delivery did with them.
    #[serde(flatten)]
    pub counts: Counts,
    /// Input lines (or live posts) the stack's schema refuses, skipped.
    pub bad_lines: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Dead-letter file, when something went there.
    pub dead_letter: Option<String>,
    /// True when Ctrl-C stopped the run early.
    pub interrupted: bool,
}

impl ProduceOutput {
    /// The error that decides the exit code, if any.
    pub fn problem(&self) -> Option<Error> {
        if self.interrupted {
            Some(Error::Interrupted)
        } else if self.counts.failed > 0 {
            let c = &self.counts;
            Some(Error::Partial {
                what: format!("{} of {} records were not accepted after retries", c.failed, c.failed + c.sent),
                hint: format!(
                    "they are in {}; add shards (`stream deploy --shards N`) or lower --rate, then send that file again",
                    self.dead_letter.as_deref().unwrap_or("the dead-letter file")
                ),
            })
        } else {
            None
        }
    }
}

impl fmt::Display for ProduceOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        let rate = if self.seconds > 0.0 { c.sent as f64 / self.seconds } else { 0.0 };
        let mib = if self.seconds > 0.0 { c.bytes as f64 / 1048576.0 / self.seconds } else { 0.0 };
        write!(
            f,
            "produced {} records to {} ({} shard(s)) in {:.2} s ({:.0} records/s, {:.2} MiB/s, {} PutRecords calls, {} resent, {} failed",
            c.sent, self.stream, self.shards, self.seconds, rate, mib, c.calls, c.retried, c.failed
        )?;
        if c.kinesis_records != c.sent {
            write!(f, ", {} Kinesis records", c.kinesis_records)?;
        }
        if self.bad_lines > 0 {
            write!(f, ", {} bad input lines skipped", self.bad_lines)?;
        }
        if self.interrupted {
            write!(f, ", interrupted")?;
        }
        write!(f, ")")
    }
}

impl ProduceArgs {
    /// Checks what clap cannot: the flags that go together, and the file that must be there.
    pub fn validate(&self) -> Result<(), Error> {
        match (self.source, &self.file) {
            (SourceKind::File, None) => {
                Err(Error::usage("--source file needs --file", "give --file PATH (or --file - to read stdin)"))
            }
            (SourceKind::File, Some(path)) if path.as_os_str() != "-" && !path.is_file() => Err(Error::usage(
                format!("{} is not a readable file", path.display()),
                "give --file the path of a JSON-lines file of events, or - for stdin",
            )),
            (SourceKind::Synthetic | SourceKind::Stdin | SourceKind::Bluesky | SourceKind::X, Some(_)) => {
                Err(Error::usage("--file is only read with --source file", "add --source file, or leave --file out"))
            }
            (source, _) if source != SourceKind::Synthetic && self.kind.is_some() => Err(Error::usage(
                "--kind is only read with --source synthetic",
                "leave --kind out, or add --source synthetic",
            )),
            (SourceKind::X, None) if std::env::var("X_BEARER_TOKEN").map_or(true, |t| t.trim().is_empty()) => {
                Err(Error::usage(
                    "--source x needs an X API bearer token in X_BEARER_TOKEN",
                    "export X_BEARER_TOKEN (from the X developer portal; it is never printed)",
                ))
            }
            (SourceKind::X, None) if self.track.is_empty() => Err(Error::usage(
                "--source x needs at least one --track rule",
                "add --track 'rust lang:en' (repeat for more rules)",
            )),
            // What `net::endpoint` takes, named as it refuses it: ws, wss, and their http(s) spelling.
            (SourceKind::Bluesky, None) => crate::net::endpoint(&self.bluesky_url)
                .map(drop)
                .map_err(|why| Error::usage(format!("--bluesky-url {why}"), format!("leave it out for {BLUESKY_URL}"))),
            _ => Ok(()),
        }
    }
}

/// Everything about `produce`'s flags and files that can be checked before any call.
pub fn precheck(args: &ProduceArgs, stack_name: &str) -> Result<(), Error> {
    args.validate()?;
    if args.as_producer {
        check_producer_profile(stack_name)?;
    }
    Ok(())
}

/// Checks that the producer's profile (written by `deploy`) is there, before any call.
fn check_producer_profile(stack_name: &str) -> Result<(), Error> {
    let path = crate::credentials::credentials_path()?;
    if crate::credentials::profile_key_id(&path, stack_name)?.is_none() {
        return Err(Error::config(
            format!("no producer profile \"{stack_name}\" in {}", path.display()),
            format!("run `stream deploy --stack {stack_name}` on this machine; it writes the profile"),
        ));
    }
    Ok(())
}

/// A Kinesis client that signs with the producer's profile (written by `deploy`).
async fn producer_client(clients: &Clients, stack_name: &str) -> Result<aws_sdk_kinesis::Client, Error> {
    check_producer_profile(stack_name)?;
    let args = crate::aws::AwsArgs {
        region: Some(clients.region.clone()),
        profile: Some(stack_name.to_string()),
        endpoint_url: clients.endpoint_override.clone(),
    };
    let config = crate::aws::load_config(&args, crate::aws::RetryMode::Adaptive).await;
    Ok(aws_sdk_kinesis::Client::new(&config))
}

/// `stream produce` (flags already checked by `precheck`).
pub async fn run(
    args: &ProduceArgs,
    stack_name: &str,
    clients: &Clients,
    shutdown: Shutdown,
) -> Result<ProduceOutput, Error> {
    let deployed = stack::load(clients, stack_name).await?;
    let schema = stack::schema(clients, &deployed.stack).await?.schema;
    let kind = args.kind.or_else(|| Kind::for_schema(schema.name())).unwrap_or(Kind::Tweets);
    check_live_source(args.source, &schema)?;
    let stream = deployed.outputs.stream_name;
    let map = ShardMap::new(&kinesis::list_shards(&clients.kinesis, &stream).await?)?;
    let shards = map.len();
    let client = if args.as_producer { producer_client(clients, stack_name).await? } else { clients.kinesis.clone() };
    let settings = delivery::Settings {
        client,
        stream: stream.clone(),
        batch_size: args.batch_size,
        linger: Duration::from_millis(args.linger_ms),
        aggregate: args.aggregate,
        dead_letter: args.dead_letter.clone(),
    };
    let started = Instant::now();
    let mut delivery = Delivery::start(map, settings);
    let line = live_line(&delivery, started);
    let (tx, mut rx) = mpsc::channel(source::CHANNEL_CHUNKS);
    let bad_lines = Arc::new(AtomicU64::new(0));
    let live = matches!(args.source, SourceKind::Bluesky | SourceKind::X);
    let source = source::spawn(args, kind, schema.clone(), tx, bad_lines.clone());
    let limit = match args.source {
        // The synthetic source makes exactly --count events.
        SourceKind::Synthetic => u64::MAX,
        _ => args.count.unwrap_or(u64::MAX),
    };
    let rekey = Rekey { schema: live.then_some(&*schema), refused: &bad_lines };
    let fed = feed(&mut rx, limit, args.rate, &shutdown, &mut delivery, rekey).await;
    drop(rx);
    // A source still running (a live one, or one the limit cut short) is no longer needed.
    let source_end = source.stop();
    let finished = delivery.finish().await;
    line.finish();
    let finished = finished?;
    source_end?;
    Ok(ProduceOutput {
        stream,
        shards,
        made: fed.made,
        counts: finished.counts,
        bad_lines: bad_lines.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        dead_letter: finished.dead_letter,
        interrupted: fed.interrupted,
    })
}

/// The live sources map posts to tweets; the stack's schema must take them.
fn check_live_source(source: SourceKind, schema: &Schema) -> Result<(), Error> {
    if !matches!(source, SourceKind::Bluesky | SourceKind::X) {
        return Ok(());
    }
    let sample = crate::synthetic::Events::new(Kind::Tweets, Some(0)).next().unwrap_or_default();
    schema.kinesis_key(&sample).map(drop).map_err(|why| {
        Error::usage(
            format!(
                "--source {} sends tweets, which the stack's schema \"{}\" refuses: {why}",
                source.name(),
                schema.name()
            ),
            "deploy the stack with the tweets schema for live posts, or send your own events with --source file",
        )
    })
}

impl SourceKind {
    /// The source's name as the flag takes it.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Synthetic => "synthetic",
            SourceKind::File => "file",
            SourceKind::Stdin => "stdin",
            SourceKind::Bluesky => "bluesky",
            SourceKind::X => "x",
        }
    }
}

/// Records of the live sources are keyed again by the stack's schema, and skipped when it refuses
/// them (counted with the bad lines); the other sources key their records as they read them.
struct Rekey<'a> {
    schema: Option<&'a Schema>,
    refused: &'a AtomicU64,
}

impl Rekey<'_> {
    fn key(&self, key: String, data: &[u8]) -> Option<String> {
        let Some(schema) = self.schema else { return Some(key) };
        match schema.kinesis_key(data) {
            Ok(k) => Some(k),
            Err(why) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                crate::progress::status(format!("skipped a post: {why}"));
                None
            }
        }
    }
}

/// What the feed loop did.
struct Fed {
    made: u64,
    interrupted: bool,
}

/// The one loop between the source and delivery: takes chunks from the channel, at most `limit`
/// records, at `rate` records per second in total, routes each record to its shard and hands the
/// routed records over once per chunk (and before any wait, so none is held back by the rate).
/// Stops early on Ctrl-C, or once delivery stopped after an error no retry can fix.
async fn feed(
    rx: &mut mpsc::Receiver<Chunk>,
    limit: u64,
    rate: Option<u32>,
    shutdown: &Shutdown,
    delivery: &mut Delivery,
    rekey: Rekey<'_>,
) -> Fed {
    let started = Instant::now();
    let mut made = 0u64;
    while made < limit && !delivery.stopped() {
        let next = tokio::select! {
            biased;
            () = shutdown.wait() => return Fed { made, interrupted: true },
            r = rx.recv() => r,
        };
        let Some(chunk) = next else { break };
        for (key, data) in chunk {
            if made == limit {
                break;
            }
            let Some(key) = rekey.key(key, &data) else { continue };
            if let Some(rate) = rate {
                // The total rate: record n leaves at n/rate seconds.
                let due = started + Duration::from_secs_f64(made as f64 / f64::from(rate));
                if due > Instant::now() && !delivery.hand_over().await {
                    return Fed { made, interrupted: false };
                }
                tokio::select! {
                    biased;
                    () = shutdown.wait() => return Fed { made, interrupted: true },
                    () = tokio::time::sleep_until(due.into()) => {}
                }
            }
            delivery.push(key, data);
            made += 1;
        }
        if !delivery.hand_over().await {
            break;
        }
    }
    Fed { made, interrupted: false }
}

/// The live line on a terminal: sent, records/s, MiB/s, retries, failures.
fn live_line(delivery: &Delivery, started: Instant) -> LiveLine {
    let counters = delivery.counters();
    LiveLine::start(Duration::from_millis(250), move || {
        let c = counters.snapshot();
        let secs = started.elapsed().as_secs_f64().max(0.001);
        format!(
            "sent {}  {:.0} records/s  {:.2} MiB/s  {} resent  {} failed",
            c.sent,
            c.sent as f64 / secs,
            c.bytes as f64 / 1048576.0 / secs,
            c.retried,
            c.failed
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Produce {
        #[command(flatten)]
        args: ProduceArgs,
    }

    /// What `validate` says of these flags: Ok, or the error's two lines.
    fn validate(flags: &[&str]) -> Result<(), (String, String)> {
        let args = Produce::try_parse_from(std::iter::once("produce").chain(flags.iter().copied()))
            .unwrap_or_else(|e| panic!("{flags:?} parse: {e}"))
            .args;
        args.validate().map_err(|e| (e.to_string(), e.hint()))
    }

    /// Flags that do not go together are refused with what to do; the ones that do pass. (The X
    /// source's token is read from the environment: the offline test of the binary covers it.)
    #[test]
    fn flags_that_do_not_go_together_are_refused() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let file = file.path().to_str().expect("utf8 path");
        for ok in [
            &[][..],
            &["--kind", "iot"],
            &["--source", "file", "--file", file],
            &["--source", "file", "--file", "-"],
            &["--source", "stdin"],
            &["--source", "bluesky"],
            &["--source", "bluesky", "--bluesky-url", "wss://example.com/subscribe"],
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok:?}");
        }
        let refused = |flags: &[&str], what: &str, hint: &str| {
            let (got_what, got_hint) = validate(flags).expect_err("refused");
            assert_eq!(got_what, what, "{flags:?}");
            assert!(got_hint.contains(hint), "{flags:?}: {got_hint}");
        };
        refused(&["--source", "file"], "--source file needs --file", "--file PATH");
        refused(
            &["--source", "file", "--file", "/no/such.jsonl"],
            "/no/such.jsonl is not a readable file",
            "JSON-lines",
        );
        refused(&["--source", "file", "--file", "/tmp"], "/tmp is not a readable file", "JSON-lines");
        for source in ["synthetic", "stdin", "bluesky", "x"] {
            refused(
                &["--source", source, "--file", file],
                "--file is only read with --source file",
                "add --source file",
            );
        }
        for source in [&["--source", "file", "--file", file][..], &["--source", "stdin"], &["--source", "bluesky"]] {
            let flags: Vec<&str> = source.iter().copied().chain(["--kind", "iot"]).collect();
            refused(&flags, "--kind is only read with --source synthetic", "add --source synthetic");
        }
        refused(
            &["--source", "bluesky", "--bluesky-url", "ftp://example.com/"],
            "--bluesky-url ftp://example.com/: scheme ftp is not ws, wss, http or https",
            "leave it out",
        );
        refused(
            &["--source", "bluesky", "--bluesky-url", "jetstream"],
            "--bluesky-url jetstream is not a URL: relative URL without a base",
            "leave it out",
        );
    }

    fn output(sent: u64, kinesis_records: u64, failed: u64, seconds: f64) -> ProduceOutput {
        ProduceOutput {
            stream: "s-Stream".into(),
            shards: 2,
            made: sent + failed,
            counts: Counts { sent, bytes: 2 * 1048576, kinesis_records, retried: 4, failed, calls: 3 },
            bad_lines: 0,
            seconds,
            dead_letter: None,
            interrupted: false,
        }
    }

    /// The summary line: rates over the run's seconds (none for a run of no time), and the
    /// Kinesis records, bad lines and interruption only when there is something to say.
    #[test]
    fn the_summary_says_rates_and_only_what_happened() {
        let plain = output(1000, 1000, 0, 2.0);
        assert_eq!(
            plain.to_string(),
            "produced 1000 records to s-Stream (2 shard(s)) in 2.00 s (500 records/s, 1.00 MiB/s, 3 PutRecords calls, 4 resent, 0 failed)"
        );
        let mut busy = output(1000, 10, 0, 0.0);
        busy.bad_lines = 3;
        busy.interrupted = true;
        assert_eq!(
            busy.to_string(),
            "produced 1000 records to s-Stream (2 shard(s)) in 0.00 s (0 records/s, 0.00 MiB/s, 3 PutRecords calls, 4 resent, 0 failed, 10 Kinesis records, 3 bad input lines skipped, interrupted)"
        );
    }

    /// The exit code's error: Ctrl-C first, then records that never landed (exit 3, naming the
    /// dead-letter file), else none.
    #[test]
    fn records_that_never_landed_or_an_interruption_decide_the_exit() {
        assert!(output(10, 10, 0, 1.0).problem().is_none());
        let mut failed = output(10, 10, 2, 1.0);
        failed.dead_letter = Some("dead.jsonl".into());
        match failed.problem() {
            Some(Error::Partial { what, hint }) => {
                assert_eq!(what, "2 of 12 records were not accepted after retries");
                assert!(hint.starts_with("they are in dead.jsonl; "), "{hint}");
            }
            other => panic!("not a partial failure: {other:?}"),
        }
        failed.interrupted = true;
        assert!(matches!(failed.problem(), Some(Error::Interrupted)));
    }
}
