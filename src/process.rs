//! The function: `handle_batch` turns one Kinesis batch into table writes and the batch response
//! Lambda needs; `run_lambda` wires it to the Lambda Runtime API. `stream local` calls the same
//! `handle_batch`. Decoding a record is `tweet`'s job; SDK calls stay in `DynamoStore`.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::KinesisEventResponse;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use lambda_runtime::{LambdaEvent, service_fn};
use rand::Rng;
use serde::Serialize;

use crate::aws::{self, AwsArgs, RetryMode};
use crate::error::Error;
use crate::kpl;
use crate::template::TABLE_ENV;
use crate::tweet::{Item, attr, item_from_payload};

/// DynamoDB BatchWriteItem takes at most 25 requests per call.
pub const MAX_BATCH_WRITE: usize = 25;

/// Attempts of one chunk before its records are reported as failed (UnprocessedItems, throttling).
pub const MAX_WRITE_ATTEMPTS: u32 = 8;

/// Time kept back from the invocation's deadline to send the response.
pub const DEADLINE_RESERVE: Duration = Duration::from_millis(500);

const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// A failed write, as the handler needs to know it.
#[derive(Debug, Clone)]
pub struct StoreError {
    /// Operation, code and message.
    pub message: String,
    /// Worth trying again (throttling, 5xx, timeout) or not (validation, missing table).
    pub retryable: bool,
}

/// Where items go. `DynamoStore` in production; tests and benchmarks may use others.
pub trait Store: Sync {
    /// Writes up to 25 items with distinct keys in one call and returns the keys
    /// (Username, Id) of the items the service left unprocessed.
    fn write_chunk(&self, items: &[&Item]) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;
}

/// The table, through BatchWriteItem.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoStore {
    /// A store writing `table` with `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoStore { client, table: table.into() }
    }
}

/// An item as DynamoDB attributes.
pub fn attributes(item: &Item) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (attr::USERNAME.to_string(), AttributeValue::S(item.username.clone())),
        (attr::ID.to_string(), AttributeValue::S(item.id.clone())),
        (attr::TIMESTAMP.to_string(), AttributeValue::S(item.timestamp.clone())),
        (attr::MESSAGE.to_string(), AttributeValue::S(item.message.clone())),
    ])
}

fn key_of(attrs: &HashMap<String, AttributeValue>) -> Option<(String, String)> {
    let s = |name: &str| attrs.get(name).and_then(|v| v.as_s().ok()).cloned();
    Some((s(attr::USERNAME)?, s(attr::ID)?))
}

impl Store for DynamoStore {
    async fn write_chunk(&self, items: &[&Item]) -> Result<Vec<(String, String)>, StoreError> {
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            let put = PutRequest::builder()
                .set_item(Some(attributes(item)))
                .build()
                .map_err(|e| StoreError { message: format!("building PutRequest: {e}"), retryable: false })?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let out = self.client.batch_write_item().request_items(&self.table, requests).send().await.map_err(|e| {
            let code = e.code().unwrap_or("");
            // Validation and missing-table errors fail every retry the same way.
            let retryable =
                !matches!(code, "ValidationException" | "ResourceNotFoundException" | "AccessDeniedException");
            let err = Error::aws("BatchWriteItem", &self.table, e);
            StoreError { message: err.to_string(), retryable }
        })?;
        let unprocessed = out
            .unprocessed_items
            .and_then(|mut m| m.remove(&self.table))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|w| w.put_request.and_then(|p| key_of(&p.item)))
            .collect();
        Ok(unprocessed)
    }
}

/// What one invocation did, for the summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BatchStats {
    /// Records in the event.
    pub records: usize,
    /// Items written (after duplicates were dropped).
    pub written: usize,
    /// Records dropped because a later record of the batch had the same key.
    pub duplicates: usize,
    /// Records that could not be decoded into an item.
    pub invalid: usize,
    /// Resends of chunks (UnprocessedItems or throttling).
    pub retries: usize,
    /// Records from the first failed one on, which Lambda will deliver again.
    pub not_done: usize,
}

/// Processes one batch: decodes every record in order, writes the items in chunks of 25 with
/// duplicate keys removed (the later record wins), and returns the response Lambda needs.
///
/// Lambda checkpoints at the lowest sequence number reported and delivers everything from it
/// again, so the response names only the first record that did not make it; writing anything past
/// it would be repeated anyway, so the handler stops there.
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html>
pub async fn handle_batch<S: Store>(
    event: &KinesisEvent,
    store: &S,
    deadline: Instant,
) -> (KinesisEventResponse, BatchStats) {
    let records = &event.records;
    let mut stats = BatchStats { records: records.len(), ..Default::default() };

    // Decode up to the first invalid record; the items keep the position of their latest record.
    let mut first_failed: Option<usize> = None;
    let mut items: Vec<(usize, Item)> = Vec::with_capacity(records.len());
    let mut slot: HashMap<(String, String), usize> = HashMap::with_capacity(records.len());
    'records: for (pos, record) in records.iter().enumerate() {
        let data: &[u8] = &record.kinesis.data;
        // KPL aggregates carry many user records under one sequence number: a failure in any of
        // them can only point at the parent. Lambda does not deaggregate; we do.
        let decoded: Result<Vec<Item>, String> = if kpl::is_aggregate(data) {
            kpl::deaggregate(data).map_err(|e| e.to_string()).and_then(|subs| {
                subs.iter().map(|sub| item_from_payload(sub.data).map_err(|e| e.to_string())).collect()
            })
        } else {
            item_from_payload(data).map(|item| vec![item]).map_err(|e| e.to_string())
        };
        match decoded {
            Ok(decoded) => {
                for item in decoded {
                    let key = (item.username.clone(), item.id.clone());
                    if let Some(&i) = slot.get(&key) {
                        items[i] = (pos, item);
                        stats.duplicates += 1;
                    } else {
                        slot.insert(key, items.len());
                        items.push((pos, item));
                    }
                }
            }
            Err(reason) => {
                stats.invalid += 1;
                tracing::warn!(
                    sequence_number = %record.kinesis.sequence_number,
                    partition_key = %record.kinesis.partition_key,
                    %reason,
                    "record cannot be decoded"
                );
                first_failed = Some(pos);
                break 'records;
            }
        }
    }

    for chunk in items.chunks(MAX_BATCH_WRITE) {
        match write_with_retries(store, chunk, deadline, &mut stats).await {
            Ok(()) => stats.written += chunk.len(),
            Err(failed_pos) => {
                first_failed = Some(first_failed.map_or(failed_pos, |f| f.min(failed_pos)));
                break;
            }
        }
    }

    let mut response = KinesisEventResponse::default();
    if let Some(pos) = first_failed {
        stats.not_done = records.len() - pos;
        response.add_failure(records[pos].kinesis.sequence_number.clone());
    }
    (response, stats)
}

/// Writes one chunk, resending what comes back unprocessed with exponential backoff and jitter,
/// within the deadline. On failure returns the lowest batch position among the items not written.
async fn write_with_retries<S: Store>(
    store: &S,
    chunk: &[(usize, Item)],
    deadline: Instant,
    stats: &mut BatchStats,
) -> Result<(), usize> {
    let mut pending: Vec<&(usize, Item)> = chunk.iter().collect();
    for attempt in 0..MAX_WRITE_ATTEMPTS {
        if attempt > 0 {
            let delay = backoff(attempt);
            if Instant::now() + delay + DEADLINE_RESERVE >= deadline {
                tracing::warn!(left = pending.len(), "deadline near: leaving the rest to Lambda's retry");
                break;
            }
            stats.retries += 1;
            tokio::time::sleep(delay).await;
        }
        let refs: Vec<&Item> = pending.iter().map(|(_, item)| item).collect();
        match store.write_chunk(&refs).await {
            Ok(unprocessed) if unprocessed.is_empty() => return Ok(()),
            Ok(unprocessed) => {
                pending.retain(|(_, item)| unprocessed.iter().any(|(u, i)| *u == item.username && *i == item.id));
                tracing::info!(unprocessed = pending.len(), attempt, "BatchWriteItem left items unprocessed");
            }
            Err(e) if e.retryable => {
                tracing::warn!(error = %e.message, attempt, "BatchWriteItem failed; retrying")
            }
            Err(e) => {
                tracing::error!(error = %e.message, "BatchWriteItem failed");
                break;
            }
        }
    }
    Err(pending.iter().map(|(pos, _)| *pos).min().unwrap_or(0))
}

/// Full-jitter exponential backoff: a random delay up to min(cap, base · 2^attempt).
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt.min(16)).min(BACKOFF_CAP);
    let millis = ceiling.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
}

/// Variables the Lambda runtime requires; lambda_runtime panics without them, so check first.
const LAMBDA_VARS: [&str; 3] =
    ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION"];

/// The Lambda bootstrap: builds the client once, then serves invocations until the process ends.
pub async fn run_lambda() -> Result<(), Error> {
    for var in LAMBDA_VARS {
        if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
            return Err(Error::config(
                format!("{var} is not set: this process is not running inside Lambda"),
                "run `stream` as a CLI (without AWS_LAMBDA_RUNTIME_API), or use `stream local`",
            ));
        }
    }
    let table = std::env::var(TABLE_ENV).ok().filter(|t| !t.is_empty()).ok_or_else(|| {
        Error::config(
            format!("{TABLE_ENV} is not set: the function does not know its table"),
            "deploy with `stream deploy`, which sets it from the stack",
        )
    })?;
    init_json_logs();
    let config = aws::load_config(&AwsArgs::default(), RetryMode::Standard).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    let store = &store;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KinesisEvent>| async move {
        let deadline = deadline_instant(event.context.deadline);
        let started = Instant::now();
        let (response, stats) = handle_batch(&event.payload, store, deadline).await;
        tracing::info!(
            records = stats.records,
            written = stats.written,
            duplicates = stats.duplicates,
            invalid = stats.invalid,
            retries = stats.retries,
            not_done = stats.not_done,
            duration_ms = started.elapsed().as_millis() as u64,
            "batch done"
        );
        Ok::<_, lambda_runtime::Error>(response)
    }))
    .await
    .map_err(|e| Error::failed(format!("Lambda runtime failed: {e}"), "see the function's logs"))
}

/// Converts Lambda's deadline (milliseconds since the epoch) into an `Instant`.
pub fn deadline_instant(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

fn init_json_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Lambda adds its own timestamps; CloudWatch reads one JSON object per line.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .with_writer(std::io::stdout)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::kinesis::KinesisEventRecord;
    use std::sync::Mutex;

    /// In-memory store that records every call and can leave items unprocessed or fail calls.
    #[derive(Default)]
    struct MemStore {
        calls: Mutex<Vec<Vec<Item>>>,
        /// Per call index: how many items of the call to leave unprocessed.
        unprocessed: Mutex<HashMap<usize, usize>>,
        fail_calls: Mutex<Vec<usize>>,
    }

    impl Store for MemStore {
        async fn write_chunk(&self, items: &[&Item]) -> Result<Vec<(String, String)>, StoreError> {
            let mut calls = self.calls.lock().expect("lock");
            let n = calls.len();
            calls.push(items.iter().map(|i| (*i).clone()).collect());
            if self.fail_calls.lock().expect("lock").contains(&n) {
                return Err(StoreError { message: "boom".into(), retryable: false });
            }
            let left = self.unprocessed.lock().expect("lock").get(&n).copied().unwrap_or(0);
            Ok(items.iter().rev().take(left).map(|i| (i.username.clone(), i.id.clone())).collect())
        }
    }

    fn record(seq: usize, payload: Vec<u8>) -> KinesisEventRecord {
        let mut r = KinesisEventRecord::default();
        r.kinesis.sequence_number = format!("{seq:05}");
        r.kinesis.partition_key = "pk".into();
        *r.kinesis.data = payload;
        r
    }

    fn tweet(id: usize, user: &str, text: &str) -> Vec<u8> {
        serde_json::json!({
            "id_str": id.to_string(), "created_at": "Wed Oct 10 20:19:24 +0000 2018", "text": text,
            "user": {"name": user, "screen_name": user, "id_str": "1"}
        })
        .to_string()
        .into_bytes()
    }

    fn event(records: Vec<KinesisEventRecord>) -> KinesisEvent {
        let mut e = KinesisEvent::default();
        e.records = records;
        e
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn batch_is_written_in_chunks_of_25() {
        let store = MemStore::default();
        let ev = event((0..60).map(|i| record(i, tweet(i, "u", "t"))).collect());
        let (resp, stats) = handle_batch(&ev, &store, far()).await;
        assert!(resp.batch_item_failures.is_empty());
        let sizes: Vec<usize> = store.calls.lock().expect("lock").iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![25, 25, 10]);
        assert_eq!(stats.written, 60);
    }

    #[tokio::test]
    async fn duplicate_keys_are_written_once_and_the_later_wins() {
        let store = MemStore::default();
        let ev = event(vec![
            record(1, tweet(7, "u", "first")),
            record(2, tweet(8, "u", "other")),
            record(3, tweet(7, "u", "second")),
        ]);
        let (resp, stats) = handle_batch(&ev, &store, far()).await;
        assert!(resp.batch_item_failures.is_empty());
        let calls = store.calls.lock().expect("lock");
        assert_eq!(calls.len(), 1);
        let written: Vec<(&str, &str)> = calls[0].iter().map(|i| (i.id.as_str(), i.message.as_str())).collect();
        assert_eq!(written, vec![("7", "second"), ("8", "other")]);
        assert_eq!(stats.duplicates, 1);
    }

    #[tokio::test]
    async fn kpl_aggregates_are_deaggregated_and_a_bad_one_reports_its_parent() {
        let store = MemStore::default();
        let (t1, t2, t3) = (tweet(1, "u", "a"), tweet(2, "v", "b"), tweet(3, "w", "c"));
        let good = kpl::aggregate([("u", t1.as_slice()), ("v", t2.as_slice())]);
        let bad_inside = kpl::aggregate([("w", t3.as_slice()), ("x", b"not json".as_slice())]);
        let ev = event(vec![record(1, good), record(2, bad_inside), record(3, tweet(4, "z", "d"))]);
        let (resp, stats) = handle_batch(&ev, &store, far()).await;
        assert_eq!(resp.batch_item_failures[0].item_identifier.as_deref(), Some("00002"));
        let calls = store.calls.lock().expect("lock");
        assert_eq!(calls[0].iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec!["1", "2"]);
        assert_eq!(stats.invalid, 1);
    }

    #[tokio::test]
    async fn unprocessed_items_are_resent_alone() {
        let store = MemStore::default();
        store.unprocessed.lock().expect("lock").insert(0, 3);
        let ev = event((0..10).map(|i| record(i, tweet(i, "u", "t"))).collect());
        let (resp, stats) = handle_batch(&ev, &store, far()).await;
        assert!(resp.batch_item_failures.is_empty());
        let calls = store.calls.lock().expect("lock");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec!["7", "8", "9"]);
        assert_eq!(stats.retries, 1);
    }

    #[tokio::test]
    async fn failed_chunk_reports_its_first_record_and_stops() {
        let store = MemStore::default();
        store.fail_calls.lock().expect("lock").push(1);
        let ev = event((0..60).map(|i| record(i, tweet(i, "u", "t"))).collect());
        let (resp, stats) = handle_batch(&ev, &store, far()).await;
        let ids: Vec<_> = resp.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
        assert_eq!(ids, vec![Some("00025".to_string())]);
        assert_eq!(store.calls.lock().expect("lock").len(), 2, "no chunk after the failed one");
        assert_eq!(stats.written, 25);
        assert_eq!(stats.not_done, 35);
    }

    #[tokio::test]
    async fn undecodable_record_is_reported_after_writing_what_precedes_it() {
        let store = MemStore::default();
        let ev = event(vec![
            record(1, tweet(1, "u", "ok")),
            record(2, b"\xff not utf8".to_vec()),
            record(3, tweet(3, "u", "after")),
        ]);
        let (resp, stats) = handle_batch(&ev, &store, far()).await;
        assert_eq!(resp.batch_item_failures[0].item_identifier.as_deref(), Some("00002"));
        assert_eq!(resp.batch_item_failures.len(), 1);
        assert_eq!(store.calls.lock().expect("lock")[0].len(), 1);
        assert_eq!(stats.invalid, 1);
    }

    #[tokio::test]
    async fn items_left_unprocessed_near_the_deadline_are_reported() {
        let store = MemStore::default();
        store.unprocessed.lock().expect("lock").extend((0..10).map(|n| (n, 1)));
        let ev = event((0..5).map(|i| record(i, tweet(i, "u", "t"))).collect());
        let (resp, _) = handle_batch(&ev, &store, Instant::now() + Duration::from_millis(100)).await;
        // The last item of the chunk (position 4) stays unprocessed; there is no time to resend it.
        assert_eq!(resp.batch_item_failures[0].item_identifier.as_deref(), Some("00004"));
    }

    /// DynamoStore sends one BatchWriteItem per chunk and hands back the keys DynamoDB left unprocessed.
    #[tokio::test]
    async fn dynamo_store_returns_unprocessed_keys() {
        use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let item = |id: &str| Item { username: "u".into(), id: id.into(), timestamp: "t".into(), message: "m".into() };
        let (a, b) = (item("1"), item("2"));
        let left = WriteRequest::builder()
            .put_request(PutRequest::builder().set_item(Some(attributes(&b))).build().expect("put"))
            .build();
        let rule = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .match_requests(|r| r.request_items().and_then(|m| m.get("T")).is_some_and(|reqs| reqs.len() == 2))
            .then_output(move || BatchWriteItemOutput::builder().unprocessed_items("T", vec![left.clone()]).build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
        let store = DynamoStore::new(client, "T");
        let unprocessed = store.write_chunk(&[&a, &b]).await.expect("call succeeds");
        assert_eq!(unprocessed, vec![("u".to_string(), "2".to_string())]);
        assert_eq!(rule.num_calls(), 1);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..30 {
            let d = backoff(attempt);
            assert!(d <= BACKOFF_CAP, "{d:?}");
        }
        assert!(backoff(1) <= Duration::from_millis(100));
    }

    #[test]
    fn response_serializes_as_lambda_expects() {
        let mut resp = KinesisEventResponse::default();
        resp.add_failure("4959");
        assert_eq!(serde_json::to_string(&resp).expect("json"), r#"{"batchItemFailures":[{"itemIdentifier":"4959"}]}"#);
    }
}
