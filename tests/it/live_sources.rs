//! The live sources against local servers that speak their protocols: a Jetstream websocket that
//! is killed mid-stream and must be resumed from the cursor, and an X filtered stream (rules API,
//! newline-delimited JSON with keep-alives, a dropped connection, a 429). Through the real binary
//! on moto: the stream holds exactly the posts the servers sent, once each. Offline: the X source
//! keeps one connection for its requests, and both sources go through a CONNECT proxy unless
//! NO_PROXY names the host.

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::World;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const BASE_US: i64 = 1_700_000_000_000_000;

fn jet_post(i: i64) -> String {
    // Record keys are TIDs: 13 base32-sortable characters.
    let rkey = format!("3kmk{:09}", i).replace('0', "a").replace('1', "b").replace('8', "c").replace('9', "d");
    serde_json::json!({"did": format!("did:plc:user{}", i % 7), "time_us": BASE_US + i * 1_000_000, "kind": "commit",
        "commit": {"rev": "r", "operation": "create", "collection": "app.bsky.feed.post", "rkey": rkey, "cid": "c",
            "record": {"$type": "app.bsky.feed.post", "text": format!("post {i} 🦋 日本"), "createdAt": "2024-05-01T10:00:00.000Z", "langs": ["en"]}}})
    .to_string()
}

fn jet_noise(i: i64) -> String {
    serde_json::json!({"did": "did:plc:x", "time_us": BASE_US + i * 1_000_000 + 500, "kind": "identity", "identity": {}}).to_string()
}

/// The records of the stream as JSON.
async fn stream_payloads(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<serde_json::Value> {
    common::read_stream(kinesis, stream)
        .await
        .iter()
        .map(|(_, _, data)| serde_json::from_slice(data).expect("json"))
        .collect()
}

/// A Jetstream fixture: posts 1-15 then the connection dies; on reconnect, everything from the
/// cursor on (posts 11-30). Records the query of every connection.
async fn jetstream_fixture(queries: Arc<Mutex<Vec<String>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/subscribe?wantedCollections=app.bsky.feed.post", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut connection = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            connection += 1;
            let q = queries.clone();
            // The handshake callback's error type is tungstenite's; this one never fails.
            #[allow(clippy::result_large_err)]
            let callback = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                q.lock().expect("lock").push(req.uri().query().unwrap_or_default().to_string());
                Ok(resp)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else { continue };
            if connection == 1 {
                for i in 1..=15 {
                    let _ = ws.send(Message::text(jet_post(i))).await;
                    let _ = ws.send(Message::text(jet_noise(i))).await;
                }
                // Killed: the TCP connection drops without a close frame.
                drop(ws);
            } else {
                let query = queries.lock().expect("lock").last().cloned().unwrap_or_default();
                let cursor: i64 = query.split("cursor=").nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                for i in 1..=30 {
                    if BASE_US + i * 1_000_000 >= cursor {
                        let _ = ws.send(Message::text(jet_post(i))).await;
                    }
                }
                // Stay open, as the live service does.
                while ws.next().await.is_some() {}
            }
        }
    });
    url
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn bluesky_resumes_from_its_cursor_without_loss_or_duplicates() {
    let w = World::new("bluesky", "eu-north-1");
    let clients = w.clients().await;
    w.run(&["deploy"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    let queries = Arc::new(Mutex::new(Vec::new()));
    let url = jetstream_fixture(queries.clone()).await;
    let proxied = Arc::new(Mutex::new(Vec::new()));
    let proxy = connect_proxy(proxied.clone()).await;

    let mut cmd =
        w.cmd(&["produce", "--source", "bluesky", "--bluesky-url", &url, "--count", "30", "--reconnect-scale", "0.01"]);
    // The proxy from the environment, as the AWS CLI takes it (ws:// is plain HTTP's: HTTP_PROXY).
    cmd.env("HTTP_PROXY", &proxy).env_remove("NO_PROXY").env_remove("no_proxy");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("runs")).await.expect("join");
    let (stdout, _) = common::check(&out, 0, &["produce", "--source", "bluesky"]);
    assert!(stdout.contains("produced 30 records"), "{stdout}");

    let queries = queries.lock().expect("lock").clone();
    assert_eq!(queries.len(), 2, "one reconnect: {queries:?}");
    assert_eq!(proxied.lock().expect("lock").len(), 2, "both connections went through HTTP_PROXY");
    assert!(!queries[0].contains("cursor="));
    // The cursor is the last event seen (the identity event after post 15), rewound 5 s.
    assert!(queries[1].ends_with(&format!("cursor={}", BASE_US + 15 * 1_000_000 + 500 - 5_000_000)), "{queries:?}");

    let records = stream_payloads(&clients.kinesis, &outputs.stream_name).await;
    let texts: Vec<String> = records.iter().map(|r| r["text"].as_str().expect("text").to_string()).collect();
    assert_eq!(texts.len(), 30, "{texts:?}");
    let expected: BTreeSet<String> = (1..=30).map(|i| format!("post {i} 🦋 日本")).collect();
    assert_eq!(texts.iter().cloned().collect::<BTreeSet<_>>(), expected, "each post once");
    for r in &records {
        stream::tweet::item_from_payload(r.to_string().as_bytes()).expect("the function reads every record");
    }
    w.run(&["destroy", "--yes"], 0);
}

/// Reads one HTTP request from a client: (request line, headers, body).
async fn read_http(tcp: &mut tokio::net::TcpStream) -> Option<(String, Vec<String>, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.split("\r\n").map(String::from);
    let first = lines.next()?;
    let headers: Vec<String> = lines.filter(|l| !l.is_empty()).collect();
    let len = headers
        .iter()
        .find_map(|h| {
            h.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    tcp.read_exact(&mut body).await.ok()?;
    Some((first, headers, String::from_utf8_lossy(&body).to_string()))
}

fn x_post(i: usize) -> String {
    serde_json::json!({"data": {"id": format!("{}", 1_800_000_000_000_000_000u64 + i as u64), "text": format!("x post {i} #rust"),
        "author_id": "42", "created_at": "2025-03-04T05:06:07.000Z", "lang": "en",
        "entities": {"hashtags": [{"start": 9, "end": 14, "tag": "rust"}]}},
        "includes": {"users": [{"id": "42", "name": "Ferris", "username": "ferris"}]},
        "matching_rules": [{"id": "9", "tag": "stream-cli"}]})
    .to_string()
}

/// An X API fixture: rules endpoints, then a stream that drops after 10 posts, a 429, and 10 more.
/// Requests the X fixture received: (request line, headers, body).
type RequestLog = Arc<Mutex<Vec<(String, Vec<String>, String)>>>;

async fn x_fixture(log: RequestLog) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut streams = 0;
        while let Ok((mut tcp, _)) = listener.accept().await {
            let Some((line, headers, body)) = read_http(&mut tcp).await else { continue };
            log.lock().expect("lock").push((line.clone(), headers, body));
            let json = |status: &str, body: &str| {
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            if line.starts_with("GET /2/tweets/search/stream/rules") {
                let rules = r#"{"data":[{"id":"1","value":"old","tag":"stream-cli"},{"id":"2","value":"theirs","tag":"someone-else"}]}"#;
                let _ = tcp.write_all(json("200 OK", rules).as_bytes()).await;
            } else if line.starts_with("POST /2/tweets/search/stream/rules") {
                let _ = tcp.write_all(json("200 OK", r#"{"meta":{"sent":"now"}}"#).as_bytes()).await;
            } else if line.starts_with("GET /2/tweets/search/stream?") {
                streams += 1;
                if streams == 2 {
                    let _ = tcp
                        .write_all(json("429 Too Many Requests", r#"{"title":"Too Many Requests"}"#).as_bytes())
                        .await;
                    continue;
                }
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                    )
                    .await;
                let range = if streams == 1 { 1..=10 } else { 11..=20 };
                for i in range {
                    for chunk in [format!("{}\r\n", x_post(i)), "\r\n".to_string()] {
                        let _ = tcp.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes()).await;
                    }
                }
                if streams == 1 {
                    drop(tcp);
                    continue;
                }
                // Keep-alives until the client goes away.
                loop {
                    if tcp.write_all(b"2\r\n\r\n\r\n").await.is_err() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    });
    url
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn x_stream_sets_its_rules_and_reconnects_after_drops_and_429() {
    let w = World::new("xstream", "eu-south-1");
    let clients = w.clients().await;
    w.run(&["deploy"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    let log = Arc::new(Mutex::new(Vec::new()));
    let url = x_fixture(log.clone()).await;
    let token = "test-bearer-token-not-to-be-printed";

    let mut cmd = w.cmd(&[
        "produce",
        "--source",
        "x",
        "--x-url",
        &url,
        "--track",
        "rust",
        "--count",
        "20",
        "--reconnect-scale",
        "0.001",
    ]);
    // NO_PROXY names the host: the proxy in the environment is bypassed.
    let proxied = Arc::new(Mutex::new(Vec::new()));
    let proxy = connect_proxy(proxied.clone()).await;
    cmd.env("X_BEARER_TOKEN", token).env("HTTP_PROXY", &proxy).env("NO_PROXY", "127.0.0.1");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("runs")).await.expect("join");
    let (stdout, stderr) = common::check(&out, 0, &["produce", "--source", "x"]);
    assert!(stdout.contains("produced 20 records"), "{stdout}");
    assert!(!stdout.contains(token) && !stderr.contains(token), "the token is never printed");

    let log = log.lock().expect("lock").clone();
    assert!(log.iter().all(|(_, headers, _)| headers.iter().any(|h| h == &format!("authorization: Bearer {token}"))));
    let posts: Vec<&String> = log.iter().filter(|(l, _, _)| l.starts_with("POST")).map(|(_, _, b)| b).collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(posts[0]).expect("json"),
        serde_json::json!({"delete": {"ids": ["1"]}})
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(posts[1]).expect("json"),
        serde_json::json!({"add": [{"value": "rust", "tag": "stream-cli"}]})
    );
    let stream_requests = log.iter().filter(|(l, _, _)| l.starts_with("GET /2/tweets/search/stream?")).count();
    assert_eq!(stream_requests, 3, "connected, dropped, 429, connected");
    assert!(proxied.lock().expect("lock").is_empty(), "NO_PROXY bypassed the proxy");

    let records = stream_payloads(&clients.kinesis, &outputs.stream_name).await;
    let ids: BTreeSet<String> = records.iter().map(|r| r["id_str"].as_str().expect("id").to_string()).collect();
    assert_eq!(records.len(), 20);
    assert_eq!(ids, (1..=20).map(|i| (1_800_000_000_000_000_000u64 + i).to_string()).collect());
    assert!(
        records.iter().all(|r| r["user"]["screen_name"] == "ferris" && r["entities"]["hashtags"][0]["text"] == "rust")
    );
    w.run(&["destroy", "--yes"], 0);
}

/// An X API fixture that keeps connections open, as the real API does: counts the connections
/// it accepts and logs each request line. The stream sends 3 posts, then keep-alives.
async fn x_keepalive_fixture(connections: Arc<AtomicUsize>, requests: Arc<Mutex<Vec<String>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            let requests = requests.clone();
            tokio::spawn(async move {
                while let Some((line, _, _)) = read_http(&mut tcp).await {
                    requests.lock().expect("lock").push(line.clone());
                    if !line.starts_with("GET /2/tweets/search/stream?") {
                        let body = if line.starts_with("GET") {
                            r#"{"data":[{"id":"1","value":"old","tag":"stream-cli"}]}"#
                        } else {
                            r#"{"meta":{"sent":"now"}}"#
                        };
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                        let _ = tcp.write_all(format!("{head}{body}").as_bytes()).await;
                        continue;
                    }
                    let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await;
                    for i in 1..=3 {
                        let chunk = format!("{}\r\n", x_post(i));
                        let _ = tcp.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes()).await;
                    }
                    while tcp.write_all(b"2\r\n\r\n\r\n").await.is_ok() {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    return;
                }
            });
        }
    });
    url
}

/// The X source's requests (read the rules, delete ours, add the new, open the stream) go over one
/// kept-alive connection, not a new TCP (and TLS) connection each.
#[tokio::test]
async fn x_requests_share_one_connection() {
    let (connections, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let url = x_keepalive_fixture(connections.clone(), requests.clone()).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let backoff = stream::produce::live::Backoff { scale: 0.001 };
    let net = stream::net::Net::with_proxies(None, None, None);
    let task = tokio::spawn(stream::produce::live::x(url, net, "t".into(), vec!["rust".into()], tx, backoff));
    for _ in 0..3 {
        let post = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await;
        post.expect("a post in time").expect("the source is running");
    }
    drop(rx);
    task.abort();
    let requests = requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 4, "{requests:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "one connection for {requests:?}");
}

/// A CONNECT proxy on 127.0.0.1: logs the target of each CONNECT, then pipes bytes both ways.
async fn connect_proxy(log: Arc<Mutex<Vec<String>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let Some((line, _, _)) = read_http(&mut client).await else { return };
                let Some(target) = line.strip_prefix("CONNECT ").and_then(|t| t.split(' ').next()) else { return };
                log.lock().expect("lock").push(target.to_string());
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    url
}

/// Takes `n` chunks from a live source, then stops it.
async fn take(
    mut rx: tokio::sync::mpsc::Receiver<stream::produce::live::Chunk>,
    n: usize,
    task: tokio::task::JoinHandle<()>,
) {
    for _ in 0..n {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await;
        chunk.expect("a post in time").expect("the source is running");
    }
    task.abort();
}

/// With a proxy for the URL's scheme (HTTP_PROXY here: the fixture is http://), the X source
/// tunnels through it with CONNECT; a host in NO_PROXY is reached directly.
#[tokio::test]
async fn x_goes_through_the_proxy_unless_no_proxy_names_the_host() {
    let proxied = Arc::new(Mutex::new(Vec::new()));
    let proxy = connect_proxy(proxied.clone()).await;
    let (connections, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let url = x_keepalive_fixture(connections.clone(), requests.clone()).await;
    let backoff = || stream::produce::live::Backoff { scale: 0.001 };
    let authority = url.trim_start_matches("http://").to_string();

    let net = stream::net::Net::with_proxies(Some(&proxy), None, None);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(stream::produce::live::x(url.clone(), net, "t".into(), vec!["rust".into()], tx, backoff()));
    take(rx, 3, task).await;
    assert_eq!(proxied.lock().expect("lock").clone(), [authority], "one tunnel, kept for every request");

    let net = stream::net::Net::with_proxies(Some(&proxy), None, Some("localhost,127.0.0.1"));
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(stream::produce::live::x(url, net, "t".into(), vec!["rust".into()], tx, backoff()));
    take(rx, 3, task).await;
    assert_eq!(proxied.lock().expect("lock").len(), 1, "NO_PROXY bypasses the proxy");
    assert_eq!(connections.load(Ordering::SeqCst), 2, "one connection each time");
}

/// The Jetstream websocket goes through the proxy too (CONNECT, then the websocket handshake).
#[tokio::test]
async fn bluesky_goes_through_the_proxy() {
    let proxied = Arc::new(Mutex::new(Vec::new()));
    let proxy = connect_proxy(proxied.clone()).await;
    let url = jetstream_fixture(Arc::new(Mutex::new(Vec::new()))).await;
    let net = stream::net::Net::with_proxies(Some(&proxy), Some(&proxy), None);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let backoff = stream::produce::live::Backoff { scale: 0.001 };
    let task = tokio::spawn(stream::produce::live::bluesky(url.clone(), net, tx, backoff));
    take(rx, 3, task).await;
    let authority = url.trim_start_matches("ws://").split('/').next().expect("authority").to_string();
    assert_eq!(proxied.lock().expect("lock").first(), Some(&authority), "{url}");
}
