//! `scripts/bench`: what the function costs, beside its targets and a same-run baseline. One
//! 10,000-record event (the same bytes for every row) is handed to the handler as Lambda hands it
//! (the JSON body, parsed per invocation) against an in-memory store (network removed), DynamoDB on
//! moto, and a loopback null endpoint that answers BatchWriteItem at once (tests/bench/null_endpoint.py,
//! started here); the baseline is the 2017 function's logic in Node.js with the AWS SDK v3
//! (tests/bench/node) over the same event file, against the same endpoints. Every moto configuration
//! writes to a fresh table. Then the shipped static binary in Lambda mode under `stream local`'s
//! Runtime API: init (process start to its first `next`), one 10,000-record invocation, its CPU and
//! its peak RSS. CPU is user + system time of the process (every thread), the median of 3 runs.
//! Needs AWS_ENDPOINT_URL (moto) and STREAM_STATIC_BIN for the parts beyond the in-memory store.
//! Last, the shipped binary against the SDK's own BatchWriteItem floor (issue 21; tests/bench/sdk_floor.rs,
//! run in turn with ours when SDK_FLOOR_BIN names it, as scripts/bench does), and on an event of
//! full-size v1.1 tweets near 6 MB: peak RSS and CPU.
//! HANDLER_BENCH_ONLY=memory|moto|null|full runs only that configuration of ours, in a loop, for a
//! profiler; HANDLER_BENCH_ONLY=lambda only the rows against the floor.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use stream::aws::{AwsArgs, RetryMode, load_config};
use stream::process::{
    Batch, BatchOutcome, DEFAULT_WRITE_CONCURRENCY, DynamoStore, Event, MemoryStore, Options, Record, Store, handle,
};
use stream::produce::source::Synthetic;
use stream::sandbox::{Environment, FunctionSpec, Outcome};
use stream::schema::Schema;
use stream::synthetic::{Events, Kind};
use stream::tweet::Tweet;

/// Records in the event every figure is measured on.
const RECORDS: usize = 10_000;
/// Targets of issue 13.
const TARGET_CPU_US: f64 = 8.0;
const TARGET_RATIO: f64 = 0.10;
const TARGET_INIT_MS: f64 = 10.0;
const TARGET_RSS_MB: f64 = 30.0;
/// Each figure is the median of this many runs.
const RUNS: usize = 3;
/// Issue 21: the handler's CPU per record at most this many times the SDK's BatchWriteItem floor.
const TARGET_FLOOR_RATIO: f64 = 1.2;
/// The full-size event is filled with records up to this many bytes of JSON: near Lambda's 6 MB
/// invocation payload limit, under it either way it is counted.
/// <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>
const FULL_EVENT_BYTES: usize = 6_000_000;
/// The largest event Lambda delivers (6 MB, counted in MiB, the larger reading): issue 13's
/// peak-RSS target holds on events Lambda can send, so a larger event's row prints without it.
const LAMBDA_EVENT_LIMIT_BYTES: usize = 6 * 1024 * 1024;

/// CPU time of this process so far (every live thread), from the kernel's scheduler statistics.
fn process_cpu_ns(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A value from /proc/<pid>/status, in kB.
fn status_kb(pid: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(field)?.trim().trim_end_matches(" kB").trim().parse().ok())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A schema of our own over the same tweets, storing each one whole (document mode): the generic
/// path on records of the tweets' size.
const TWEETS_AS_DOCUMENTS: &str = r#"
name = "tweets-as-documents"
[partition_key]
attribute = "Username"
from = "/user/screen_name"
[sort_key]
attribute = "Id"
from = "/id_str"
[item]
store = "document"
"#;

/// The same with a projection of the tweets' own four attributes, read generically.
const TWEETS_PROJECTED: &str = r#"
name = "tweets-projected"
[partition_key]
attribute = "Username"
from = "/user/screen_name"
[sort_key]
attribute = "Id"
from = "/id_str"
[time]
attribute = "Timestamp"
from = "/created_at"
formats = ["twitter"]
[item]
store = "projection"
[[item.attributes]]
attribute = "Message"
from = ["/extended_tweet/full_text", "/text"]
"#;

/// The event as Lambda sends it: `n` synthetic tweets of one shard, as JSON.
fn event_body(n: usize, seed: u64) -> Bytes {
    let mut tweets = Synthetic::new(Some(seed));
    body_of((0..n).map(|_| {
        let t = tweets.next_tweet();
        (t.user.screen_name.clone(), t.to_bytes())
    }))
}

/// The event as Lambda sends it: `n` synthetic events of `kind` (keyed by `key`), as JSON.
fn kind_body(kind: Kind, n: usize, seed: u64) -> Bytes {
    body_of(Events::new(kind, Some(seed)).take(n).map(|e| ("k".to_string(), e)))
}

/// One shard's event of these (partition key, data) records.
fn body_of(records: impl Iterator<Item = (String, Vec<u8>)>) -> Bytes {
    let records = records.enumerate().map(|(i, (key, data))| event_record(i, key, &data)).collect();
    Bytes::from(serde_json::to_vec(&Event { records }).expect("event json"))
}

/// Record `i` of one shard's event, as Lambda sends it.
fn event_record(i: usize, key: String, data: &[u8]) -> Record {
    let mut r = Record::default();
    r.kinesis.kinesis_schema_version = "1.0".into();
    r.kinesis.partition_key = key;
    r.kinesis.sequence_number = format!("{i:056}");
    r.kinesis.data = base64::engine::general_purpose::STANDARD.encode(data);
    r.kinesis.approximate_arrival_timestamp = 1_700_000_000.0;
    r.event_source = "aws:kinesis".into();
    r.event_version = "1.0".into();
    r.event_id = format!("shardId-000000000000:{i:056}");
    r.event_name = "aws:kinesis:record".into();
    r.invoke_identity_arn = "arn:aws:iam::123456789012:role/bench".into();
    r.aws_region = "us-east-1".into();
    r.event_source_arn = "arn:aws:kinesis:us-east-1:123456789012:stream/bench".into();
    r
}

/// An event of full-size v1.1 tweets (`full_tweet`), as many as fit in `FULL_EVENT_BYTES` of JSON,
/// and how many that is.
fn full_size_body(seed: u64) -> (Bytes, usize) {
    let mut tweets = Synthetic::new(Some(seed));
    let mut records = Vec::new();
    // `{"Records":[` … `]}` and a comma between records.
    let mut size = 14;
    loop {
        let t = tweets.next_tweet();
        let r = event_record(records.len(), t.user.screen_name.clone(), &full_tweet(&t, records.len()));
        let more = serde_json::to_vec(&r).expect("record json").len() + 1;
        if size + more > FULL_EVENT_BYTES {
            break;
        }
        size += more;
        records.push(r);
    }
    let n = records.len();
    let body = Bytes::from(serde_json::to_vec(&Event { records }).expect("event json"));
    assert!(body.len() <= FULL_EVENT_BYTES, "the full-size event is {} bytes", body.len());
    (body, n)
}

/// `t` as a full v1.1 tweet from the streaming API (2.9–4.5 KB, 3.4 KB on average): the whole user
/// object, entities, extended_tweet, place, counts; every third one a retweet carrying its original
/// (with a short user object of its own). The built-in schema reads the same four fields of it as
/// of `t`.
fn full_tweet(t: &Tweet, n: usize) -> Vec<u8> {
    use serde_json::json;
    let user = |screen_name: &str, name: &str, id: &str| {
        json!({
            "id": id.parse::<u64>().unwrap_or(1), "id_str": id, "name": name, "screen_name": screen_name,
            "location": "Seattle, WA", "url": format!("https://example.com/{screen_name}"),
            "description": "Streams, tables and the occasional lambda. Opinions are my own; retweets are not endorsements.",
            "translator_type": "none", "protected": false, "verified": n.is_multiple_of(7),
            "followers_count": 1000 + n % 9000, "friends_count": 300 + n % 700, "listed_count": 12,
            "favourites_count": 4200 + n, "statuses_count": 18000 + n, "created_at": "Tue Mar 21 20:50:14 +0000 2009",
            "utc_offset": null, "time_zone": null, "geo_enabled": true, "lang": null,
            "contributors_enabled": false, "is_translator": false,
            "profile_background_color": "C0DEED",
            "profile_background_image_url": "http://abs.twimg.com/images/themes/theme1/bg.png",
            "profile_background_image_url_https": "https://abs.twimg.com/images/themes/theme1/bg.png",
            "profile_background_tile": false, "profile_link_color": "1DA1F2",
            "profile_sidebar_border_color": "C0DEED", "profile_sidebar_fill_color": "DDEEF6",
            "profile_text_color": "333333", "profile_use_background_image": true,
            "profile_image_url": format!("http://pbs.twimg.com/profile_images/{id}/avatar_normal.jpg"),
            "profile_image_url_https": format!("https://pbs.twimg.com/profile_images/{id}/avatar_normal.jpg"),
            "profile_banner_url": format!("https://pbs.twimg.com/profile_banners/{id}/1554000000"),
            "default_profile": false, "default_profile_image": false,
            "following": null, "follow_request_sent": null, "notifications": null
        })
    };
    let full_text = t.extended_tweet.as_ref().map_or(t.text.as_str(), |e| e.full_text.as_str());
    let hashtags: Vec<serde_json::Value> =
        t.entities.hashtags.iter().map(|h| json!({"text": h.text, "indices": h.indices})).collect();
    let entities = json!({
        "hashtags": hashtags,
        "urls": [{"url": "https://t.co/AbCdEfGhIj", "expanded_url": "https://aws.amazon.com/kinesis/data-streams/",
                  "display_url": "aws.amazon.com/kinesis/data-s…", "indices": [0, 23]}],
        "user_mentions": [{"screen_name": "awscloud", "name": "Amazon Web Services", "id": 66780587,
                           "id_str": "66780587", "indices": [0, 9]}],
        "symbols": []
    });
    let mut tweet = json!({
        "created_at": t.created_at, "id": t.id_str.parse::<u64>().unwrap_or(1), "id_str": t.id_str,
        "text": t.text,
        "source": "<a href=\"http://twitter.com/download/iphone\" rel=\"nofollow\">Twitter for iPhone</a>",
        "truncated": t.truncated, "in_reply_to_status_id": null, "in_reply_to_status_id_str": null,
        "in_reply_to_user_id": null, "in_reply_to_user_id_str": null, "in_reply_to_screen_name": null,
        "user": user(&t.user.screen_name, &t.user.name, &t.user.id_str),
        "geo": null, "coordinates": null,
        "place": {"id": "300bcc6e23a88361", "url": "https://api.twitter.com/1.1/geo/id/300bcc6e23a88361.json",
                  "place_type": "city", "name": "Seattle", "full_name": "Seattle, WA", "country_code": "US",
                  "country": "United States",
                  "bounding_box": {"type": "Polygon", "coordinates": [[[-122.436232, 47.495315], [-122.436232, 47.734319],
                                   [-122.224973, 47.734319], [-122.224973, 47.495315]]]},
                  "attributes": {}},
        "contributors": null, "is_quote_status": false,
        "extended_tweet": {"full_text": full_text, "display_text_range": [0, full_text.chars().count()]},
        "quote_count": n % 5, "reply_count": n % 11, "retweet_count": n % 97, "favorite_count": n % 211,
        "entities": entities, "favorited": false, "retweeted": false, "possibly_sensitive": false,
        "filter_level": "low", "lang": t.lang, "timestamp_ms": "1735689600000"
    });
    if n % 3 == 2 {
        let original = json!({
            "created_at": "Mon Dec 30 09:00:00 +0000 2024", "id": 1_873_000_000_000_000_000u64 + n as u64,
            "id_str": (1_873_000_000_000_000_000u64 + n as u64).to_string(), "truncated": t.truncated,
            "user": {"id": 66780587, "id_str": "66780587", "name": "Amazon Web Services", "screen_name": "awscloud",
                     "verified": true, "followers_count": 2_400_000,
                     "profile_image_url_https": "https://pbs.twimg.com/profile_images/66780587/aws_normal.png"},
            "extended_tweet": {"full_text": full_text}, "retweet_count": 1200 + n, "favorite_count": 3400 + n, "lang": t.lang
        });
        tweet["retweeted_status"] = original;
    }
    serde_json::to_vec(&tweet).expect("a tweet serializes")
}

/// One invocation as Lambda mode runs it: the body parsed, then handled with `schema`.
async fn invoke<S: Store>(body: &[u8], schema: &Schema, store: &S) -> BatchOutcome {
    // As lambda.rs parses it: with the parser compiled in stream-json, at opt-level 3.
    let text = std::str::from_utf8(body).expect("the event is UTF-8");
    let event: Batch = stream::process::event::parse(text).expect("the event parses");
    handle(&event, schema, store, &Options::within(Duration::from_secs(900))).await
}

/// CPU µs per record of this process over `iterations` invocations of the tweets schema, after one
/// warm-up (connections, allocator, page faults); every record written each time.
fn cpu_per_record<S: Store>(rt: &tokio::runtime::Runtime, body: &[u8], store: &S, iterations: usize) -> f64 {
    cpu_per_record_with(rt, body, Schema::tweets(), store, iterations)
}

/// `cpu_per_record` with another schema: every distinct key written (or superseded) each time.
fn cpu_per_record_with<S: Store>(
    rt: &tokio::runtime::Runtime,
    body: &[u8],
    schema: &Schema,
    store: &S,
    iterations: usize,
) -> f64 {
    let records = serde_json::from_slice::<Batch>(body).expect("event").records.len();
    let check = |o: BatchOutcome| {
        assert!(o.response.batch_item_failures.is_empty() && o.fatal.is_none(), "a batch failed: {o:?}");
        assert_eq!(o.stats.quarantined, 0, "every record fits {}", schema.name());
        assert_eq!(o.stats.written + o.stats.duplicates + o.stats.superseded, records, "every record written");
    };
    check(rt.block_on(invoke(body, schema, store)));
    let cpu0 = process_cpu_ns("self");
    for _ in 0..iterations {
        check(rt.block_on(invoke(body, schema, store)));
    }
    (process_cpu_ns("self") - cpu0) as f64 / 1000.0 / (iterations * records) as f64
}

/// The median of `RUNS` measurements, each on a store `fresh()` makes.
fn median_cpu<S: Store>(rt: &tokio::runtime::Runtime, body: &[u8], fresh: impl Fn() -> S, iterations: usize) -> f64 {
    median((0..RUNS).map(|_| cpu_per_record(rt, body, &fresh(), iterations)).collect())
}

/// `median_cpu` with another schema.
fn median_cpu_with<S: Store>(
    rt: &tokio::runtime::Runtime,
    body: &[u8],
    schema: &Schema,
    fresh: impl Fn() -> S,
    iterations: usize,
) -> f64 {
    median((0..RUNS).map(|_| cpu_per_record_with(rt, body, schema, &fresh(), iterations)).collect())
}

/// The null endpoint (tests/bench/null_endpoint.py) as a child process on a free loopback port.
struct NullEndpoint {
    child: Child,
    url: String,
}

impl NullEndpoint {
    fn start(python: &Path) -> NullEndpoint {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut child = Command::new(python)
            .args(["tests/bench/null_endpoint.py", &port.to_string(), "1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the null endpoint starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("its first line");
        assert_eq!(line.trim(), "ready", "the null endpoint is listening");
        NullEndpoint { child, url: format!("http://127.0.0.1:{port}") }
    }

    /// Items it has been sent so far.
    fn items(&self) -> u64 {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(self.url.trim_start_matches("http://")).expect("connect");
        conn.write_all(b"GET /counts HTTP/1.1\r\nHost: null\r\nConnection: close\r\n\r\n").expect("ask");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("counts");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("{}");
        serde_json::from_str::<serde_json::Value>(body).expect("json")["items"].as_u64().unwrap_or(0)
    }
}

impl Drop for NullEndpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Node.js baseline (tests/bench/node/bench.mjs) over the event file: CPU µs per record of the
/// whole Node process, the median of `RUNS` processes; each run on a table `table()` names.
fn node_cpu(event_file: &Path, env: &[(&str, String)], mut table: impl FnMut() -> String) -> Option<f64> {
    let script = Path::new("tests/bench/node/bench.mjs");
    if !node_modules() {
        return None;
    }
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let out = Command::new("node")
            .arg(script)
            .arg(event_file)
            .arg("1")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("TABLE_NAME", table())
            .env("NODE_NO_WARNINGS", "1")
            .stderr(Stdio::inherit())
            .output()
            .ok()?;
        assert!(out.status.success(), "the Node.js baseline failed");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("its JSON line");
        runs.push(doc["cpu_us_per_record"].as_f64().expect("cpu_us_per_record"));
    }
    Some(median(runs))
}

/// The baseline's packages (the AWS SDK v3), installed by `npm ci` from tests/bench/node's lock file
/// into tests/bench/node/node_modules (ignored by git) when they are missing. False, with a note on
/// stdout, when npm cannot install them (offline, no npm): the rows then go without a baseline.
fn node_modules() -> bool {
    if Path::new("tests/bench/node/node_modules/@aws-sdk/client-dynamodb").is_dir() {
        return true;
    }
    println!("(installing the Node.js baseline's packages: npm ci --prefix tests/bench/node)");
    let installed = Command::new("npm")
        .args(["ci", "--prefix", "tests/bench/node", "--no-audit", "--no-fund", "--loglevel=error"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        println!(
            "(npm could not install tests/bench/node's packages (offline? no npm?): no Node.js baseline in this run; \
             run `npm ci --prefix tests/bench/node` where the npm registry is reachable)"
        );
    }
    installed
}

/// Rows of the table: what, ours, target, Node.js, ratio.
struct Table(Vec<[String; 5]>);

impl Table {
    fn row(&mut self, what: &str, ours: f64, target: Option<f64>, node: Option<f64>) {
        let f = |v: f64| if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") };
        let ratio = node.map(|n| format!("{:.3} (≤ {TARGET_RATIO:.2})", ours / n));
        self.0.push([
            what.into(),
            f(ours),
            target.map_or("-".into(), |t| format!("≤ {}", f(t))),
            node.map_or("-".into(), f),
            ratio.unwrap_or("-".into()),
        ]);
    }

    fn print(&self) {
        let head = ["", "ours", "target", "Node.js SDK v3", "ours/Node"];
        let w: Vec<usize> = (0..5)
            .map(|i| self.0.iter().map(|r| r[i].chars().count()).chain([head[i].len()]).max().unwrap_or(0))
            .collect();
        let line = |r: &[&str]| {
            let mut s = format!("  {:<w0$}", r[0], w0 = w[0]);
            for i in 1..5 {
                s += &format!("  {:>wi$}", r[i], wi = w[i]);
            }
            println!("{s}");
        };
        line(&head);
        for r in &self.0 {
            line(&r.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}

fn main() {
    // One thread: the handler and the SDK's HTTP client run on it, as a current-thread Lambda would.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let moto_url = std::env::var("AWS_ENDPOINT_URL").ok();
    let python = PathBuf::from(".venv/bin/python");
    let body = event_body(RECORDS, 99);
    let config = moto_url.as_ref().map(|_| rt.block_on(load_config(&AwsArgs::default(), RetryMode::Standard)));
    let null = (python.exists() && config.is_some()).then(|| NullEndpoint::start(&python));
    let moto_client = config.as_ref().map(aws_sdk_dynamodb::Client::new);
    let null_client = config.as_ref().zip(null.as_ref()).map(|(c, n)| {
        aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(c).endpoint_url(&n.url).build())
    });
    let fresh_table = |client: &aws_sdk_dynamodb::Client| {
        let table = format!("bench-{}", uuid::Uuid::new_v4().simple());
        rt.block_on(create_table(client, &table));
        table
    };

    if let Ok(only) = std::env::var("HANDLER_BENCH_ONLY") {
        let iterations = std::env::var("HANDLER_BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
        let us = match only.as_str() {
            "memory" => cpu_per_record(&rt, &body, &MemoryStore::default(), iterations),
            "moto" => {
                let client = moto_client.expect("AWS_ENDPOINT_URL");
                cpu_per_record(&rt, &body, &DynamoStore::new(client.clone(), fresh_table(&client), None), iterations)
            }
            "null" => cpu_per_record(&rt, &body, &DynamoStore::new(null_client.expect("null"), "T", None), iterations),
            "lambda" => {
                let bin = std::env::var("STREAM_STATIC_BIN").expect("STREAM_STATIC_BIN");
                let moto = moto_url.as_deref().expect("AWS_ENDPOINT_URL");
                floor_rows(&rt, &bin, moto, null.as_ref().expect("the null endpoint"), &body);
                return;
            }
            "full" => cpu_per_record(&rt, &full_size_body(21).0, &MemoryStore::default(), iterations),
            other => {
                panic!("HANDLER_BENCH_ONLY={other}: memory, moto, null, full (full-size tweets in memory) or lambda")
            }
        };
        println!("{only}: {us:.2} CPU µs/record over {iterations} invocations");
        return;
    }

    println!(
        "handler, one {RECORDS}-record event ({} bytes of JSON), CPU µs per record of the whole process",
        body.len()
    );
    let mut table = Table(Vec::new());
    let mem = median_cpu(&rt, &body, MemoryStore::default, 5);
    table.row("CPU µs/record, in-memory store (no network)", mem, None, None);
    schema_rows(&rt, &body, null_client.as_ref(), null.as_ref(), mem, &mut table);
    let event_file = std::env::temp_dir().join(format!("stream-bench-event-{}.json", std::process::id()));
    std::fs::write(&event_file, &body).expect("event file for the baseline");
    if let (Some(moto), Some(client)) = (&moto_url, &moto_client) {
        let ours = median_cpu(&rt, &body, || DynamoStore::new(client.clone(), fresh_table(client), None), 1);
        let node = node_cpu(&event_file, &[("AWS_ENDPOINT_URL", moto.clone())], || fresh_table(client));
        table.row("CPU µs/record, DynamoDB on moto", ours, Some(TARGET_CPU_US), node);
    }
    if let (Some(n), Some(client), Some(moto)) = (&null, &null_client, &moto_url) {
        let before = n.items();
        let ours = median_cpu(&rt, &body, || DynamoStore::new(client.clone(), "T", None), 3);
        let env = [("AWS_ENDPOINT_URL", moto.clone()), ("AWS_ENDPOINT_URL_DYNAMODB", n.url.clone())];
        let node = node_cpu(&event_file, &env, || "T".into());
        let per_run =
            (RECORDS * (1 + 3)) as u64 * RUNS as u64 + if node.is_some() { (RECORDS * 2 * RUNS) as u64 } else { 0 };
        assert_eq!(n.items() - before, per_run, "the null endpoint got every record");
        table.row("CPU µs/record, DynamoDB on the null endpoint", ours, Some(TARGET_CPU_US), node);
    }
    let _ = std::fs::remove_file(&event_file);

    match (&moto_url, std::env::var("STREAM_STATIC_BIN").ok(), &moto_client) {
        (Some(moto), Some(bin), Some(client)) => {
            let mut targets = vec![("moto", moto.clone(), fresh_table(client))];
            if let Some(n) = &null {
                targets.push(("null endpoint", n.url.clone(), "T".into()));
            }
            for (name, dynamo, table_name) in targets {
                let run = || LambdaRun {
                    bin: &bin,
                    moto,
                    dynamo: &dynamo,
                    table: &table_name,
                    body: body.clone(),
                    records: RECORDS,
                    concurrency: DEFAULT_WRITE_CONCURRENCY,
                    warm: false,
                };
                let runs: Vec<LambdaFigures> = (0..RUNS).map(|_| rt.block_on(lambda_mode(run()))).collect();
                let m = |f: fn(&LambdaFigures) -> f64| median(runs.iter().map(f).collect());
                table.row(
                    &format!("static binary vs {name}: init, start to first `next` (ms)"),
                    m(|f| f.init_ms),
                    Some(TARGET_INIT_MS),
                    None,
                );
                let (rss_label, rss_target) = if body.len() > LAMBDA_EVENT_LIMIT_BYTES {
                    let mb = body.len() as f64 / 1e6;
                    (format!("peak RSS (MB; a {mb:.1} MB event, above Lambda's 6 MB limit: no target)"), None)
                } else {
                    ("peak RSS (MB)".to_string(), Some(TARGET_RSS_MB))
                };
                table.row(&format!("static binary vs {name}: {rss_label}"), m(|f| f.rss_mb), rss_target, None);
                table.row(
                    &format!("static binary vs {name}: process CPU µs/record (init + 1 invocation)"),
                    m(|f| f.cpu_us),
                    None,
                    None,
                );
                table.row(&format!("static binary vs {name}: invocation wall ms"), m(|f| f.invocation_ms), None, None);
            }
        }
        _ => println!("(set AWS_ENDPOINT_URL and STREAM_STATIC_BIN to measure the static binary in Lambda mode)"),
    }
    table.print();
    println!("  peak RSS of this benchmark process: {} kB", status_kb("self", "VmHWM:").unwrap_or(0));
    if let (Some(moto), Ok(bin), Some(n)) = (&moto_url, std::env::var("STREAM_STATIC_BIN"), &null) {
        floor_rows(&rt, &bin, moto, n, &body);
    }
}

/// The SDK's BatchWriteItem floor at `in_flight` calls (µs per item), as scripts/bench measured it
/// at its start with tests/bench/sdk_floor.rs: FLOOR_BATCHWRITEITEM_<in_flight> from the environment
/// or from $CARGO_TARGET_DIR/bench-floor.env.
fn floor_before(in_flight: usize) -> Option<f64> {
    let name = format!("FLOOR_BATCHWRITEITEM_{in_flight}");
    let from_file = || {
        let dir = std::env::var("CARGO_TARGET_DIR").ok()?;
        let text = std::fs::read_to_string(Path::new(&dir).join("bench-floor.env")).ok()?;
        text.lines().find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_string))
    };
    std::env::var(&name).ok().or_else(from_file)?.trim().parse().ok()
}

/// The SDK's BatchWriteItem floor measured now, against `null`: SDK_FLOOR_BIN (tests/bench/sdk_floor.rs,
/// which scripts/bench builds) run once (its own median of 3), µs per item. The machine's speed
/// drifts over minutes (the floor measured 7 to 11 µs in one afternoon), so the rows below take the
/// floor runs interleaved with their own.
fn floor_now(null: &NullEndpoint, in_flight: usize) -> Option<f64> {
    let bin = std::env::var("SDK_FLOOR_BIN").ok()?;
    let out = Command::new(bin)
        .args(["batchwriteitem", "--in-flight", &in_flight.to_string(), "--items", "10000"])
        .envs([
            ("AWS_ENDPOINT_URL", null.url.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ])
        .output()
        .expect("SDK_FLOOR_BIN runs");
    assert!(out.status.success(), "sdk_floor failed: {}", String::from_utf8_lossy(&out.stderr));
    // "floor BatchWriteItem in-flight=8: 6.69 us/item"
    let text = String::from_utf8_lossy(&out.stdout);
    text.rsplit_once(": ").and_then(|(_, v)| v.split_whitespace().next()?.parse().ok())
}

/// The shipped binary against the SDK's own floor (issue 21): its CPU per record on a warm
/// invocation (init excluded) at 4 and 8 writes in flight, as a ratio to the BatchWriteItem floor at
/// the same concurrency — measured in turn with ours, run for run, when SDK_FLOOR_BIN is set; else
/// as scripts/bench measured it first —; then an event of full-size v1.1 tweets near 6 MB: peak RSS
/// and CPU.
fn floor_rows(rt: &tokio::runtime::Runtime, bin: &str, moto: &str, null: &NullEndpoint, body: &Bytes) {
    let run = |body: &Bytes, records: usize, concurrency: usize| {
        let mut floors = Vec::new();
        let figures: Vec<LambdaFigures> = (0..RUNS)
            .map(|_| {
                floors.extend(floor_now(null, concurrency));
                rt.block_on(lambda_mode(LambdaRun {
                    bin,
                    moto,
                    dynamo: &null.url,
                    table: "T",
                    body: body.clone(),
                    records,
                    concurrency,
                    warm: true,
                }))
            })
            .collect();
        let m = |f: fn(&LambdaFigures) -> f64| median(figures.iter().map(f).collect());
        let floor = if floors.is_empty() { floor_before(concurrency) } else { Some(median(floors)) };
        (m(|f| f.warm_cpu_us.unwrap_or(f64::NAN)), m(|f| f.rss_mb), m(|f| f.cpu_us), floor)
    };
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut row = |what: String, ours: f64, floor: Option<f64>, target: String| {
        rows.push([
            what,
            format!("{ours:.2}"),
            floor.map_or("-".into(), |f| format!("{f:.2}")),
            floor.map_or("-".into(), |f| format!("{:.2}", ours / f)),
            target,
        ]);
    };
    let ratio = format!("≤ {TARGET_FLOOR_RATIO:.1}×");
    for in_flight in [4, 8] {
        let (warm, _, _, floor) = run(body, RECORDS, in_flight);
        row(
            format!("{RECORDS} synthetic tweets, {in_flight} writes in flight: CPU µs/record, warm"),
            warm,
            floor,
            ratio.clone(),
        );
    }
    let (full, records) = full_size_body(21);
    let (warm, rss, first, floor) = run(&full, records, DEFAULT_WRITE_CONCURRENCY);
    let at = DEFAULT_WRITE_CONCURRENCY;
    let what = format!("{records} full-size tweets ({:.2} MB of JSON), {at} in flight", full.len() as f64 / 1e6);
    row(format!("{what}: CPU µs/record, warm"), warm, floor, ratio.clone());
    row(format!("{what}: CPU µs/record, init + 1st invocation"), first, None, "-".into());
    row(format!("{what}: peak RSS (MB)"), rss, None, format!("≤ {TARGET_RSS_MB:.0} MB"));
    let sizes: Vec<usize> = {
        let event: Event = serde_json::from_slice(&full).expect("the full-size event parses");
        let b64 = base64::engine::general_purpose::STANDARD;
        event.records.iter().map(|r| b64.decode(&r.kinesis.data).map_or(0, |d| d.len())).collect()
    };
    println!(
        "\nthe shipped binary against the SDK's BatchWriteItem floor (tests/bench/sdk_floor.rs, same profile, {}), \
         DynamoDB on the null endpoint; full-size tweets {}–{} bytes, {} on average",
        if std::env::var_os("SDK_FLOOR_BIN").is_some() {
            "run in turn with ours"
        } else {
            "as scripts/bench measured it first"
        },
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().max().unwrap_or(&0),
        sizes.iter().sum::<usize>() / sizes.len().max(1)
    );
    let head = ["", "ours", "SDK floor", "ours/floor", "target"].map(String::from);
    let w: Vec<usize> =
        (0..5).map(|i| rows.iter().chain([&head]).map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for r in [&head].into_iter().chain(rows.iter()) {
        let mut s = format!("  {:<w0$}", r[0], w0 = w[0]);
        for i in 1..5 {
            s += &format!("  {:>wi$}", r[i], wi = w[i]);
        }
        println!("{s}");
    }
    if std::env::var_os("SDK_FLOOR_BIN").is_none() && floor_before(4).is_none() {
        println!(
            "  (no SDK floor figures: scripts/bench builds tests/bench/sdk_floor.rs and passes it as SDK_FLOOR_BIN)"
        );
    }
}

/// Event schemas beside the tweets path: a generic schema over the same tweets (document and
/// projection: records of the same size; target ≤ 1.5× the tweets path), and the ordered orders
/// schema, whose writes are one conditional PutItem per item (BatchWriteItem takes no conditions).
fn schema_rows(
    rt: &tokio::runtime::Runtime,
    tweets: &[u8],
    null_client: Option<&aws_sdk_dynamodb::Client>,
    null: Option<&NullEndpoint>,
    tweets_memory: f64,
    table: &mut Table,
) {
    let documents = Schema::parse(TWEETS_AS_DOCUMENTS, true).expect("bench schema");
    let projected = Schema::parse(TWEETS_PROJECTED, true).expect("bench schema");
    for (name, schema) in [("document", &documents), ("projection", &projected)] {
        let ours = median_cpu_with(rt, tweets, schema, || MemoryStore::for_schema(schema), 5);
        table.row(
            &format!("CPU µs/record, generic {name} schema on the same tweets, in memory"),
            ours,
            Some(1.5 * tweets_memory),
            None,
        );
    }
    let orders = Schema::built_in("orders").expect("built in");
    let body = kind_body(Kind::Orders, RECORDS, 7);
    let ours = median_cpu_with(rt, &body, orders, || MemoryStore::for_schema(orders), 5);
    table.row("CPU µs/record, orders (ordered: conditional puts), in memory", ours, None, None);
    if let (Some(client), Some(n)) = (null_client, null) {
        let tweets_null = median_cpu(rt, tweets, || DynamoStore::new(client.clone(), "T", None), 3);
        for (name, schema) in [("document", &documents), ("projection", &projected)] {
            let fresh = || DynamoStore::new(client.clone(), "T", None).for_schema(schema);
            let ours = median_cpu_with(rt, tweets, schema, fresh, 3);
            table.row(
                &format!("CPU µs/record, generic {name} schema, null endpoint"),
                ours,
                Some(1.5 * tweets_null),
                None,
            );
        }
        let calls_before = null_calls(n);
        let fresh = || DynamoStore::new(client.clone(), "T", None).for_schema(orders);
        let ours = median_cpu_with(rt, &body, orders, fresh, 3);
        let (batches, puts) = null_calls(n);
        let calls = (puts - calls_before.1) as f64 / ((RUNS * 4) as f64);
        table.row("CPU µs/record, orders (one conditional PutItem per item), null endpoint", ours, None, None);
        table.row("PutItem calls per invocation, orders (items after dedupe)", calls, None, None);
        assert_eq!(batches, calls_before.0, "ordered writes use no BatchWriteItem");
    }
}

/// (BatchWriteItem calls, PutItem calls) the null endpoint got so far.
fn null_calls(n: &NullEndpoint) -> (u64, u64) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(n.url.trim_start_matches("http://")).expect("connect");
    conn.write_all(b"GET /counts HTTP/1.1\r\nHost: null\r\nConnection: close\r\n\r\n").expect("ask");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("counts");
    let body: serde_json::Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or("{}")).expect("json");
    (body["batch_write_calls"].as_u64().unwrap_or(0), body["put_item_calls"].as_u64().unwrap_or(0))
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

struct LambdaFigures {
    init_ms: f64,
    invocation_ms: f64,
    rss_mb: f64,
    /// CPU of the whole process from its start through the first invocation, per record.
    cpu_us: f64,
    /// CPU of a second invocation of the same event alone, per record: connections open, init
    /// excluded (the process's CPU after it less the CPU before it), as the SDK floor is measured.
    warm_cpu_us: Option<f64>,
}

/// How the shipped binary is run for one figure.
struct LambdaRun<'a> {
    bin: &'a str,
    moto: &'a str,
    dynamo: &'a str,
    table: &'a str,
    body: Bytes,
    records: usize,
    /// WRITE_CONCURRENCY: BatchWriteItem calls in flight.
    concurrency: usize,
    /// Hand it the event a second time, and measure that invocation alone.
    warm: bool,
}

/// The shipped binary as Lambda runs it: `stream local`'s Runtime API starts it and hands it the
/// event (twice when `warm`); DynamoDB at `dynamo`. Panics unless each invocation wrote every record.
/// Peak RSS is the process's high-water mark over its life.
async fn lambda_mode(run: LambdaRun<'_>) -> LambdaFigures {
    let dir = Path::new(run.bin).parent().unwrap_or(Path::new("/")).to_path_buf();
    let concurrency = run.concurrency.to_string();
    let env = [
        ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ENDPOINT_URL", run.moto),
        ("AWS_ENDPOINT_URL_DYNAMODB", run.dynamo),
        ("TABLE_NAME", run.table),
        ("WRITE_CONCURRENCY", &concurrency),
        ("RUST_LOG", "warn"),
    ];
    // The template's other fixed variables (its malloc settings), as the deployed function has them;
    // not EVENT_SCHEMA, the file deploy puts beside the binary (this runs the built-in schema).
    let fixed = stream::template::function_constants()
        .into_iter()
        .filter(|(k, _)| k != stream::template::SCHEMA_ENV && !env.iter().any(|(e, _)| e == k));
    let spec = Arc::new(FunctionSpec {
        bootstrap: run.bin.into(),
        task_root: dir,
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain(fixed).collect(),
        function_arn: "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
        credentials: None,
        memory_mb: None,
        init_timeout: stream::sandbox::INIT_TIMEOUT,
        timeout: Duration::from_secs(300),
        log: Arc::new(|_: &str| {}),
        starts: AtomicU64::new(0),
    });
    let mut environment = Environment::new(spec).await.expect("a Runtime API on loopback");
    let records = run.records as f64;
    let check = |outcome: &Outcome| {
        let Outcome::Response(answer) = outcome else {
            panic!("the {records}-record invocation failed: {outcome:?}");
        };
        assert_eq!(&answer[..], br#"{"batchItemFailures":[]}"#, "the invocation wrote every record");
    };
    let started = Instant::now();
    let outcome = environment.invoke(run.body.clone()).await;
    let took = started.elapsed();
    check(&outcome);
    // Read the CPU while the function waits for its next invocation.
    let pid = environment.pid().map(|p| p.to_string()).unwrap_or_default();
    let cpu_ns = process_cpu_ns(&pid);
    let warm_cpu_us = if run.warm {
        check(&environment.invoke(run.body).await);
        Some((process_cpu_ns(&pid) - cpu_ns) as f64 / 1000.0 / records)
    } else {
        None
    };
    let rss = status_kb(&pid, "VmHWM:").unwrap_or(0);
    let init = environment.init_duration();
    environment.stop().await;
    let init = init.expect("the function asked for an invocation");
    LambdaFigures {
        init_ms: init.as_secs_f64() * 1000.0,
        // The invocation is timed from the event handed over, so init is not in it.
        invocation_ms: took.saturating_sub(init).as_secs_f64() * 1000.0,
        rss_mb: rss as f64 / 1024.0,
        cpu_us: cpu_ns as f64 / 1000.0 / records,
        warm_cpu_us,
    }
}
