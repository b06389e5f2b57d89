//! Live sources: the Bluesky Jetstream websocket and the X API v2 filtered stream. Each maps its
//! posts to the one v1.1-compatible record the function reads, sends (partition key, bytes) on a
//! channel, and reconnects on its own: Jetstream with its cursor (nothing missed, nothing sent
//! twice), X with the backoff X documents (linear for network errors, exponential for HTTP errors,
//! longer for 429).

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::net;
use crate::tweet::{Entities, Hashtag, Tweet, User, twitter_time};

/// A record for the producer: partition key and bytes.
pub type Record = (String, Bytes);

/// Records sent together on the sources' channel (a live source sends each post alone).
pub type Chunk = Vec<Record>;

/// Jetstream rewinds this far on reconnect, as its README advises; events already sent are skipped.
const CURSOR_REWIND_US: i64 = 5_000_000;

/// How long to wait before the next connection attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// Multiplies every wait (tests shrink it).
    pub scale: f64,
}

impl Backoff {
    fn wait(&self, base: Duration) -> Duration {
        base.mul_f64(self.scale.max(0.0))
    }
}

// ---------------------------------------------------------------- Bluesky Jetstream

#[derive(Deserialize)]
struct JetEvent {
    did: String,
    time_us: i64,
    kind: String,
    #[serde(default)]
    commit: Option<JetCommit>,
}

#[derive(Deserialize)]
struct JetCommit {
    operation: String,
    collection: String,
    rkey: String,
    #[serde(default)]
    record: Option<PostRecord>,
}

#[derive(Deserialize)]
struct PostRecord {
    #[serde(default)]
    text: String,
    #[serde(rename = "createdAt", default)]
    created_at: String,
    #[serde(default)]
    langs: Vec<String>,
    #[serde(default)]
    facets: Vec<Facet>,
}

#[derive(Deserialize)]
struct Facet {
    index: ByteSlice,
    #[serde(default)]
    features: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct ByteSlice {
    #[serde(rename = "byteStart")]
    byte_start: usize,
    #[serde(rename = "byteEnd")]
    byte_end: usize,
}

/// A record key (TID) as the number it encodes: base32-sortable, 13 characters, 64 bits.
fn tid_number(rkey: &str) -> Option<u64> {
    const ALPHABET: &[u8] = b"234567abcdefghijklmnopqrstuvwxyz";
    if rkey.len() != 13 {
        return None;
    }
    rkey.bytes().try_fold(0u64, |n, b| {
        let v = ALPHABET.iter().position(|&a| a == b)? as u64;
        n.checked_mul(32)?.checked_add(v)
    })
}

/// Maps one Jetstream message to a v1.1 tweet, when it is the creation of a post.
pub fn bluesky_tweet(message: &str) -> Option<(i64, Tweet)> {
    let ev: JetEvent = serde_json::from_str(message).ok()?;
    let commit =
        ev.commit.filter(|c| ev.kind == "commit" && c.operation == "create" && c.collection == "app.bsky.feed.post")?;
    let post = commit.record?;
    let created = DateTime::parse_from_rfc3339(&post.created_at)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| DateTime::from_timestamp_micros(ev.time_us))?;
    let char_index = |byte: usize| post.text.get(..byte.min(post.text.len())).map(|s| s.chars().count());
    let hashtags = post
        .facets
        .iter()
        .flat_map(|f| f.features.iter().map(move |feat| (f, feat)))
        .filter(|(_, feat)| feat["$type"] == "app.bsky.richtext.facet#tag")
        .filter_map(|(f, feat)| {
            let tag = feat["tag"].as_str()?.to_string();
            Some(Hashtag { text: tag, indices: [char_index(f.index.byte_start)?, char_index(f.index.byte_end)?] })
        })
        .collect();
    let id = tid_number(&commit.rkey).map_or(commit.rkey.clone(), |n| n.to_string());
    // Events carry the author's DID, not the handle: it is the stable user id.
    let user = User { name: ev.did.clone(), screen_name: ev.did.clone(), id_str: ev.did };
    let tweet = Tweet {
        id_str: id,
        created_at: twitter_time(created),
        text: post.text,
        truncated: false,
        extended_tweet: None,
        user,
        lang: post.langs.into_iter().next(),
        entities: Entities { hashtags },
    };
    Some((ev.time_us, tweet))
}

/// Reads Jetstream at `url` until the receiver is gone, reconnecting with the cursor.
pub async fn bluesky(url: String, net: net::Net, tx: mpsc::Sender<Chunk>, backoff: Backoff) {
    let mut last_time_us: Option<i64> = None;
    let mut failures = 0u32;
    loop {
        let with_cursor = match (last_time_us, url::Url::parse(&url)) {
            (Some(t), Ok(mut u)) => {
                u.query_pairs_mut().append_pair("cursor", &(t - CURSOR_REWIND_US).to_string());
                u.to_string()
            }
            _ => url.clone(),
        };
        match read_jetstream(&with_cursor, &net, &tx, &mut last_time_us, &mut failures).await {
            Ok(Done::ReceiverGone) => return,
            Ok(Done::Closed) => tracing::warn!("Jetstream closed the connection; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "Jetstream connection failed; reconnecting"),
        }
        failures += 1;
        // Exponential, 1 s to 30 s; reset once messages flow again.
        let wait = Duration::from_secs(1 << failures.min(5).saturating_sub(1)).min(Duration::from_secs(30));
        tokio::time::sleep(backoff.wait(wait)).await;
    }
}

enum Done {
    ReceiverGone,
    Closed,
}

async fn read_jetstream(
    url: &str,
    net: &net::Net,
    tx: &mpsc::Sender<Chunk>,
    last: &mut Option<i64>,
    failures: &mut u32,
) -> Result<Done, String> {
    let ep = net::endpoint(url)?;
    let stream = net.connect(&ep).await.map_err(|e| format!("connecting to {}:{}: {e}", ep.host, ep.port))?;
    let (mut ws, _) =
        tokio_tungstenite::client_async(url, stream).await.map_err(|e| format!("websocket handshake: {e}"))?;
    while let Some(msg) = ws.next().await {
        let text = match msg.map_err(|e| e.to_string())? {
            Message::Text(t) => t,
            Message::Close(_) => return Ok(Done::Closed),
            _ => continue,
        };
        *failures = 0;
        let Some((time_us, tweet)) = bluesky_tweet(&text) else {
            // Other kinds (identity, account), deletes, other collections: track the cursor only.
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(t) = v["time_us"].as_i64()
            {
                *last = Some(last.map_or(t, |l| l.max(t)));
            }
            continue;
        };
        // After a rewound reconnect, events up to the last one sent were sent already.
        if last.is_some_and(|l| time_us <= l) {
            continue;
        }
        *last = Some(time_us);
        if tx.send(vec![(tweet.partition_key().to_string(), tweet.to_bytes().into())]).await.is_err() {
            return Ok(Done::ReceiverGone);
        }
    }
    Ok(Done::Closed)
}

// ---------------------------------------------------------------- X API v2 filtered stream

/// Tag on the rules this tool adds, so it replaces its own rules and no others.
const RULE_TAG: &str = "stream-cli";
/// Fields the stream is asked for: what the v1.1 record needs.
const STREAM_QUERY: &str =
    "tweet.fields=created_at,author_id,lang,entities&expansions=author_id&user.fields=username,name";

#[derive(Deserialize)]
struct XMessage {
    data: XTweet,
    #[serde(default)]
    includes: XIncludes,
}

#[derive(Deserialize)]
struct XTweet {
    id: String,
    text: String,
    #[serde(default)]
    author_id: String,
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    entities: Option<XEntities>,
}

#[derive(Deserialize, Default)]
struct XEntities {
    #[serde(default)]
    hashtags: Vec<XHashtag>,
}

#[derive(Deserialize)]
struct XHashtag {
    start: usize,
    end: usize,
    tag: String,
}

#[derive(Deserialize, Default)]
struct XIncludes {
    #[serde(default)]
    users: Vec<XUser>,
}

#[derive(Deserialize)]
struct XUser {
    id: String,
    name: String,
    username: String,
}

/// Maps one line of the filtered stream to a v1.1 tweet.
pub fn x_tweet(line: &str) -> Option<Tweet> {
    let m: XMessage = serde_json::from_str(line).ok()?;
    let author = m.includes.users.iter().find(|u| u.id == m.data.author_id);
    let created =
        DateTime::parse_from_rfc3339(&m.data.created_at).map(|t| t.with_timezone(&Utc)).unwrap_or_else(|_| Utc::now());
    let user = match author {
        Some(u) => User { name: u.name.clone(), screen_name: u.username.clone(), id_str: u.id.clone() },
        None => User {
            name: m.data.author_id.clone(),
            screen_name: m.data.author_id.clone(),
            id_str: m.data.author_id.clone(),
        },
    };
    let hashtags = m
        .data
        .entities
        .unwrap_or_default()
        .hashtags
        .into_iter()
        .map(|h| Hashtag { text: h.tag, indices: [h.start, h.end] })
        .collect();
    Some(Tweet {
        id_str: m.data.id,
        created_at: twitter_time(created),
        text: m.data.text,
        truncated: false,
        extended_tweet: None,
        user,
        lang: m.data.lang,
        entities: Entities { hashtags },
    })
}

/// Why an X request failed, as the reconnect policy needs to know it.
#[derive(Debug)]
enum XError {
    Network(String),
    Http(u16, String),
}

impl std::fmt::Display for XError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XError::Network(e) => write!(f, "network error: {e}"),
            XError::Http(code, body) => write!(f, "HTTP {code}: {}", body.chars().take(200).collect::<String>()),
        }
    }
}

/// One request to the X API with the bearer token, on the client's pooled connections; returns
/// the response if it is 2xx.
async fn x_request(
    client: &net::HttpClient,
    url: &url::Url,
    method: &str,
    token: &str,
    body: Option<String>,
) -> Result<hyper::Response<hyper::body::Incoming>, XError> {
    let builder = Request::builder()
        .method(method)
        .uri(url.as_str())
        .header("user-agent", concat!("stream/", env!("CARGO_PKG_VERSION")))
        .header("authorization", format!("Bearer {token}"));
    let request = match body {
        Some(b) => builder.header("content-type", "application/json").body(Full::new(Bytes::from(b)).boxed()),
        None => builder.body(Empty::<Bytes>::new().map_err(|never| match never {}).boxed()),
    }
    .map_err(|e| XError::Network(e.to_string()))?;
    let response = client.request(request).await.map_err(|e| XError::Network(network_error(&e)))?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let text = response
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).to_string())
        .unwrap_or_default();
    Err(XError::Http(status, text))
}

/// A failed request with its causes ("client error (Connect): connection refused").
fn network_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

async fn json_of(response: hyper::Response<hyper::body::Incoming>) -> Result<serde_json::Value, XError> {
    let bytes = response.into_body().collect().await.map_err(|e| XError::Network(e.to_string()))?.to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| XError::Network(format!("bad JSON from X: {e}")))
}

/// Replaces this tool's rules with one rule per `--track` value.
async fn set_rules(client: &net::HttpClient, rules: &url::Url, token: &str, track: &[String]) -> Result<(), XError> {
    let current = json_of(x_request(client, rules, "GET", token, None).await?).await?;
    let ours: Vec<String> = current["data"]
        .as_array()
        .map(|rules| {
            rules.iter().filter(|r| r["tag"] == RULE_TAG).filter_map(|r| r["id"].as_str().map(String::from)).collect()
        })
        .unwrap_or_default();
    if !ours.is_empty() {
        let body = serde_json::json!({"delete": {"ids": ours}}).to_string();
        x_request(client, rules, "POST", token, Some(body)).await?;
    }
    let add: Vec<serde_json::Value> = track.iter().map(|t| serde_json::json!({"value": t, "tag": RULE_TAG})).collect();
    let body = serde_json::json!({ "add": add }).to_string();
    x_request(client, rules, "POST", token, Some(body)).await?;
    Ok(())
}

/// The X API's URLs under `base_url`: the rules, and the stream with the fields it is asked for.
fn x_urls(base_url: &str) -> Result<(url::Url, url::Url), String> {
    let base = net::endpoint(&format!("{}/", base_url.trim_end_matches('/')))?.url;
    let join = |path: &str| base.join(path).map_err(|e| format!("{base}{path}: {e}"));
    Ok((join("2/tweets/search/stream/rules")?, join(&format!("2/tweets/search/stream?{STREAM_QUERY}"))?))
}

/// Reads the filtered stream at `base_url` until the receiver is gone, reconnecting as X documents.
/// Its requests share the connections of one pooled client.
pub async fn x(
    base_url: String,
    net: net::Net,
    token: String,
    track: Vec<String>,
    tx: mpsc::Sender<Chunk>,
    backoff: Backoff,
) {
    let (rules, stream) = match x_urls(&base_url) {
        Ok(urls) => urls,
        Err(e) => {
            tracing::error!(error = %e, "bad X API URL");
            return;
        }
    };
    let client = net.http_client();
    let (mut network_failures, mut http_failures) = (0u32, 0u32);
    let mut rules_set = track.is_empty();
    loop {
        let result = async {
            if !rules_set {
                set_rules(&client, &rules, &token, &track).await?;
                rules_set = true;
            }
            let response = x_request(&client, &stream, "GET", &token, None).await?;
            network_failures = 0;
            http_failures = 0;
            read_x_stream(response, &tx).await
        }
        .await;
        let wait = match result {
            Ok(true) => return,
            Ok(false) => {
                network_failures += 1;
                tracing::warn!("X closed the stream; reconnecting");
                Duration::from_millis(250 * u64::from(network_failures)).min(Duration::from_secs(16))
            }
            // https://docs.x.com/x-api/posts/filtered-stream/integrate/handling-disconnections
            Err(XError::Http(429, _)) => {
                http_failures += 1;
                tracing::warn!("X: too many requests; backing off");
                Duration::from_secs(60 << http_failures.min(5).saturating_sub(1))
            }
            Err(e @ XError::Http(..)) => {
                http_failures += 1;
                tracing::warn!(error = %e, "X stream request failed; backing off");
                Duration::from_secs(5 << http_failures.min(7).saturating_sub(1)).min(Duration::from_secs(320))
            }
            Err(e @ XError::Network(_)) => {
                network_failures += 1;
                tracing::warn!(error = %e, "X stream connection failed; reconnecting");
                Duration::from_millis(250 * u64::from(network_failures)).min(Duration::from_secs(16))
            }
        };
        tokio::time::sleep(backoff.wait(wait)).await;
    }
}

/// Reads newline-delimited JSON (blank lines are keep-alives). True when the receiver is gone.
async fn read_x_stream(
    response: hyper::Response<hyper::body::Incoming>,
    tx: &mpsc::Sender<Chunk>,
) -> Result<bool, XError> {
    let mut body = response.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| XError::Network(e.to_string()))?;
        let Some(data) = frame.data_ref() else { continue };
        buf.extend_from_slice(data);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            match x_tweet(line) {
                Some(t) => {
                    if tx.send(vec![(t.partition_key().to_string(), t.to_bytes().into())]).await.is_err() {
                        return Ok(true);
                    }
                }
                None => tracing::warn!("X stream line that is not a post; skipped"),
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tweet::item_from_payload;

    #[test]
    fn jetstream_posts_become_v1_tweets() {
        let msg = r##"{"did":"did:plc:abc","time_us":1703123456789012,"kind":"commit","commit":{"rev":"x","operation":"create",
            "collection":"app.bsky.feed.post","rkey":"3kmkfsmn3c22k","cid":"c","record":{"$type":"app.bsky.feed.post",
            "text":"héllo #rust 🦀","createdAt":"2024-01-02T03:04:05.678Z","langs":["en"],
            "facets":[{"index":{"byteStart":7,"byteEnd":12},"features":[{"$type":"app.bsky.richtext.facet#tag","tag":"rust"}]}]}}}"##;
        let (time, t) = bluesky_tweet(msg).expect("a post");
        assert_eq!(time, 1703123456789012);
        assert_eq!(t.created_at, "Tue Jan 02 03:04:05 +0000 2024");
        assert_eq!(t.user.screen_name, "did:plc:abc");
        assert_eq!(t.lang.as_deref(), Some("en"));
        assert_eq!(t.entities.hashtags[0].text, "rust");
        assert_eq!(t.entities.hashtags[0].indices, [6, 11]);
        assert!(t.id_str.parse::<u64>().is_ok(), "TID as a number: {}", t.id_str);
        let item = item_from_payload(&t.to_bytes()).expect("the function reads it");
        assert_eq!(item.message, "héllo #rust 🦀");
    }

    #[test]
    fn other_jetstream_events_are_not_posts() {
        assert!(bluesky_tweet(r#"{"did":"d","time_us":1,"kind":"identity","identity":{}}"#).is_none());
        assert!(bluesky_tweet(r#"{"did":"d","time_us":1,"kind":"commit","commit":{"operation":"delete","collection":"app.bsky.feed.post","rkey":"r"}}"#).is_none());
        assert!(bluesky_tweet("not json").is_none());
    }

    #[test]
    fn x_posts_become_v1_tweets() {
        let line = r#"{"data":{"id":"1346889436626259968","text":"Hello #world","author_id":"2244994945","created_at":"2021-01-06T18:40:40.000Z","lang":"en",
            "entities":{"hashtags":[{"start":6,"end":12,"tag":"world"}]}},
            "includes":{"users":[{"id":"2244994945","name":"Developers","username":"XDevelopers"}]},"matching_rules":[{"id":"1","tag":"stream-cli"}]}"#;
        let t = x_tweet(line).expect("a post");
        assert_eq!(t.id_str, "1346889436626259968");
        assert_eq!(t.user.name, "Developers");
        assert_eq!(t.user.screen_name, "XDevelopers");
        assert_eq!(t.created_at, "Wed Jan 06 18:40:40 +0000 2021");
        assert_eq!(t.entities.hashtags[0].indices, [6, 12]);
        assert_eq!(item_from_payload(&t.to_bytes()).expect("readable").timestamp, "2021-01-06T18:40:40.000Z");
    }

    #[test]
    fn tids_decode_to_numbers() {
        assert_eq!(tid_number("2222222222222"), Some(0));
        assert!(tid_number("3kmkfsmn3c22k").is_some());
        assert_eq!(tid_number("short"), None);
        assert_eq!(tid_number("!!!!!!!!!!!!!"), None);
    }
}
