//! A fault-injecting HTTP proxy in front of moto, for faults moto cannot produce: BatchWriteItem
//! calls answered with throttling (400 ProvisionedThroughputExceededException), 500s, or with part
//! of their items moved into UnprocessedItems; PutRecords entries failed; GetRecords throttled
//! (and counted, with when and which shard each read was); BatchWriteItem calls held back; Scan
//! calls failed or held back after the first. In
//! place of moto, it can serve the reads of a stream split as Kinesis splits one (`split_stream`).
//! Everything else passes through untouched.
//! Loopback only; one request per connection (`connection: close`).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::split_stream::SplitStream;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Share of BatchWriteItem calls to fail or trim, each in [0, 1], and share of PutRecords
/// entries to answer with ProvisionedThroughputExceededException. Below 1.0 an entry is failed at
/// most `MAX_ENTRY_FAILURES` times, fewer than the producer's attempts, so every entry must land
/// (at 0.3 and no cap, one of 1,000 entries would exhaust 8 attempts in ~6 % of runs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub throttle: f64,
    pub server_error: f64,
    pub unprocessed: f64,
    pub put_entry_failure: f64,
    /// Every PutRecords entry fails exactly this many times (by its data), then goes through.
    pub put_entry_fails_exactly: Option<u32>,
    /// BatchWriteItem calls whose body holds this text are denied (AccessDeniedException), every time.
    pub deny_marker: Option<&'static str>,
    /// The first this many GetRecords calls are throttled (ProvisionedThroughputExceededException).
    pub throttle_first_reads: usize,
    /// BatchWriteItem calls whose body holds this text are held this long before they go on.
    pub delay_marker: Option<(&'static str, std::time::Duration)>,
    /// Scan calls after the first this many answer 500 InternalServerError, every time.
    pub scans_pass: Option<usize>,
    /// Scan calls after the first are held this long before they go on.
    pub scan_delay: Option<std::time::Duration>,
}

/// What the proxy did.
#[derive(Debug, Default)]
pub struct Counters {
    pub batch_writes: AtomicUsize,
    pub throttled: AtomicUsize,
    pub server_errors: AtomicUsize,
    pub trimmed: AtomicUsize,
    pub passed: AtomicUsize,
    pub put_entries_failed: AtomicUsize,
    pub denied: AtomicUsize,
    pub get_records: AtomicUsize,
    pub scans: AtomicUsize,
    pub reads_throttled: AtomicUsize,
    /// Each GetRecords call as it arrived: its shard (from its iterator) and when.
    reads: Mutex<Vec<(String, Instant)>>,
    /// When each delayed BatchWriteItem call was answered.
    delayed: Mutex<Vec<Instant>>,
    /// The Host header of every request.
    hosts: Mutex<std::collections::BTreeSet<String>>,
    /// The X-Amz-Target of every request (`DynamoDB_20120810.Scan`), in order.
    targets: Mutex<Vec<String>>,
    /// The access key id each request was signed with (SigV4's `Credential=<id>/…`), by target.
    signers: Mutex<Vec<(String, String)>>,
    /// Times each PutRecords entry (by its data) has been failed.
    entry_failures: Mutex<std::collections::HashMap<String, u32>>,
}

impl Counters {
    /// The Host header of every request (one for path-style S3 calls; one per bucket for
    /// virtual-hosted ones).
    pub fn hosts(&self) -> std::collections::BTreeSet<String> {
        self.hosts.lock().expect("hosts").clone()
    }

    /// The access key ids that signed requests naming this operation.
    pub fn signers(&self, target: &str) -> std::collections::BTreeSet<String> {
        let signers = self.signers.lock().expect("signers");
        signers.iter().filter(|(t, _)| t == target).map(|(_, id)| id.clone()).collect()
    }

    /// How many requests named this operation (`DynamoDB_20120810.Scan`).
    pub fn calls(&self, target: &str) -> usize {
        self.targets.lock().expect("targets").iter().filter(|t| *t == target).count()
    }

    /// When each delayed BatchWriteItem call was answered, in order.
    pub fn delayed_answers(&self) -> Vec<Instant> {
        self.delayed.lock().expect("delayed").clone()
    }

    /// When each shard was read (GetRecords arrived), in order, by shard.
    pub fn read_times(&self) -> std::collections::BTreeMap<String, Vec<Instant>> {
        let mut by_shard: std::collections::BTreeMap<String, Vec<Instant>> = Default::default();
        for (shard, at) in self.reads.lock().expect("reads").iter() {
            by_shard.entry(shard.clone()).or_default().push(*at);
        }
        by_shard
    }
}

/// The shard a GetRecords call reads, from its iterator: moto's is the base64 of
/// `stream:shard:sequence`.
fn iterator_shard(body: &[u8]) -> String {
    use base64::Engine;
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let iterator: String = request["ShardIterator"].as_str().unwrap_or_default().split_whitespace().collect();
    let decoded = base64::engine::general_purpose::STANDARD.decode(iterator).unwrap_or_default();
    String::from_utf8_lossy(&decoded).split(':').nth(1).unwrap_or("?").to_string()
}

/// At most this many failures per PutRecords entry when `put_entry_failure` < 1.0: half the
/// producer's attempts.
const MAX_ENTRY_FAILURES: u32 = stream::kinesis::MAX_PUT_ATTEMPTS / 2;

/// A running proxy.
pub struct FaultProxy {
    pub url: String,
    pub counters: Arc<Counters>,
}

impl FaultProxy {
    /// Starts a proxy in front of the moto that AWS_ENDPOINT_URL names.
    pub fn before_moto(faults: Faults, seed: u64) -> FaultProxy {
        FaultProxy::start(&moto(), faults, seed, None)
    }

    /// Starts a proxy in front of moto that serves `stream`'s reads itself (ListShards,
    /// GetShardIterator, GetRecords), as Kinesis keeps a stream across a split.
    pub fn serving(stream: Arc<SplitStream>, faults: Faults, seed: u64) -> FaultProxy {
        FaultProxy::start(&moto(), faults, seed, Some(stream))
    }

    /// Starts a proxy to `upstream` (host:port) on a free loopback port.
    fn start(upstream: &str, faults: Faults, seed: u64, stream: Option<Arc<SplitStream>>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let counters = Arc::new(Counters::default());
        let rng = Arc::new(Mutex::new(SmallRng::seed_from_u64(seed)));
        let (c, upstream) = (counters.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (c, rng, upstream, stream) = (c.clone(), rng.clone(), upstream.clone(), stream.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &upstream, (faults, stream.as_deref()), &rng, &c);
                });
            }
        });
        FaultProxy { url, counters }
    }
}

/// The moto that AWS_ENDPOINT_URL names, as host:port.
fn moto() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL set by scripts/test");
    endpoint.trim_start_matches("http://").trim_end_matches('/').to_string()
}

struct Message {
    head: Vec<String>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// Replaces the body and sets Content-Length; drops headers that describe the old body.
    fn with_body(mut self, body: Vec<u8>) -> Message {
        self.head.retain(|l| {
            let name = l.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
            !matches!(name.as_str(), "content-length" | "x-amz-crc32" | "transfer-encoding" | "connection")
        });
        self.head.push(format!("Content-Length: {}", body.len()));
        self.head.push("Connection: close".into());
        self.body = body;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.head.join("\r\n").into_bytes();
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Reads one HTTP/1.1 message (Content-Length bodies; to EOF when there is none and `to_eof`).
fn read_message(r: &mut impl BufRead, to_eof: bool) -> std::io::Result<Message> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let mut msg = Message { head, body: Vec::new() };
    match msg.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) => {
            msg.body = vec![0; n];
            r.read_exact(&mut msg.body)?;
        }
        None if to_eof => {
            r.read_to_end(&mut msg.body)?;
        }
        None => {}
    }
    Ok(msg)
}

fn json_response(status: &str, body: &str) -> Message {
    Message {
        head: vec![format!("HTTP/1.1 {status}"), "Content-Type: application/x-amz-json-1.0".into()],
        body: Vec::new(),
    }
    .with_body(body.as_bytes().to_vec())
}

fn forward(upstream: &str, request: Message) -> std::io::Result<Message> {
    let mut up = TcpStream::connect(upstream)?;
    let request = request.closing();
    up.write_all(&request.bytes())?;
    read_message(&mut BufReader::new(up), true)
}

impl Message {
    /// The same message, asking the upstream to close the connection after answering.
    fn closing(self) -> Message {
        let body = self.body.clone();
        self.with_body(body)
    }
}

fn serve(
    conn: TcpStream,
    upstream: &str,
    (faults, stream): (Faults, Option<&SplitStream>),
    rng: &Mutex<SmallRng>,
    c: &Counters,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let request = read_message(&mut reader, false)?;
    c.hosts.lock().expect("hosts").insert(request.header("host").unwrap_or_default().to_string());
    let target = request.header("x-amz-target").unwrap_or_default().to_string();
    c.targets.lock().expect("targets").push(target.clone());
    let signer = request.header("authorization").and_then(|a| a.split_once("Credential=")).map(|(_, rest)| rest);
    let key_id = signer.and_then(|rest| rest.split('/').next()).unwrap_or_default().to_string();
    c.signers.lock().expect("signers").push((target, key_id));
    let mut conn = conn;
    let is_batch_write = request.header("x-amz-target") == Some("DynamoDB_20120810.BatchWriteItem");
    let is_put_records = request.header("x-amz-target") == Some("Kinesis_20131202.PutRecords");
    if request.header("x-amz-target") == Some("Kinesis_20131202.GetRecords") {
        c.reads.lock().expect("reads").push((iterator_shard(&request.body), Instant::now()));
        let n = c.get_records.fetch_add(1, Ordering::SeqCst);
        if n < faults.throttle_first_reads {
            c.reads_throttled.fetch_add(1, Ordering::SeqCst);
            let body =
                r#"{"__type":"ProvisionedThroughputExceededException","message":"injected: read rate exceeded"}"#;
            return conn.write_all(&json_response("400 Bad Request", body).bytes());
        }
    }
    if request.header("x-amz-target") == Some("DynamoDB_20120810.Scan") {
        let n = c.scans.fetch_add(1, Ordering::SeqCst);
        if faults.scans_pass.is_some_and(|pass| n >= pass) {
            c.server_errors.fetch_add(1, Ordering::SeqCst);
            let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected: internal error"}"#;
            return conn.write_all(&json_response("500 Internal Server Error", body).bytes());
        }
        if let Some(wait) = faults.scan_delay.filter(|_| n > 0) {
            std::thread::sleep(wait);
        }
    }
    if let Some((status, body)) = stream.and_then(|s| s.serve(request.header("x-amz-target")?, &request.body)) {
        let status = if status == 200 { "200 OK" } else { "400 Bad Request" };
        return conn.write_all(&json_response(status, &body).bytes());
    }
    if is_put_records && (faults.put_entry_failure > 0.0 || faults.put_entry_fails_exactly.is_some()) {
        let response =
            fail_put_entries(upstream, request, (faults.put_entry_failure, faults.put_entry_fails_exactly), rng, c)?;
        return conn.write_all(&response.bytes());
    }
    if !is_batch_write {
        let response = forward(upstream, request)?;
        return conn.write_all(&response.closing().bytes());
    }
    c.batch_writes.fetch_add(1, Ordering::SeqCst);
    if let Some((marker, wait)) = faults.delay_marker
        && request.body.windows(marker.len()).any(|w| w == marker.as_bytes())
    {
        std::thread::sleep(wait);
        let response = forward(upstream, request)?.closing();
        c.delayed.lock().expect("delayed").push(Instant::now());
        return conn.write_all(&response.bytes());
    }
    let roll: f64 = rng.lock().expect("rng").random();
    let marked = faults.deny_marker.is_some_and(|m| request.body.windows(m.len()).any(|w| w == m.as_bytes()));
    let response = if marked {
        c.denied.fetch_add(1, Ordering::SeqCst);
        json_response(
            "400 Bad Request",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#AccessDeniedException","message":"injected: denied"}"#,
        )
    } else if roll < faults.throttle {
        c.throttled.fetch_add(1, Ordering::SeqCst);
        json_response(
            "400 Bad Request",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected: rate exceeded"}"#,
        )
    } else if roll < faults.throttle + faults.server_error {
        c.server_errors.fetch_add(1, Ordering::SeqCst);
        json_response(
            "500 Internal Server Error",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected: internal error"}"#,
        )
    } else if roll < faults.throttle + faults.server_error + faults.unprocessed {
        trim(upstream, request, c)?
    } else {
        c.passed.fetch_add(1, Ordering::SeqCst);
        forward(upstream, request)?.closing()
    };
    conn.write_all(&response.bytes())
}

/// Forwards only the first half of each table's requests and reports the rest as UnprocessedItems.
fn trim(upstream: &str, request: Message, c: &Counters) -> std::io::Result<Message> {
    let mut body: serde_json::Value = serde_json::from_slice(&request.body).map_err(std::io::Error::other)?;
    let mut left = serde_json::Map::new();
    if let Some(tables) = body["RequestItems"].as_object_mut() {
        for (table, reqs) in tables.iter_mut() {
            if let Some(list) = reqs.as_array_mut()
                && list.len() > 1
            {
                let rest = list.split_off(list.len() / 2);
                left.insert(table.clone(), serde_json::Value::Array(rest));
            }
        }
    }
    if left.is_empty() {
        c.passed.fetch_add(1, Ordering::SeqCst);
        return Ok(forward(upstream, request)?.closing());
    }
    c.trimmed.fetch_add(1, Ordering::SeqCst);
    let request = request.with_body(serde_json::to_vec(&body).map_err(std::io::Error::other)?);
    let response = forward(upstream, request)?;
    if !response.head.first().is_some_and(|s| s.contains(" 200 ")) {
        return Ok(response.closing());
    }
    let mut answer: serde_json::Value = serde_json::from_slice(&response.body).map_err(std::io::Error::other)?;
    let unprocessed = answer["UnprocessedItems"].as_object().cloned().unwrap_or_default();
    let mut merged = unprocessed;
    for (table, reqs) in left {
        let entry = merged.entry(table).or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let (Some(list), Some(extra)) = (entry.as_array_mut(), reqs.as_array()) {
            list.extend(extra.iter().cloned());
        }
    }
    answer["UnprocessedItems"] = serde_json::Value::Object(merged);
    Ok(response.with_body(serde_json::to_vec(&answer).map_err(std::io::Error::other)?))
}

/// Forwards only some PutRecords entries (a `share` of them, or each once it failed `exactly` so
/// many times); the others come back with an ErrorCode, in request order, as Kinesis answers a
/// partly throttled call (HTTP 200, FailedRecordCount > 0).
fn fail_put_entries(
    upstream: &str,
    request: Message,
    (share, exactly): (f64, Option<u32>),
    rng: &Mutex<SmallRng>,
    c: &Counters,
) -> std::io::Result<Message> {
    let mut body: serde_json::Value = serde_json::from_slice(&request.body).map_err(std::io::Error::other)?;
    let records = body["Records"].as_array().cloned().unwrap_or_default();
    let fail: Vec<bool> = {
        let mut rng = rng.lock().expect("rng");
        let mut failures = c.entry_failures.lock().expect("failures");
        records
            .iter()
            .map(|r| {
                let n = failures.entry(r["Data"].as_str().unwrap_or_default().to_string()).or_default();
                let fail = match exactly {
                    Some(times) => *n < times,
                    None => rng.random::<f64>() < share && (share >= 1.0 || *n < MAX_ENTRY_FAILURES),
                };
                *n += u32::from(fail);
                fail
            })
            .collect()
    };
    let kept: Vec<serde_json::Value> =
        records.iter().zip(&fail).filter(|(_, f)| !**f).map(|(r, _)| r.clone()).collect();
    let mut forwarded = Vec::new();
    if !kept.is_empty() {
        body["Records"] = serde_json::Value::Array(kept);
        let response = forward(upstream, request.with_body(serde_json::to_vec(&body).map_err(std::io::Error::other)?))?;
        if !response.head.first().is_some_and(|s| s.contains(" 200 ")) {
            return Ok(response.closing());
        }
        let answer: serde_json::Value = serde_json::from_slice(&response.body).map_err(std::io::Error::other)?;
        forwarded = answer["Records"].as_array().cloned().unwrap_or_default();
    }
    let mut forwarded = forwarded.into_iter();
    let mut failed = 0;
    let results: Vec<serde_json::Value> = fail
        .iter()
        .map(|f| {
            if *f {
                failed += 1;
                serde_json::json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "injected: rate exceeded for shard"})
            } else {
                forwarded.next().unwrap_or_else(|| serde_json::json!({"ErrorCode": "InternalFailure", "ErrorMessage": "missing"}))
            }
        })
        .collect();
    c.put_entries_failed.fetch_add(failed, Ordering::SeqCst);
    let answer = serde_json::json!({"FailedRecordCount": failed, "Records": results});
    Ok(json_response("200 OK", &answer.to_string()))
}
