//! `scripts/bench`: what the function costs. Prints, for batches of 100, 1,000 and 10,000 records:
//! CPU microseconds per record of this process and records per second, against an in-memory store
//! (network removed) and against moto (DynamoDB over HTTP); then the shipped static binary in Lambda
//! mode under a minimal Runtime API: init time (process start to its first `next` request), the
//! invocation of a 10,000-record batch, and its peak RSS.
//! Needs AWS_ENDPOINT_URL (moto) and STREAM_STATIC_BIN for the parts beyond the in-memory store.
#![forbid(unsafe_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use stream::aws::{AwsArgs, RetryMode, load_config};
use stream::process::{DynamoStore, Event, MemoryStore, Options, Record, Store, handle_batch};
use stream::produce::source::Synthetic;

#[path = "../tests/common/runtime_api.rs"]
mod runtime_api;

/// CPU time of the calling thread, from the kernel's scheduler statistics (nanoseconds).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A value from /proc/<pid>/status, in kB.
fn status_kb(pid: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(field)?.trim().trim_end_matches(" kB").trim().parse().ok())
}

fn event(n: usize, seed: u64) -> Event {
    let mut tweets = Synthetic::new(Some(seed));
    let records = (0..n)
        .map(|i| {
            let t = tweets.next_tweet();
            let mut r = Record::default();
            r.kinesis.partition_key = t.user.screen_name.clone();
            r.kinesis.sequence_number = format!("{i:020}");
            r.kinesis.data = base64::engine::general_purpose::STANDARD.encode(t.to_bytes());
            r.kinesis.approximate_arrival_timestamp = 1_700_000_000.0;
            r.event_id = format!("shardId-000000000000:{i:020}");
            r
        })
        .collect();
    Event { records }
}

struct Figures {
    cpu_us_per_record: f64,
    records_per_s: f64,
}

/// Runs the handler `iterations` times over `event` and returns the mean cost.
fn measure<S: Store>(rt: &tokio::runtime::Runtime, event: &Event, store: &S, iterations: usize) -> Figures {
    let opts = Options::within(Duration::from_secs(900));
    // One warm-up run: connections, allocator, page faults.
    let (resp, _, _) = rt.block_on(handle_batch(event, store, &opts));
    assert!(resp.batch_item_failures.is_empty(), "warm-up batch failed");
    let (cpu0, wall0) = (thread_cpu_ns(), Instant::now());
    for _ in 0..iterations {
        let (resp, stats, _) = rt.block_on(handle_batch(event, store, &opts));
        assert!(resp.batch_item_failures.is_empty() && stats.written == event.records.len());
    }
    let records = (iterations * event.records.len()) as f64;
    Figures {
        cpu_us_per_record: (thread_cpu_ns() - cpu0) as f64 / 1000.0 / records,
        records_per_s: records / wall0.elapsed().as_secs_f64(),
    }
}

fn main() {
    // One thread: every CPU cycle of the handler (and of the SDK's HTTP client) is counted on it.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
    let moto = endpoint.as_ref().map(|_| {
        rt.block_on(async {
            let config = load_config(&AwsArgs::default(), RetryMode::Standard).await;
            let client = aws_sdk_dynamodb::Client::new(&config);
            let table = format!("bench-{}", std::process::id());
            create_table(&client, &table).await;
            (DynamoStore::new(client, &table, None), table)
        })
    });

    println!("handler (release build, one thread)        CPU µs/record   records/s");
    for n in [100, 1_000, 10_000] {
        let ev = event(n, n as u64);
        let mem = measure(&rt, &ev, &MemoryStore::default(), (200_000 / n).max(5));
        println!(
            "  {n:>6} records, in-memory store        {:>12.2}   {:>9.0}",
            mem.cpu_us_per_record, mem.records_per_s
        );
        if let Some((store, _)) = &moto {
            let m = measure(&rt, &ev, store, (10_000 / n).clamp(1, 5));
            println!(
                "  {n:>6} records, DynamoDB on moto        {:>12.2}   {:>9.0}",
                m.cpu_us_per_record, m.records_per_s
            );
        }
    }
    println!("  peak RSS of this benchmark process: {} kB", status_kb("self", "VmHWM:").unwrap_or(0));

    if let (Some(endpoint), Some(bin), Some((_, table))) = (endpoint, std::env::var("STREAM_STATIC_BIN").ok(), &moto) {
        lambda_mode(&bin, &endpoint, table);
    } else {
        println!("(set AWS_ENDPOINT_URL and STREAM_STATIC_BIN to measure the static binary in Lambda mode)");
    }
}

async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::*;
    let attr =
        |n: &str| AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build();
    let key = |n: &str, t| KeySchemaElement::builder().attribute_name(n).key_type(t).build();
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("Username").expect("attr"))
        .attribute_definitions(attr("Id").expect("attr"))
        .key_schema(key("Username", KeyType::Hash).expect("key"))
        .key_schema(key("Id", KeyType::Range).expect("key"))
        .send()
        .await
        .expect("create bench table on moto");
}

/// The shipped binary as Lambda runs it: a minimal Runtime API hands it one 10,000-record event.
fn lambda_mode(bin: &str, endpoint: &str, table: &str) {
    let (api, done) = runtime_api::serve_one(serde_json::to_vec(&event(10_000, 99)).expect("event json"));
    let child = Command::new(bin)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("TABLE_NAME", table)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn();
    let mut child = child.expect("start the static binary");
    let exchange = done.recv_timeout(Duration::from_secs(300));
    // Read the peak RSS while the function waits for its next invocation.
    let rss = status_kb(&child.id().to_string(), "VmHWM:").unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    let exchange = exchange.expect("the function answered");
    println!("static binary in Lambda mode ({bin})");
    println!("  init, process start to first `next`: {:.1} ms", exchange.init.as_secs_f64() * 1000.0);
    println!(
        "  one 10,000-record invocation against moto: {:.0} ms ({:.0} records/s), answered with {} {}",
        exchange.invocation.as_secs_f64() * 1000.0,
        10_000.0 / exchange.invocation.as_secs_f64(),
        exchange.kind,
        String::from_utf8_lossy(&exchange.body)
    );
    println!("  peak RSS of the function process: {rss} kB");
}
