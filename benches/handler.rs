//! `scripts/bench`: what the function costs. Prints, for batches of 100, 1,000 and 10,000 records:
//! CPU microseconds per record of this process and records per second, against an in-memory store
//! (network removed) and against moto (DynamoDB over HTTP); then the shipped static binary in Lambda
//! mode under `stream local`'s Runtime API: init time (process start to its first `next` request),
//! the invocation of a 10,000-record batch, and its peak RSS.
//! Needs AWS_ENDPOINT_URL (moto) and STREAM_STATIC_BIN for the parts beyond the in-memory store.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use base64::Engine;
use stream::aws::{AwsArgs, RetryMode, load_config};
use stream::process::{BatchOutcome, DynamoStore, Event, MemoryStore, Options, Record, Store, handle_batch};
use stream::produce::source::Synthetic;
use stream::sandbox::{Environment, FunctionSpec, Outcome};

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
    let warm = rt.block_on(handle_batch(event, store, &opts));
    assert!(warm.response.batch_item_failures.is_empty() && warm.fatal.is_none(), "warm-up batch failed");
    let (cpu0, wall0) = (thread_cpu_ns(), Instant::now());
    for _ in 0..iterations {
        let BatchOutcome { response, stats, fatal } = rt.block_on(handle_batch(event, store, &opts));
        assert!(response.batch_item_failures.is_empty() && fatal.is_none() && stats.written == event.records.len());
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
        rt.block_on(lambda_mode(&bin, &endpoint, table));
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

/// The shipped binary as Lambda runs it: `stream local`'s Runtime API hands it one 10,000-record
/// event. No figure is printed unless the invocation succeeded.
async fn lambda_mode(bin: &str, endpoint: &str, table: &str) {
    let dir = std::path::Path::new(bin).parent().unwrap_or(std::path::Path::new("/")).to_path_buf();
    let env = [
        ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("TABLE_NAME", table),
        ("RUST_LOG", "warn"),
    ];
    let spec = Arc::new(FunctionSpec {
        bootstrap: bin.into(),
        task_root: dir,
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        function_arn: "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
        credentials: None,
        memory_mb: None,
        init_timeout: stream::sandbox::INIT_TIMEOUT,
        timeout: Duration::from_secs(300),
        log: Arc::new(|_: &str| {}),
        starts: AtomicU64::new(0),
    });
    let mut environment = Environment::new(spec).await.expect("a Runtime API on loopback");
    let body = bytes::Bytes::from(serde_json::to_vec(&event(10_000, 99)).expect("event json"));
    let started = Instant::now();
    let outcome = environment.invoke(body).await;
    let took = started.elapsed();
    // Read the peak RSS while the function waits for its next invocation.
    let rss = environment.pid().and_then(|pid| status_kb(&pid.to_string(), "VmHWM:")).unwrap_or(0);
    let init = environment.init_duration();
    environment.stop().await;
    let Outcome::Response(answer) = &outcome else {
        panic!("the 10,000-record invocation failed: {outcome:?}");
    };
    assert_eq!(&answer[..], br#"{"batchItemFailures":[]}"#, "the invocation wrote every record");
    let init = init.expect("the function asked for an invocation");
    println!("static binary in Lambda mode ({bin})");
    println!("  init, process start to first `next`: {:.1} ms", init.as_secs_f64() * 1000.0);
    // The invocation is timed from the event handed over, so init is not in it.
    let invocation = took.saturating_sub(init);
    println!(
        "  one 10,000-record invocation against moto: {:.0} ms ({:.0} records/s)",
        invocation.as_secs_f64() * 1000.0,
        10_000.0 / invocation.as_secs_f64()
    );
    println!("  peak RSS of the function process: {rss} kB");
}
