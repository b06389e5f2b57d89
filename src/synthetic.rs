//! Synthetic events, seeded (the same seed gives the same events), for `produce`, `plan` and the
//! tests: v1.1 tweets in every script (emoji, long tweets with `extended_tweet`, hashtags with code
//! point indices), and the events of the other built-in schemas — web clickstream, IoT telemetry
//! and order changes — at realistic sizes and with realistic key skew: a few hot sessions, devices
//! and orders take much of the traffic, many cold ones the rest. Pure: no AWS here.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::tweet::{Entities, ExtendedTweet, Hashtag, Tweet, User, twitter_time};

/// A kind of synthetic event: one per built-in schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// v1.1 tweets (the `tweets` schema)
    Tweets,
    /// Web clickstream events (the `clickstream` schema)
    Clickstream,
    /// IoT device readings (the `iot` schema)
    Iot,
    /// Order changes with versions, some arriving late (the `orders` schema)
    Orders,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::Tweets, Kind::Clickstream, Kind::Iot, Kind::Orders];

    /// The kind's name, which is also the name of the built-in schema its events fit.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tweets => "tweets",
            Kind::Clickstream => "clickstream",
            Kind::Iot => "iot",
            Kind::Orders => "orders",
        }
    }

    /// The kind whose events fit the schema named `name`, if there is one.
    pub fn for_schema(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// An endless, seeded supply of events of one kind, each as compact JSON bytes.
pub struct Events {
    source: Box<dyn FnMut() -> Vec<u8> + Send>,
}

impl Events {
    /// Events of `kind` from `seed` (random when `None`).
    pub fn new(kind: Kind, seed: Option<u64>) -> Events {
        let source: Box<dyn FnMut() -> Vec<u8> + Send> = match kind {
            Kind::Tweets => {
                let mut t = Synthetic::new(seed);
                Box::new(move || t.next_tweet().to_bytes())
            }
            Kind::Clickstream => {
                let mut c = Clickstream::new(seed);
                Box::new(move || c.next_event())
            }
            Kind::Iot => {
                let mut d = Telemetry::new(seed);
                Box::new(move || d.next_event())
            }
            Kind::Orders => {
                let mut o = Orders::new(seed);
                Box::new(move || o.next_event())
            }
        };
        Events { source }
    }
}

impl Iterator for Events {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        Some((self.source)())
    }
}

/// The seed and the clock's start: a fixed instant with a seed (so runs repeat), now without one.
fn start(seed: Option<u64>) -> (SmallRng, DateTime<Utc>) {
    match seed {
        Some(s) => {
            (SmallRng::seed_from_u64(s), Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().unwrap_or_else(Utc::now))
        }
        None => (SmallRng::seed_from_u64(rand::rng().random()), Utc::now()),
    }
}

/// A key out of `pool`: with probability `hot_share` one of the first `hot` (a few keys take much
/// of the traffic, as real sessions, devices and orders do), else any.
fn skewed(rng: &mut SmallRng, pool: usize, hot: usize, hot_share: f64) -> usize {
    if rng.random_bool(hot_share) { rng.random_range(0..hot) } else { rng.random_range(0..pool) }
}

fn hex_id(rng: &mut SmallRng, digits: usize) -> String {
    (0..digits).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
}

/// v1.1 streams cut `text` at 140 characters and carry the rest in `extended_tweet`.
const SHORT_TEXT_CHARS: usize = 140;
/// Tweets hold at most 280 characters.
const MAX_TEXT_CHARS: usize = 280;
/// Twitter's snowflake epoch (2010-11-04T01:42:54.657Z) in milliseconds.
const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

const FIRST_NAMES: &[&str] = &[
    "Ana",
    "José",
    "Zoë",
    "Łukasz",
    "Ингрид",
    "Дмитрий",
    "Αλέξης",
    "محمد",
    "فاطمة",
    "יעל",
    "अनन्या",
    "राहुल",
    "太郎",
    "さくら",
    "小明",
    "美玲",
    "민준",
    "서연",
    "Nguyễn",
    "Søren",
    "Chloé",
    "Ayşe",
    "Kwame",
    "Ngozi",
    "Björk",
    "Siobhán",
    "Mateus",
    "Olu",
    "Priya",
    "Tomás",
];
const LAST_NAMES: &[&str] = &[
    "García",
    "Müller",
    "Kowalski",
    "Иванова",
    "Παπαδόπουλος",
    "الحسن",
    "כהן",
    "शर्मा",
    "山田",
    "佐藤",
    "王",
    "김",
    "Trần",
    "Jørgensen",
    "Dubois",
    "Yılmaz",
    "Mensah",
    "Okafor",
    "Guðmundsdóttir",
    "O'Brien",
    "Silva",
    "Smith",
    "🦀",
    "✨",
    "",
];
const WORDS: &[&str] = &[
    "stream",
    "data",
    "real-time",
    "latency",
    "shard",
    "the",
    "a",
    "is",
    "fast",
    "today",
    "coffee",
    "weekend",
    "launch",
    "deploy",
    "rust",
    "lambda",
    "серверный",
    "поток",
    "данные",
    "ストリーム",
    "処理",
    "リアルタイム",
    "数据",
    "实时",
    "处理",
    "데이터",
    "스트림",
    "datos",
    "flujo",
    "Straße",
    "über",
    "naïve",
    "café",
    "déjà vu",
    "حقيقي",
    "الوقت",
    "בזמן",
    "אמת",
    "समय",
    "वास्तविक",
    "ζωντανά",
    "δεδομένα",
    "hôm nay",
    "güzel",
    "🚀",
    "🔥",
    "😂",
    "❤️",
    "👍🏽",
    "🎉",
    "🌏",
    "🤖",
    "👨‍👩‍👧",
    "🇯🇵",
    "🦀",
    "☕",
    "✅",
    "📈",
];
const HASHTAGS: &[&str] =
    &["AWS", "serverless", "Kinesis", "DynamoDB", "rustlang", "データ", "실시간", "données", "éxito", "流处理"];
const LANGS: &[&str] = &["en", "es", "de", "fr", "ja", "zh", "ko", "ru", "ar", "he", "hi", "el", "vi", "tr", "und"];

/// An endless, seeded supply of synthetic tweets.
pub struct Synthetic {
    rng: SmallRng,
    users: Vec<User>,
    clock: DateTime<Utc>,
    sequence: u64,
}

impl Synthetic {
    /// Tweets from `seed`; with a seed the clock starts at a fixed instant, so the output is the
    /// same on every run. Without one, the clock starts now and the seed is random.
    pub fn new(seed: Option<u64>) -> Self {
        let (seed, clock) = match seed {
            Some(s) => (s, Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().unwrap_or_else(Utc::now)),
            None => (rand::rng().random(), Utc::now()),
        };
        let mut rng = SmallRng::seed_from_u64(seed);
        let users = (0..500).map(|i| make_user(&mut rng, i)).collect();
        Synthetic { rng, users, clock, sequence: 0 }
    }

    /// The next tweet.
    pub fn next_tweet(&mut self) -> Tweet {
        self.clock += Duration::milliseconds(self.rng.random_range(1..40));
        self.sequence += 1;
        let user = self.users[self.rng.random_range(0..self.users.len())].clone();
        // Snowflake: milliseconds since Twitter's epoch, then a 22-bit sequence: unique per tweet.
        let id = ((self.clock.timestamp_millis() - SNOWFLAKE_EPOCH_MS) as u64) << 22 | (self.sequence & 0x3F_FFFF);

        let long = self.rng.random_bool(0.15);
        let target = if long {
            self.rng.random_range(SHORT_TEXT_CHARS + 1..=MAX_TEXT_CHARS - 30)
        } else {
            self.rng.random_range(10..=120)
        };
        let mut full = String::new();
        let mut chars = 0;
        while chars < target {
            let w = WORDS[self.rng.random_range(0..WORDS.len())];
            if !full.is_empty() {
                full.push(' ');
                chars += 1;
            }
            full.push_str(w);
            chars += w.chars().count();
        }
        let mut hashtags = Vec::new();
        for _ in 0..self.rng.random_range(0..=2) {
            let tag = HASHTAGS[self.rng.random_range(0..HASHTAGS.len())];
            full.push_str(" #");
            let start = full.chars().count() - 1;
            full.push_str(tag);
            hashtags.push(Hashtag { text: tag.to_string(), indices: [start, start + 1 + tag.chars().count()] });
        }
        let full: String = full.chars().take(MAX_TEXT_CHARS).collect();
        hashtags.retain(|h| h.indices[1] <= MAX_TEXT_CHARS);

        let (text, truncated, extended_tweet) = if full.chars().count() > SHORT_TEXT_CHARS {
            let mut short: String = full.chars().take(SHORT_TEXT_CHARS - 1).collect();
            short.push('…');
            (short, true, Some(ExtendedTweet { full_text: full }))
        } else {
            (full, false, None)
        };
        Tweet {
            id_str: id.to_string(),
            created_at: twitter_time(self.clock),
            text,
            truncated,
            extended_tweet,
            user,
            lang: Some(LANGS[self.rng.random_range(0..LANGS.len())].to_string()),
            entities: Entities { hashtags },
        }
    }
}

impl Iterator for Synthetic {
    type Item = Tweet;
    fn next(&mut self) -> Option<Tweet> {
        Some(self.next_tweet())
    }
}

fn make_user(rng: &mut SmallRng, i: usize) -> User {
    let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
    let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
    let name = if last.is_empty() { first.to_string() } else { format!("{first} {last}") };
    // Handles are ASCII letters, digits and underscores, at most 15 characters.
    let letters: String = (0..rng.random_range(3..9)).map(|_| (b'a' + rng.random_range(0..26)) as char).collect();
    let screen_name = format!("{letters}_{i}");
    User { name, screen_name, id_str: rng.random_range(10_000_000u64..2_000_000_000_000_000_000).to_string() }
}

const PAGES: &[(&str, &str)] = &[
    ("/", "Home"),
    ("/search", "Search results"),
    ("/c/shoes", "Shoes"),
    ("/c/jackets", "Jackets — new season"),
    ("/p/trail-runner-2", "Trail Runner 2 · Running shoe"),
    ("/p/rain-shell", "Rain Shell jacket"),
    ("/cart", "Your cart"),
    ("/checkout", "Checkout"),
    ("/account/orders", "Your orders"),
    ("/blog/choosing-a-running-shoe", "How to choose a running shoe"),
];
const EVENT_TYPES: &[&str] =
    &["page_view", "page_view", "page_view", "click", "click", "scroll", "search", "add_to_cart"];
const AGENTS: &[(&str, &str, &str)] = &[
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "iOS",
        "Safari",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        "Windows",
        "Chrome",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "macOS",
        "Safari",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
        "Android",
        "Chrome",
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", "Linux", "Firefox"),
];
const PLACES: &[(&str, &str)] = &[
    ("DE", "Berlin"),
    ("US", "Seattle"),
    ("JP", "東京"),
    ("BR", "São Paulo"),
    ("FR", "Paris"),
    ("IN", "Bengaluru"),
    ("GB", "London"),
];

/// Web clickstream: sessions (2,000, of which 10 take 30 % of the events) of page views, clicks,
/// scrolls, searches and add-to-carts, each 400-800 bytes.
struct Clickstream {
    rng: SmallRng,
    clock: DateTime<Utc>,
    sessions: Vec<(String, Option<String>, usize, usize)>,
}

impl Clickstream {
    fn new(seed: Option<u64>) -> Self {
        let (mut rng, clock) = start(seed);
        let sessions = (0..2000)
            .map(|_| {
                let user = rng.random_bool(0.6).then(|| format!("u-{}", rng.random_range(1..200_000)));
                (
                    format!("s-{}", hex_id(&mut rng, 16)),
                    user,
                    rng.random_range(0..AGENTS.len()),
                    rng.random_range(0..PLACES.len()),
                )
            })
            .collect();
        Clickstream { rng, clock, sessions }
    }

    fn next_event(&mut self) -> Vec<u8> {
        let rng = &mut self.rng;
        self.clock += Duration::milliseconds(rng.random_range(1..30));
        let (session, user, agent, place) = &self.sessions[skewed(rng, 2000, 10, 0.3)];
        let (path, title) = PAGES[rng.random_range(0..PAGES.len())];
        let (from, _) = PAGES[rng.random_range(0..PAGES.len())];
        let kind = EVENT_TYPES[rng.random_range(0..EVENT_TYPES.len())];
        let (ua, os, browser) = AGENTS[*agent];
        let (country, city) = PLACES[*place];
        let props = match kind {
            "click" => {
                json!({"element": format!("a#item-{}", rng.random_range(1..60)), "x": rng.random_range(0..1440), "y": rng.random_range(0..2400)})
            }
            "scroll" => json!({"depth_pct": rng.random_range(5..=100)}),
            "search" => {
                let query =
                    ["trail shoes", "rain jacket", "Laufschuhe", "防水 ジャケット", "size 44"][rng.random_range(0..5)];
                json!({"query": query, "results": rng.random_range(0..300)})
            }
            "add_to_cart" => {
                json!({"sku": format!("SKU-{:05}", rng.random_range(1..5000)), "qty": rng.random_range(1..4), "price": rng.random_range(999..25_000) as f64 / 100.0})
            }
            _ => json!({"load_ms": rng.random_range(80..3000)}),
        };
        json!({
            "event_id": format!("e-{}", hex_id(rng, 20)),
            "session_id": session,
            "user_id": user,
            "type": kind,
            "ts": crate::time::iso_text(self.clock),
            "page": {"url": format!("https://shop.example.com{path}"), "title": title, "referrer": format!("https://shop.example.com{from}")},
            "device": {"user_agent": ua, "os": os, "browser": browser, "viewport": [rng.random_range(360..2560), rng.random_range(640..1600)]},
            "geo": {"country": country, "city": city},
            "props": props,
        })
        .to_string()
        .into_bytes()
    }
}

/// IoT telemetry: 5,000 devices (20 of them take 40 % of the readings), each reading 250-350
/// bytes, with a millisecond time that never repeats.
struct Telemetry {
    rng: SmallRng,
    clock: DateTime<Utc>,
    devices: Vec<(String, String, f64, f64)>,
}

impl Telemetry {
    fn new(seed: Option<u64>) -> Self {
        let (mut rng, clock) = start(seed);
        let devices = (0..5000)
            .map(|i| {
                let firmware =
                    format!("{}.{}.{}", rng.random_range(1..4), rng.random_range(0..10), rng.random_range(0..20));
                (format!("dev-{i:06}"), firmware, rng.random_range(-60.0..70.0), rng.random_range(-180.0..180.0))
            })
            .collect();
        Telemetry { rng, clock, devices }
    }

    fn next_event(&mut self) -> Vec<u8> {
        let rng = &mut self.rng;
        self.clock += Duration::milliseconds(rng.random_range(1..10));
        let (id, firmware, lat, lon) = &self.devices[skewed(rng, 5000, 20, 0.4)];
        let round = |x: f64, places: i32| (x * 10f64.powi(places)).round() / 10f64.powi(places);
        let status = ["ok", "ok", "ok", "ok", "degraded", "charging"][rng.random_range(0..6)];
        json!({
            "device_id": id,
            "ts": self.clock.timestamp_millis(),
            "firmware": firmware,
            "metrics": {
                "temperature_c": round(rng.random_range(-20.0..45.0), 2),
                "humidity_pct": round(rng.random_range(5.0..100.0), 1),
                "battery_v": round(rng.random_range(3.1..4.2), 3),
                "rssi_dbm": rng.random_range(-110..-40),
                "uptime_s": rng.random_range(0..10_000_000u64),
            },
            "location": {"lat": round(*lat, 5), "lon": round(*lon, 5)},
            "status": status,
        })
        .to_string()
        .into_bytes()
    }
}

const ORDER_STATES: [&str; 5] = ["created", "paid", "packed", "shipped", "delivered"];

/// Order changes: open orders move through created → paid → packed → shipped → delivered, each
/// change a higher version; one change in ten is held back and sent after later ones (a retry, a
/// slow producer), so versions arrive out of order. 300-600 bytes each.
struct Orders {
    rng: SmallRng,
    clock: DateTime<Utc>,
    open: Vec<(u64, u32, String, Vec<serde_json::Value>)>,
    next_id: u64,
    late: Vec<(usize, Vec<u8>)>,
    made: usize,
}

impl Orders {
    fn new(seed: Option<u64>) -> Self {
        let (rng, clock) = start(seed);
        Orders { rng, clock, open: Vec::new(), next_id: 1, late: Vec::new(), made: 0 }
    }

    fn next_event(&mut self) -> Vec<u8> {
        self.made += 1;
        if let Some(i) = self.late.iter().position(|(due, _)| *due <= self.made) {
            return self.late.remove(i).1;
        }
        let event = self.change();
        if self.rng.random_bool(0.1) {
            let due = self.made + self.rng.random_range(5..60);
            self.late.push((due, event));
            return self.change();
        }
        event
    }

    /// The next change: a new order (while fewer than 200 are open, or one time in five), or the
    /// next state of an open one (the first 10 open take half the changes).
    fn change(&mut self) -> Vec<u8> {
        let rng = &mut self.rng;
        self.clock += Duration::milliseconds(rng.random_range(5..200));
        if self.open.len() < 200 || rng.random_bool(0.2) {
            let lines: Vec<serde_json::Value> = (0..rng.random_range(1..5))
                .map(|_| json!({"sku": format!("SKU-{:05}", rng.random_range(1..5000)), "qty": rng.random_range(1..4), "price": rng.random_range(199..20_000) as f64 / 100.0}))
                .collect();
            self.open.push((self.next_id, 0, format!("c-{}", rng.random_range(1..50_000)), lines));
            self.next_id += 1;
        }
        let i = if self.open.len() > 10 && rng.random_bool(0.5) {
            rng.random_range(0..10)
        } else {
            rng.random_range(0..self.open.len())
        };
        let (id, state, customer, lines) = &mut self.open[i];
        *state += 1;
        let tier = ["basic", "silver", "gold"][(*id % 3) as usize];
        let total: f64 =
            lines.iter().map(|l| l["qty"].as_f64().unwrap_or(0.0) * l["price"].as_f64().unwrap_or(0.0)).sum();
        let event = json!({
            "order_id": format!("o-{id:07}"),
            "version": *state,
            "status": ORDER_STATES[(*state as usize - 1).min(ORDER_STATES.len() - 1)],
            "updated_at": crate::time::iso_text(self.clock),
            "customer": {"id": customer, "tier": tier},
            "currency": "EUR",
            "total": (total * 100.0).round() / 100.0,
            "lines": lines,
            "note": if *state == 1 { "gift wrap, please" } else { "" },
        })
        .to_string()
        .into_bytes();
        if *state as usize >= ORDER_STATES.len() {
            self.open.swap_remove(i);
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tweet::item_from_payload;
    use std::collections::HashSet;

    #[test]
    fn same_seed_same_tweets() {
        let a: Vec<Tweet> = Synthetic::new(Some(7)).take(50).collect();
        let b: Vec<Tweet> = Synthetic::new(Some(7)).take(50).collect();
        let c: Vec<Tweet> = Synthetic::new(Some(8)).take(50).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn tweets_are_valid_unique_and_varied() {
        let tweets: Vec<Tweet> = Synthetic::new(Some(1)).take(2000).collect();
        let ids: HashSet<&str> = tweets.iter().map(|t| t.id_str.as_str()).collect();
        assert_eq!(ids.len(), tweets.len(), "ids are unique");
        assert!(tweets.iter().any(|t| t.truncated && t.extended_tweet.is_some()));
        assert!(tweets.iter().any(|t| t.text.chars().any(|c| c as u32 >= 0x1F300)), "emoji");
        assert!(tweets.iter().any(|t| t.text.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c))), "CJK");
        for t in &tweets {
            let full = t.extended_tweet.as_ref().map_or(&t.text, |e| &e.full_text);
            assert!(full.chars().count() <= MAX_TEXT_CHARS);
            assert!(t.text.chars().count() <= SHORT_TEXT_CHARS);
            assert!(t.user.screen_name.len() <= 15 && t.user.screen_name.is_ascii());
            for h in &t.entities.hashtags {
                let tagged: String = full.chars().skip(h.indices[0]).take(h.indices[1] - h.indices[0]).collect();
                assert_eq!(tagged, format!("#{}", h.text));
            }
            let item = item_from_payload(&t.to_bytes()).expect("handler accepts every synthetic tweet");
            assert_eq!(&item.message, full);
        }
    }

    /// Every kind's events fit the built-in schema of its name, keys repeat with the skew described,
    /// and sizes are what the module says.
    #[test]
    fn every_kind_fits_its_schema_with_skewed_keys() {
        for kind in Kind::ALL {
            let schema = crate::schema::Schema::built_in(kind.name()).expect("built in");
            let events: Vec<Vec<u8>> = Events::new(kind, Some(3)).take(2000).collect();
            let mut keys: std::collections::HashMap<String, usize> = Default::default();
            for e in &events {
                let key =
                    schema.kinesis_key(e).unwrap_or_else(|r| panic!("{kind:?}: {r}: {}", String::from_utf8_lossy(e)));
                *keys.entry(key).or_default() += 1;
            }
            let mean = events.iter().map(Vec::len).sum::<usize>() / events.len();
            let hottest = keys.values().max().copied().unwrap_or(0);
            match kind {
                Kind::Tweets => assert!((200..700).contains(&mean), "{kind:?} mean {mean}"),
                Kind::Clickstream => {
                    assert!((400..800).contains(&mean), "{kind:?} mean {mean}");
                    assert!(hottest > 30 && keys.len() > 500, "{kind:?}: hottest {hottest}, {} keys", keys.len());
                }
                Kind::Iot => {
                    assert!((230..350).contains(&mean), "{kind:?} mean {mean}");
                    assert!(hottest > 20 && keys.len() > 500, "{kind:?}: hottest {hottest}, {} keys", keys.len());
                }
                Kind::Orders => assert!((250..600).contains(&mean), "{kind:?} mean {mean}"),
            }
            let again: Vec<Vec<u8>> = Events::new(kind, Some(3)).take(50).collect();
            assert_eq!(again[..], events[..50], "{kind:?}: the same seed gives the same events");
        }
    }

    /// Some order changes arrive after a higher version of the same order.
    #[test]
    fn some_order_versions_arrive_late() {
        let mut highest: std::collections::HashMap<String, u64> = Default::default();
        let mut late = 0;
        for e in Events::new(Kind::Orders, Some(1)).take(3000) {
            let v: serde_json::Value = serde_json::from_slice(&e).expect("json");
            let (id, version) =
                (v["order_id"].as_str().expect("id").to_string(), v["version"].as_u64().expect("version"));
            let seen = highest.entry(id).or_default();
            if version < *seen {
                late += 1;
            }
            *seen = (*seen).max(version);
        }
        assert!(late > 50, "{late} late versions");
    }
}
