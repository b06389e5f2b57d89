//! Unit tests of `stream tail`: starting points, records opened and shown in each format,
//! filters, and how reads are settled (counted, printed, throttled, a closed shard done), with
//! the Kinesis client mocked; the moto tests (tests/it/tail.rs) run the command itself.

use super::*;
use crate::kpl;
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::Record;

fn record(seq: &str, key: &str, data: &[u8]) -> Record {
    Record::builder()
        .sequence_number(seq)
        .partition_key(key)
        .data(Blob::new(data))
        .approximate_arrival_timestamp(DateTime::from_secs_f64(1_795_685_400.25))
        .build()
        .expect("record")
}

#[test]
fn starting_points_parse_and_others_are_refused() {
    assert_eq!(parse_from("trim-horizon"), Ok(From::TrimHorizon));
    assert_eq!(parse_from("latest"), Ok(From::Latest));
    assert_eq!(parse_from("4960"), Ok(From::Sequence { shard: None, seq: "4960".into() }));
    assert_eq!(
        parse_from("shardId-000000000001:4960"),
        Ok(From::Sequence { shard: Some("shardId-000000000001".into()), seq: "4960".into() })
    );
    for bad in ["", "oldest", "shardId-1:", ":123", "12ab", "s:1:2"] {
        let lines = parse_from(bad).expect_err(bad).lines("--from");
        assert_eq!(lines.0, format!("--from {bad:?} is not a starting point"));
        assert!(lines.1.starts_with("give --from trim-horizon, latest"), "{lines:?}");
    }
}

/// An aggregate opens into its user records, each with its own key and `SEQ#n`; a plain
/// record is itself; bytes that are not UTF-8 are shown in base64.
#[test]
fn aggregates_open_into_their_user_records() {
    let agg = kpl::aggregate([("alice", &b"{\"a\":1}"[..]), ("bob", &b"{\"b\":2}"[..])]);
    let shown = open_record("shardId-000000000002", &record("77", "agg-key", &agg));
    let rows: Vec<(&str, &str, Option<&str>)> =
        shown.iter().map(|s| (s.sequence.as_str(), s.partition_key.as_str(), s.data.as_deref())).collect();
    assert_eq!(rows, [("77#0", "alice", Some("{\"a\":1}")), ("77#1", "bob", Some("{\"b\":2}"))]);
    assert_eq!(shown[0].arrived, "2026-11-26T09:30:00.250Z");

    let plain = open_record("shardId-000000000002", &record("78", "k", b"hello\nworld"));
    assert_eq!((plain[0].sequence.as_str(), plain[0].data.as_deref()), ("78", Some("hello\nworld")));
    assert_eq!(plain[0].row(), "2026-11-26T09:30:00.250Z  000000000002  78  k  hello\\nworld");
    // Quotes and any script are shown as they are; only control characters are escaped, so
    // that `--output text` stays one record a line and tab-separated.
    let words = open_record("s", &record("80", "k\tey", "{\"t\":\"こんにちは\"}\t!".as_bytes()));
    assert!(words[0].row().ends_with("{\"t\":\"こんにちは\"}\\t!"), "{}", words[0].row());
    assert_eq!(words[0].fields()[3..5], ["k ey", "{\"t\":\"こんにちは\"}\\t!"]);

    let binary = open_record("s", &record("79", "k", &[0xff, 0xfe]));
    assert_eq!((binary[0].data.as_deref(), binary[0].data_base64.as_deref()), (None, Some("//4=")));
    let json = serde_json::to_value(&binary[0]).expect("json");
    assert!(json.get("data").is_none() && json["data_base64"] == "//4=", "{json}");
}

/// A record with the aggregate magic but a bad digest is shown whole, with why.
#[test]
fn a_broken_aggregate_is_shown_whole_with_why() {
    let mut agg = kpl::aggregate([("alice", &b"x"[..])]);
    let last = agg.len() - 1;
    agg[last] ^= 1;
    let shown = open_record("s", &record("80", "k", &agg));
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].sequence, "80");
    assert!(shown[0].problem.as_deref().is_some_and(|p| p.contains("digest")), "{:?}", shown[0].problem);
}

#[test]
fn filters_match_key_and_text() {
    let shown = |key: &str, data: &str| Shown::new("s", "1".into(), "t", key, data.as_bytes());
    let by_key = Filter { keys: ["alice".to_string()].into(), grep: None };
    assert!(by_key.keeps(&shown("alice", "x")) && !by_key.keeps(&shown("bob", "x")));
    let by_text = Filter { keys: BTreeSet::new(), grep: Some("rust".into()) };
    assert!(by_text.keeps(&shown("bob", "I like rust")) && !by_text.keeps(&shown("bob", "go")));
    let both = Filter { keys: ["bob".to_string()].into(), grep: Some("rust".into()) };
    assert!(!both.keeps(&shown("alice", "rust")) && both.keeps(&shown("bob", "rust!")));
}

fn shown(seq: &str, key: &str, data: &[u8]) -> Shown {
    Shown::new("shardId-000000000001", seq.into(), "2026-11-26T09:30:00.250Z", key, data)
}

/// What tail prints of `records` in `format`, the JSON array closed.
fn printed(format: Output, records: &[Shown]) -> String {
    let mut out = Vec::new();
    let mut printer = Printer::new(format, &mut out);
    for r in records {
        printer.print(r.clone()).expect("print");
    }
    printer.finish().expect("finish");
    String::from_utf8(out).expect("utf-8")
}

/// Each format as the AWS CLI's: a table with one header, tab-separated text without one,
/// a JSON object a line, one JSON array closed at the end (`[]` when nothing was shown).
#[test]
fn each_format_prints_every_record_once() {
    let two = [shown("1", "alice", b"a\tb"), shown("2", "bob", &[0xff, 0xfe])];
    assert_eq!(
        printed(Output::Table, &two),
        "ARRIVED  SHARD  SEQUENCE  PARTITION KEY  DATA\n\
         2026-11-26T09:30:00.250Z  000000000001  1  alice  a\\tb\n\
         2026-11-26T09:30:00.250Z  000000000001  2  bob  base64://4=\n"
    );
    assert_eq!(
        printed(Output::Text, &two),
        "2026-11-26T09:30:00.250Z\tshardId-000000000001\t1\talice\ta\\tb\t\n\
         2026-11-26T09:30:00.250Z\tshardId-000000000001\t2\tbob\tbase64://4=\t\n"
    );
    let lines: Vec<serde_json::Value> = printed(Output::Jsonl, &two)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["sequence"].as_str(), lines[0]["data"].as_str()), (Some("1"), Some("a\tb")));
    assert_eq!(lines[1]["data_base64"], "//4=");
    let array: Vec<serde_json::Value> = serde_json::from_str(&printed(Output::Json, &two)).expect("one array");
    assert_eq!(array, lines);
    assert_eq!(printed(Output::Json, &[]), "[]\n");
    assert_eq!(printed(Output::Jsonl, &[]), "", "only JSON has an array to close");
    assert_eq!(printed(Output::Table, &[]), "");
}

#[test]
fn the_summary_says_what_was_shown_read_and_throttled() {
    let summary = TailSummary { shown: 3, read: 5, shards: 2, throttled: 1 };
    assert_eq!(summary.to_string(), "3 records shown of 5 read from 2 shard(s); 1 reads throttled");
}

fn client(rules: &[aws_smithy_mocks::Rule]) -> aws_sdk_kinesis::Client {
    aws_smithy_mocks::mock_client!(aws_sdk_kinesis, aws_smithy_mocks::RuleMode::MatchAny, rules)
}

fn tail(only: Option<&str>, count: Option<u64>, keys: &[&str]) -> Tail {
    let filter = Filter { keys: keys.iter().map(|k| k.to_string()).collect(), grep: None };
    let only = only.map(|o| (o.to_string(), "42".to_string()));
    Tail::following(client(&[]), "s".into(), filter, count, false, Position::Latest, only)
}

fn listed(id: &str, parents: &[&str]) -> Shard {
    let range = aws_sdk_kinesis::types::HashKeyRange::builder()
        .starting_hash_key("0")
        .ending_hash_key("1")
        .build()
        .expect("range");
    let seq = aws_sdk_kinesis::types::SequenceNumberRange::builder().starting_sequence_number("1").build();
    Shard::builder()
        .shard_id(id)
        .set_parent_shard_id(parents.first().map(|p| p.to_string()))
        .set_adjacent_parent_shard_id(parents.get(1).map(|p| p.to_string()))
        .hash_key_range(range)
        .sequence_number_range(seq.expect("sequence range"))
        .build()
        .expect("shard")
}

/// Shards listed at the start begin where --from says; children found later at their start.
/// With --from SHARD:SEQ only that shard and its descendants (a merge's too) are read.
#[tokio::test]
async fn the_shards_followed_and_where_each_starts() {
    let mut all = tail(None, None, &[]);
    assert_eq!(all.in_scope(&listed("a", &[])), Some(Position::Latest));
    all.first_listing = false;
    assert_eq!(all.in_scope(&listed("b", &["a"])), Some(Position::TrimHorizon));

    let mut one = tail(Some("a"), None, &[]);
    one.start = Position::AtSequence("42".into());
    assert_eq!(one.in_scope(&listed("x", &[])), None, "another shard is not read");
    assert_eq!(one.in_scope(&listed("a", &[])), Some(Position::AtSequence("42".into())));
    one.first_listing = false;
    assert_eq!(one.in_scope(&listed("b", &["a"])), Some(Position::TrimHorizon), "its child");
    assert_eq!(one.in_scope(&listed("c", &["x", "b"])), Some(Position::TrimHorizon), "a merge with a descendant");
    assert_eq!(one.in_scope(&listed("d", &["x", "y"])), None, "a merge of others");
}

/// A read asks for what --count still lacks (1 to 10,000), unless filters may drop records.
#[tokio::test]
async fn a_read_asks_for_what_the_count_lacks() {
    let mut t = tail(None, Some(5), &[]);
    t.summary.shown = 2;
    assert_eq!(t.limit(), 3);
    t.summary.shown = 5;
    assert_eq!(t.limit(), 1, "never a read of none");
    assert_eq!(tail(None, Some(50_000), &[]).limit(), MAX_RECORDS_PER_READ);
    assert_eq!(tail(None, None, &[]).limit(), MAX_RECORDS_PER_READ);
    assert_eq!(tail(None, Some(5), &["alice"]).limit(), MAX_RECORDS_PER_READ, "a filter may drop any");
}

fn kinesis_error(status: u16, code: &str) -> Error {
    use aws_sdk_kinesis::operation::get_records::GetRecordsError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;
    let response = Response::new(StatusCode::try_from(status).expect("status"), SdkBody::from(""));
    let meta = ErrorMetadata::builder().code(code).message("as Kinesis says it").build();
    let err = aws_sdk_kinesis::error::SdkError::service_error(GetRecordsError::generic(meta), response);
    Error::aws("GetRecords", "s/shardId-000000000001", err)
}

/// What a read returned is counted, filtered and printed up to --count; a throttled read is
/// counted and the shard read again later; an error no retry can fix ends tail.
#[tokio::test]
async fn a_read_is_shown_filtered_counted_and_the_shard_read_again() {
    use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorOutput;
    let iterator = aws_smithy_mocks::mock!(aws_sdk_kinesis::Client::get_shard_iterator)
        .then_output(|| GetShardIteratorOutput::builder().shard_iterator("it").build());
    let kc = client(&[iterator]);
    let reader = || ShardReader::open(&kc, "s", "shardId-000000000001", Position::TrimHorizon, PACE);
    let five: Vec<Record> =
        (1..=5).map(|i| record(&i.to_string(), if i % 2 == 0 { "bob" } else { "alice" }, b"x")).collect();

    let mut out = Vec::new();
    let mut t = tail(None, Some(3), &[]);
    let done = t.settle(reader().await.expect("open"), Ok(five.clone()), &mut Printer::new(Output::Jsonl, &mut out));
    assert!(done.expect("settled"), "--count 3 reached");
    assert_eq!((t.summary.shown, t.summary.read, out.iter().filter(|b| **b == b'\n').count()), (3, 3, 3));

    let mut out = Vec::new();
    let mut t = tail(None, None, &["bob"]);
    let done = t.settle(reader().await.expect("open"), Ok(five), &mut Printer::new(Output::Jsonl, &mut out));
    assert!(!done.expect("settled"));
    assert_eq!((t.summary.shown, t.summary.read), (2, 5));
    assert!(String::from_utf8(out).expect("utf-8").lines().all(|l| l.contains("\"partition_key\":\"bob\"")));
    assert_eq!(t.reads.len(), 1, "the shard is read again");

    let mut t = tail(None, None, &[]);
    let mut sink = Printer::new(Output::Jsonl, Vec::new());
    let throttled = kinesis_error(400, "ProvisionedThroughputExceededException");
    assert!(!t.settle(reader().await.expect("open"), Err(throttled), &mut sink).expect("throttling is no error"));
    assert_eq!((t.summary.throttled, t.reads.len()), (1, 1));
    let fatal = t.settle(reader().await.expect("open"), Err(kinesis_error(400, "AccessDeniedException")), &mut sink);
    assert_eq!(fatal.expect_err("ends tail").code(), Some("AccessDeniedException"));
    let passing = t.settle(reader().await.expect("open"), Err(kinesis_error(500, "InternalFailure")), &mut sink);
    assert!(!passing.expect("read again"));
    assert_eq!((t.summary.throttled, t.reads.len()), (1, 2));
}

/// A shard read to its tip that the listing shows closed is done (its children may start);
/// an open one read to its tip is read again, unless --until-idle.
#[tokio::test]
async fn a_closed_shard_read_to_its_tip_is_done() {
    use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
    use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorOutput;
    let iterator = aws_smithy_mocks::mock!(aws_sdk_kinesis::Client::get_shard_iterator)
        .then_output(|| GetShardIteratorOutput::builder().shard_iterator("it").build());
    let tip = aws_smithy_mocks::mock!(aws_sdk_kinesis::Client::get_records).then_output(|| {
        GetRecordsOutput::builder()
            .set_records(Some(Vec::new()))
            .millis_behind_latest(0)
            .next_shard_iterator("next")
            .build()
            .expect("output")
    });
    let kc = client(&[iterator, tip]);
    let shard = "shardId-000000000001";
    let at_tip = || async {
        let mut r = ShardReader::open(&kc, "s", shard, Position::TrimHorizon, PACE).await.expect("open");
        assert!(r.read(10).await.expect("read").is_empty() && r.caught_up());
        r
    };
    let listing = [listed(shard, &[]), listed("child", &[shard])];
    let mut sink = Printer::new(Output::Jsonl, Vec::new());
    for (closed, until_idle, done, again) in
        [(true, false, true, 0), (true, true, true, 0), (false, true, false, 0), (false, false, false, 1)]
    {
        let mut t = tail(None, None, &[]);
        t.until_idle = until_idle;
        if closed {
            t.closed.insert(shard.to_string());
        }
        assert!(!t.settle(at_tip().await, Ok(Vec::new()), &mut sink).expect("settled"));
        let case = format!("closed {closed}, --until-idle {until_idle}");
        assert_eq!((t.relist_due, t.reads.len()), (done, again), "{case}");
        let child_ready = t.lineage.ready(&listing).iter().any(|s| s.shard_id() == "child");
        assert_eq!(child_ready, done, "{case}: its child may start");
    }
}
