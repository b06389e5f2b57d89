//! The counts of a `stream local` run, kept in one place: updated by the shard tasks and by the
//! function's log reader (its metrics lines), read as one `Counts` by the live line and the summary.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::mapping::Verdict;
use crate::sandbox::Outcome;

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
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
    /// Items not written because the table held a newer version (ordered schemas).
    pub superseded: u64,
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
    /// Most invocations in flight at once (shards × ParallelizationFactor at most).
    pub peak_concurrency: u64,
    /// Records given up (retries exhausted or too old).
    pub skipped: u64,
    /// On-failure records sent.
    pub on_failure_records: u64,
    /// Records the mapping's FilterCriteria dropped (checkpointed past, never invoked).
    pub filtered: u64,
    /// GetRecords calls throttled (the shard's five reads a second are shared): backed off.
    pub read_throttles: u64,
}

/// The counts as they are updated, plus each shard's lag and the problems already reported.
#[derive(Default)]
pub struct Stats {
    records: AtomicU64,
    invocations: AtomicU64,
    deliveries: AtomicU64,
    written: AtomicU64,
    duplicates: AtomicU64,
    superseded: AtomicU64,
    quarantined: AtomicU64,
    retries: AtomicU64,
    bisections: AtomicU64,
    function_errors: AtomicU64,
    timeouts: AtomicU64,
    crashes: AtomicU64,
    skipped: AtomicU64,
    on_failure: AtomicU64,
    filtered: AtomicU64,
    read_throttles: AtomicU64,
    inflight: AtomicU64,
    peak: AtomicU64,
    lag: Mutex<BTreeMap<String, i64>>,
    errors: Mutex<Vec<String>>,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    /// The counts now.
    pub fn snapshot(&self) -> Counts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            records: get(&self.records),
            invocations: get(&self.invocations),
            deliveries: get(&self.deliveries),
            written: get(&self.written),
            duplicates: get(&self.duplicates),
            superseded: get(&self.superseded),
            quarantined: get(&self.quarantined),
            retries: get(&self.retries),
            bisections: get(&self.bisections),
            function_errors: get(&self.function_errors),
            timeouts: get(&self.timeouts),
            crashes: get(&self.crashes),
            peak_concurrency: get(&self.peak),
            skipped: get(&self.skipped),
            on_failure_records: get(&self.on_failure),
            filtered: get(&self.filtered),
            read_throttles: get(&self.read_throttles),
        }
    }

    /// Each shard's lag behind the stream's tip, in milliseconds.
    pub fn lags(&self) -> BTreeMap<String, i64> {
        self.lag.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
        add(&self.invocations, 1);
        match outcome {
            Outcome::Response(_) => {}
            Outcome::Timeout => add(&self.timeouts, 1),
            Outcome::Crash(why) => {
                add(&self.crashes, 1);
                tracing::warn!("function crashed: {why}");
            }
            Outcome::InitError(why) => self.error(format!("the function failed to start: {why}")),
            Outcome::Error { error_type, message } => tracing::warn!("function error {error_type}: {message}"),
        }
        if outcome.is_function_error() {
            add(&self.function_errors, 1);
        }
        if *verdict == Verdict::Bisect {
            add(&self.bisections, 1);
        }
    }

    /// A batch goes round again.
    pub fn retry(&self) {
        add(&self.retries, 1);
    }

    /// Records handed to the function; one more invocation in flight.
    pub fn delivered(&self, n: usize) {
        add(&self.deliveries, n as u64);
        let now = self.inflight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// An invocation is over.
    pub fn returned(&self) {
        self.inflight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Records the filters dropped.
    pub fn filtered(&self, n: usize) {
        add(&self.filtered, n as u64);
    }

    /// A GetRecords call was throttled.
    pub fn read_throttled(&self) {
        add(&self.read_throttles, 1);
    }

    /// Records done.
    pub fn records_done(&self, n: usize) {
        add(&self.records, n as u64);
    }

    /// Records given up; one on-failure record.
    pub fn skipped(&self, n: usize) {
        add(&self.skipped, n as u64);
        add(&self.on_failure, 1);
    }

    /// Reads the counts out of the function's metrics line (CloudWatch embedded metric format).
    pub fn metrics_line(&self, line: &str) {
        if !line.contains("\"_aws\"") {
            return;
        }
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else { return };
        for (name, counter) in [
            ("Written", &self.written),
            ("DuplicatesDropped", &self.duplicates),
            ("Superseded", &self.superseded),
            ("Quarantined", &self.quarantined),
        ] {
            add(counter, doc[name].as_f64().unwrap_or(0.0) as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_lines_feed_the_counts_and_others_do_not() {
        let s = Stats::default();
        s.metrics_line(r#"{"_aws":{},"Written":7,"DuplicatesDropped":2,"Quarantined":1,"Superseded":3}"#);
        s.metrics_line(r#"{"level":"INFO","message":"batch done","Written":100}"#);
        s.metrics_line("not json \"_aws\"");
        let c = s.snapshot();
        assert_eq!((c.written, c.duplicates, c.quarantined, c.superseded), (7, 2, 1, 3));
    }

    #[test]
    fn peak_concurrency_is_the_most_in_flight_at_once() {
        let s = Stats::default();
        s.delivered(10);
        s.delivered(5);
        s.returned();
        s.delivered(1);
        s.returned();
        s.returned();
        let c = s.snapshot();
        assert_eq!((c.deliveries, c.peak_concurrency), (16, 2));
    }
}
