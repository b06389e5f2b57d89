//! `stream logs`: the function's log, readable. From CloudWatch Logs for the deployed function
//! (`cloud`: the events since a time, matching a filter pattern; `--follow` with Live Tail where the
//! service offers it, polling once a second otherwise), or from `stream local`'s function log
//! (`file`, `--local`). Each event is rendered (`render`) or, with `--output json`, printed as
//! logged. `pattern` matches filter patterns on the local log as CloudWatch Logs does.

pub mod cloud;
pub mod file;
pub mod pattern;
pub mod render;

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;

use crate::args::point_in_time;
use crate::aws::Clients;
use crate::error::Error;
use crate::output::{JsonArray, Output};
use crate::progress;
use crate::sandbox::{self, function::LOG_FILE};
use crate::shutdown::Shutdown;

/// How far back the log is read when `--since` is not given (as `aws logs tail` does).
const DEFAULT_SINCE_S: f64 = 600.0;

/// `stream logs`
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Start at TIME: 2026-11-26T09:30:00Z, or 90s, 15m, 2h, 7d ago (default: 10m)
    #[arg(long, value_name = "TIME", value_parser = point_in_time)]
    pub since: Option<f64>,

    /// Only events matching this CloudWatch Logs filter pattern: terms that must all appear,
    /// "quoted phrases", ?either ?or, -not, %regex% (JSON patterns such as { $.level = "WARN" }
    /// with CloudWatch Logs only)
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,

    /// Keep printing events as they arrive, until Ctrl-C (Live Tail where the service offers it,
    /// under a second behind; polling once a second otherwise)
    #[arg(short, long)]
    pub follow: bool,

    /// Read `stream local`'s function log instead of CloudWatch Logs (no AWS call)
    #[arg(long)]
    pub local: bool,

    /// Where `stream local` keeps its state, with --local (default: $XDG_STATE_HOME/stream or
    /// ~/.local/state/stream)
    #[arg(long, value_name = "DIR", env = "STREAM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// One log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When it was logged, in milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The line as the function (or Lambda) wrote it.
    pub message: String,
}

/// Prints events to stdout in the chosen format and counts them: readable lines; each message
/// exactly as logged, one a line (jsonl); or one JSON array of them, closed at the end (json),
/// where a message that is JSON is its value and any other line a string.
pub struct Printer {
    format: Output,
    array: JsonArray,
    /// Events printed.
    pub printed: u64,
}

impl Printer {
    /// A printer of `format`.
    pub fn new(format: Output) -> Self {
        Printer { format, array: JsonArray::default(), printed: 0 }
    }

    /// Prints one event. A closed pipe (`stream logs | head`) is returned as an error the caller
    /// treats as the end.
    pub fn print(&mut self, event: &Event) -> Result<(), Error> {
        let mut out = std::io::stdout().lock();
        let message = event.message.trim_end_matches(['\r', '\n']);
        let written = match self.format {
            Output::Json => match serde_json::from_str::<&serde_json::value::RawValue>(message) {
                Ok(raw) => self.array.push(&mut out, raw),
                Err(_) => self.array.push(&mut out, message),
            },
            Output::Jsonl => writeln!(out, "{message}"),
            _ => writeln!(out, "{}", render::line(event.timestamp_ms, &event.message)),
        };
        self.printed += 1;
        written.and_then(|()| out.flush()).map_err(|e| Error::io("stdout", e))
    }

    /// Ends the output (closes the JSON array).
    pub fn finish(self) -> Result<(), Error> {
        if self.format == Output::Json {
            let mut out = std::io::stdout().lock();
            self.array.finish(&mut out).and_then(|()| out.flush()).map_err(|e| Error::io("stdout", e))?;
        }
        Ok(())
    }
}

/// Where the events came from, and how many were printed; shown on stderr at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsSummary {
    /// The log group, or the local file.
    pub source: String,
    /// How new events were followed, if they were.
    pub followed: Option<String>,
    /// Events printed.
    pub printed: u64,
}

/// `stream logs`: prints the events since `--since`, then follows with `-f` until Ctrl-C (a normal
/// end: exit code 0). `clients` is None with `--local`, which needs no AWS.
pub async fn run(
    args: &LogsArgs,
    format: Output,
    stack_name: &str,
    region: &str,
    clients: Option<&Clients>,
    shutdown: Shutdown,
) -> Result<LogsSummary, Error> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let since_ms = (args.since.unwrap_or(now - DEFAULT_SINCE_S) * 1000.0) as i64;
    let mut printer = Printer::new(format);
    let result = match clients {
        Some(clients) if !args.local => {
            cloud::run(clients, stack_name, since_ms, args.filter.as_deref(), args.follow, &mut printer, &shutdown)
                .await
        }
        _ => {
            let pattern = pattern::parse(args.filter.as_deref().unwrap_or_default()).map_err(|why| {
                Error::usage(
                    format!("--filter {:?} {why}", args.filter.as_deref().unwrap_or_default()),
                    "with --local give terms, \"phrases\", ?either, -not or %regex%; or leave out --local",
                )
            })?;
            let path = sandbox::state_dir(args.state_dir.as_deref(), region, stack_name)?.join(LOG_FILE);
            file::run(&path, since_ms, &pattern, args.follow, &mut printer, &shutdown).await
        }
    };
    let mut summary = match result {
        Err(e) if e.is_broken_pipe() => return Ok(LogsSummary { source: String::new(), followed: None, printed: 0 }),
        other => other?,
    };
    summary.printed = printer.printed;
    match printer.finish() {
        Err(e) if !e.is_broken_pipe() => return Err(e),
        _ => {}
    }
    let how = summary.followed.as_deref().map(|f| format!(", followed by {f}")).unwrap_or_default();
    progress::status(format!("stream logs: {} events from {}{how}", summary.printed, summary.source));
    Ok(summary)
}
