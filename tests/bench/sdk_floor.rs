//! The AWS SDK's own floor for `scripts/bench` (issue 21): nothing but the SDK calls of our two hot
//! paths — PutRecords of 500 records of ~400 B, BatchWriteItem of 25 tweet items as the handler
//! writes them — against AWS_ENDPOINT_URL (tests/bench/null_endpoint.py, which answers at once),
//! requests built before the clock starts, on a current-thread runtime, the SDK's default settings.
//! Our figures are read as ratios to these. With `--data FILE` the PutRecords records are FILE's
//! lines in turn (tests/bench/produce_bench.py passes the file its row's `stream produce` reads, so
//! both send the same records); without it, one record of 400 B. A cargo example, built with the
//! shipped binary's release profile; not part of that binary.
//!   sdk_floor putrecords --shards N [--records M] [--paced] [--data FILE]
//!                                                       floor PutRecords shards=N: X.XX us/record
//!   sdk_floor batchwriteitem --in-flight K [--items M]  floor BatchWriteItem in-flight=K: X.XX us/item
#![forbid(unsafe_code)]

use std::process::ExitCode;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::operation::batch_write_item::builders::BatchWriteItemFluentBuilder;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use aws_sdk_kinesis::operation::put_records::builders::PutRecordsFluentBuilder;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use futures::StreamExt;
use md5::{Digest, Md5};
use stream::schema::Schema;
use stream::synthetic::Synthetic;

/// Records per PutRecords call (the API's maximum, what our producer sends).
const RECORDS_PER_CALL: usize = 500;
/// Bytes of data per Kinesis record.
const RECORD_BYTES: usize = 400;
/// PutRecords calls in flight at once.
const PUT_IN_FLIGHT: usize = 4;
/// Items per BatchWriteItem call (the API's maximum, what the handler sends).
const ITEMS_PER_CALL: usize = 25;
/// Each figure is the median of this many measured segments.
const RUNS: usize = 3;
/// With --paced, one call of 500 records per shard every half second: 1,000 records/s, a shard's
/// limit, the pace `stream produce` keeps a shard's writes to (src/produce/delivery.rs, `Pace`).
const PACED_CALL_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// CPU time of this process so far (user + system, every thread, live or ended), in µs.
fn cpu_us() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage of this process");
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e6 + t.tv_usec() as f64;
    us(usage.user_time()) + us(usage.system_time())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What to measure, from the command line.
enum Mode {
    PutRecords { shards: usize, records: usize, paced: bool, data: Option<std::path::PathBuf> },
    BatchWriteItem { in_flight: usize, items: usize },
}

fn parse(args: &[String]) -> Result<Mode, String> {
    let flag = |name: &str, default: usize| -> Result<usize, String> {
        match args.iter().position(|a| a == name) {
            None => Ok(default),
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .filter(|&v: &usize| v > 0)
                .ok_or_else(|| format!("{name} takes a number above 0")),
        }
    };
    match args.first().map(String::as_str) {
        Some("putrecords") => {
            let paced = args.iter().any(|a| a == "--paced");
            let data = match args.iter().position(|a| a == "--data") {
                None => None,
                Some(i) => Some(args.get(i + 1).ok_or("--data takes a JSON-lines file")?.into()),
            };
            Ok(Mode::PutRecords { shards: flag("--shards", 1)?, records: flag("--records", 20_000)?, paced, data })
        }
        Some("batchwriteitem") => {
            Ok(Mode::BatchWriteItem { in_flight: flag("--in-flight", 4)?, items: flag("--items", 10_000)? })
        }
        _ => Err("the first argument is putrecords or batchwriteitem".into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match parse(&args) {
        Ok(m) => m,
        Err(what) => {
            eprintln!("sdk_floor: error: {what}");
            eprintln!(
                "hint: sdk_floor putrecords --shards N [--records M] [--paced] [--data FILE] | batchwriteitem --in-flight K [--items M], \
                 with AWS_ENDPOINT_URL at the null endpoint"
            );
            return ExitCode::from(2);
        }
    };
    // One thread, as the handler runs: the calls and the HTTP client share it.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    let config = rt.block_on(aws_config::defaults(BehaviorVersion::latest()).http_client(http).load());
    match mode {
        Mode::PutRecords { shards, records, paced, data } => {
            let client = aws_sdk_kinesis::Client::new(&config);
            let keys = shard_keys(shards);
            let calls = records.div_ceil(RECORDS_PER_CALL);
            let data = match data.map(|path| lines(&path)).unwrap_or_else(|| Ok(vec![record_of_400_bytes()])) {
                Ok(d) => d,
                Err(what) => {
                    eprintln!("sdk_floor: error: {what}");
                    eprintln!(
                        "hint: give --data a readable file of JSON lines (the records `stream produce --file` sends)"
                    );
                    return ExitCode::from(2);
                }
            };
            let build = || put_calls(&client, &keys, &data, calls);
            let us = if paced {
                measure_paced(&rt, build, shards, calls * RECORDS_PER_CALL)
            } else {
                measure(&rt, build, PUT_IN_FLIGHT, calls * RECORDS_PER_CALL)
            };
            println!("floor PutRecords shards={shards}{}: {us:.2} us/record", if paced { " paced" } else { "" });
        }
        Mode::BatchWriteItem { in_flight, items } => {
            let client = aws_sdk_dynamodb::Client::new(&config);
            let calls = items.div_ceil(ITEMS_PER_CALL);
            let mut tweets = Synthetic::new(Some(99));
            let build = || write_calls(&client, &mut tweets, calls);
            let us = measure(&rt, build, in_flight, calls * ITEMS_PER_CALL);
            println!("floor BatchWriteItem in-flight={in_flight}: {us:.2} us/item");
        }
    }
    ExitCode::SUCCESS
}

/// One call's request, built and waiting to be sent.
trait Call {
    /// Sends it; panics unless every record or item was taken (the null endpoint takes all).
    fn send(self) -> impl Future<Output = ()>;
}

impl Call for PutRecordsFluentBuilder {
    async fn send(self) {
        let out = PutRecordsFluentBuilder::send(self).await.expect("PutRecords on the null endpoint");
        assert_eq!(out.failed_record_count(), Some(0), "every record taken");
    }
}

impl Call for BatchWriteItemFluentBuilder {
    async fn send(self) {
        let out = BatchWriteItemFluentBuilder::send(self).await.expect("BatchWriteItem on the null endpoint");
        assert!(out.unprocessed_items().is_none_or(|m| m.is_empty()), "every item taken");
    }
}

/// CPU µs per record of sending what `build` makes, `in_flight` calls at once: one warm-up segment
/// (connections, credentials, the allocator's first pages: what init costs), then `RUNS` measured
/// segments; their median.
fn measure<C: Call>(
    rt: &tokio::runtime::Runtime,
    build: impl FnMut() -> Vec<C>,
    in_flight: usize,
    records: usize,
) -> f64 {
    let send = |calls: Vec<C>| {
        rt.block_on(futures::stream::iter(calls).map(C::send).buffer_unordered(in_flight).collect::<()>())
    };
    per_record(build, send, None, RUNS, records)
}

/// As `measure`, but each shard's calls one at a time, a call every `PACED_CALL_EVERY` (the calls
/// take the shards in turn, see `put_calls`), as `stream produce` sends at a shard's limit: the run
/// is mostly waiting, and what waking for each call costs counts too. One warm-up call per shard,
/// then one measured segment (it lasts as long as its records take at that pace; `produce_bench.py`
/// runs this in turn with its own runs and takes the median).
fn measure_paced(
    rt: &tokio::runtime::Runtime,
    build: impl FnMut() -> Vec<PutRecordsFluentBuilder>,
    shards: usize,
    records: usize,
) -> f64 {
    let send = |calls: Vec<PutRecordsFluentBuilder>| {
        let mut lanes: Vec<Vec<PutRecordsFluentBuilder>> = (0..shards).map(|_| Vec::new()).collect();
        for (c, call) in calls.into_iter().enumerate() {
            lanes[c % shards].push(call);
        }
        rt.block_on(async {
            let start = tokio::time::Instant::now();
            futures::future::join_all(lanes.into_iter().map(|lane| async move {
                for (k, call) in lane.into_iter().enumerate() {
                    tokio::time::sleep_until(start + PACED_CALL_EVERY * k as u32).await;
                    Call::send(call).await;
                }
            }))
            .await;
        });
    };
    per_record(build, send, Some(shards), 1, records)
}

/// Warms up by `send`ing the first `warm_up` calls of a segment (all of it with None), then `runs`
/// segments of `records` each, built before its clock starts, each (CPU after − CPU before) /
/// records, so init is excluded; their median.
fn per_record<C>(
    mut build: impl FnMut() -> Vec<C>,
    send: impl Fn(Vec<C>),
    warm_up: Option<usize>,
    runs: usize,
    records: usize,
) -> f64 {
    let warm = build();
    send(match warm_up {
        Some(n) => warm.into_iter().take(n).collect(),
        None => warm,
    });
    let runs = (0..runs)
        .map(|_| {
            let calls = build();
            let before = cpu_us();
            send(calls);
            (cpu_us() - before) / records as f64
        })
        .collect();
    median(runs)
}

/// For each of `shards` shards (the null endpoint splits the hash key space evenly, as CreateStream
/// does), partition keys whose MD5 falls in its range, so calls can go to one shard each.
fn shard_keys(shards: usize) -> Vec<Vec<String>> {
    let width = u128::MAX / shards as u128;
    let mut keys = vec![Vec::new(); shards];
    let mut n = 0u64;
    while keys.iter().any(|k| k.len() < RECORDS_PER_CALL) {
        let key = format!("user-{n}");
        n += 1;
        let hash = u128::from_be_bytes(Md5::digest(key.as_bytes()).into());
        let shard = ((hash / width) as usize).min(shards - 1);
        if keys[shard].len() < RECORDS_PER_CALL {
            keys[shard].push(key);
        }
    }
    keys
}

/// The data of the default records: one tweet-shaped JSON document of `RECORD_BYTES`.
fn record_of_400_bytes() -> bytes::Bytes {
    let head = br#"{"id_str":"1","text":""#;
    let pad = RECORD_BYTES - head.len() - 2;
    head.iter().copied().chain(std::iter::repeat_n(b'x', pad)).chain(*b"\"}").collect::<Vec<u8>>().into()
}

/// The non-empty lines of `path`, each a slice of one buffer (as `stream produce --file` holds the
/// records it reads): with --data the floor sends the records our rows send, each its own bytes.
fn lines(path: &std::path::Path) -> Result<Vec<bytes::Bytes>, String> {
    let text = bytes::Bytes::from(std::fs::read(path).map_err(|e| format!("--data {}: {e}", path.display()))?);
    let mut out = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', &text).chain([text.len()]) {
        if end > start {
            out.push(text.slice(start..end));
        }
        start = end + 1;
    }
    if out.is_empty() {
        return Err(format!("--data {}: no records in it", path.display()));
    }
    Ok(out)
}

/// `calls` PutRecords requests of 500 records, each call's records in one shard, the calls taking
/// the shards in turn (as a producer keeping one request per shard in flight); the records' data
/// is `data`'s, in turn.
fn put_calls(
    client: &aws_sdk_kinesis::Client,
    keys: &[Vec<String>],
    data: &[bytes::Bytes],
    calls: usize,
) -> Vec<PutRecordsFluentBuilder> {
    let mut next = data.iter().cycle();
    (0..calls)
        .map(|c| {
            let entries = keys[c % keys.len()]
                .iter()
                .zip(next.by_ref())
                .map(|(k, d)| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(k)
                        .data(Blob::from_maybe_shared(d.clone()))
                        .build()
                        .expect("an entry with key and data")
                })
                .collect();
            client.put_records().stream_name("floor").set_records(Some(entries))
        })
        .collect()
}

/// `calls` BatchWriteItem requests of 25 items, each the item the tweets schema makes of the next
/// synthetic tweet (Username, Id, Timestamp, Message: what the handler writes).
fn write_calls(
    client: &aws_sdk_dynamodb::Client,
    tweets: &mut Synthetic,
    calls: usize,
) -> Vec<BatchWriteItemFluentBuilder> {
    let schema = Schema::tweets();
    (0..calls)
        .map(|_| {
            let requests = (0..ITEMS_PER_CALL)
                .map(|_| {
                    let item = schema.item(&tweets.next_tweet().to_bytes()).expect("a synthetic tweet makes an item");
                    let put = PutRequest::builder().set_item(Some(item.attributes(schema.attribute_names())));
                    WriteRequest::builder().put_request(put.build().expect("a put with its item")).build()
                })
                .collect();
            client.batch_write_item().request_items("floor", requests)
        })
        .collect()
}
