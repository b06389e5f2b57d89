//! The soak (not in CI; `scripts/soak` runs it): 100,000 tweets over 4 shards with 1 % poison of
//! every kind, BatchWriteItem throttled 30 % and failing 10 % with 5xx through the fault proxy,
//! the bootstrap SIGKILLed every few seconds, every shard split mid-run (the stream's reads served
//! by the fault proxy as Kinesis splits, `split_stream`: moto's split never ends a parent) and half
//! the records put into the children. The table must equal the expected items exactly, the
//! quarantine the poison set; bootstraps were killed, every child was read after its parent was
//! done; nothing given up, no panic. Prints its figures.

use crate::common;
use crate::fault_proxy::{FaultProxy, Faults};
use crate::faults::poison;
use crate::split_stream::SplitStream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::World;
use stream::tweet::{Item, item_from_payload};

const TWEETS: usize = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak, not in CI: scripts/soak"]
async fn soak() {
    let started = Instant::now();
    let w = World::new("soak", "us-west-2");
    let clients = w.clients().await;
    w.run(
        &["deploy", "--shards", "4", "--batch-size", "500", "--max-retries", "10000", "--max-record-age", "604800"],
        0,
    );
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;

    // The tweets, 1 % poison of every kind among them, and what the tables must end with.
    let mut records: Vec<(String, Vec<u8>)> = Vec::with_capacity(TWEETS + TWEETS / 100);
    let mut expected: BTreeMap<(String, String), Item> = BTreeMap::new();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let mut tweets = stream::produce::source::Synthetic::new(Some(2026));
    for i in 0..TWEETS {
        let t = tweets.next_tweet();
        let item = item_from_payload(&t.to_bytes()).expect("valid tweet");
        expected.insert((item.username.clone(), item.id.clone()), item);
        records.push((t.user.screen_name.clone(), t.to_bytes()));
        if i % 700 == 699 {
            for (payload, reason) in poison(i) {
                records.push((format!("poison{i}"), payload));
                *reasons.entry(reason).or_default() += 1;
            }
        }
    }
    let poison_count: usize = reasons.values().sum();
    // Half the records before the split (in the 4 parents), half after it (in the 8 children).
    let kinesis = SplitStream::with_shards(&outputs.stream_name, 4);
    let (before, after) = records.split_at(records.len() / 2);
    kinesis.put_all(before);

    let faults = Faults { throttle: 0.3, server_error: 0.1, ..Faults::default() };
    let proxy = FaultProxy::serving(kinesis.clone(), faults, 42);
    let mut local = w
        // Not --until-idle: the parents may be caught up before the split. The run is stopped once
        // every item is in.
        .cmd(&["local", "--output", "json", "--endpoint-url", &proxy.url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("stream local");
    let local_pid = local.id();
    // Drained as it runs: a pipe nobody reads fills up and blocks the process on its next line.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout_reader = drain(local.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr_reader = drain(local.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));

    // Every few seconds, a bootstrap is killed; once, mid-run, the stream is split.
    let (done, kills) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let killer = {
        let (done, kills) = (done.clone(), kills.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(3));
                for pid in bootstraps_of(local_pid) {
                    if std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status()
                        .is_ok_and(|s| s.success())
                    {
                        kills.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    let parents: Vec<String> = (0..4).map(|i| format!("shardId-{i:012}")).collect();
    let children: Vec<String> = parents.iter().flat_map(|p| kinesis.split(p)).collect();
    kinesis.put_all(after);
    let until = Instant::now() + Duration::from_secs(2400);
    while common::item_count(&clients.dynamodb, &outputs.table_name).await < expected.len()
        || common::item_count(&clients.dynamodb, &outputs.rejected_table).await < poison_count
    {
        assert!(Instant::now() < until, "the table did not fill within 40 minutes");
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    done.store(true, Ordering::SeqCst);
    let _ = killer.join();
    let stopped = std::process::Command::new("kill").args(["-INT", &local_pid.to_string()]).status();
    assert!(stopped.is_ok_and(|s| s.success()));
    let status = tokio::task::spawn_blocking(move || local.wait().expect("stream local ends")).await.expect("join");
    let out = std::process::Output {
        status,
        stdout: stdout_reader.join().expect("stdout read"),
        stderr: stderr_reader.join().expect("stderr read"),
    };
    let (stdout, stderr) = common::check(&out, 130, &["local (soak)"]);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json summary");

    // The table is exactly the valid tweets; the quarantine exactly the poison.
    let mut table: BTreeMap<(String, String), Item> = BTreeMap::new();
    let mut pages = clients.dynamodb.scan().table_name(&outputs.table_name).into_paginator().items().send();
    while let Some(item) = pages.next().await {
        let item = item.expect("scan");
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let it = Item { username: s("Username"), id: s("Id"), timestamp: s("Timestamp"), message: s("Message") };
        table.insert((it.username.clone(), it.id.clone()), it);
    }
    assert!(table == expected, "the table differs from the expected items ({} vs {})", table.len(), expected.len());
    let mut quarantined: BTreeMap<String, usize> = BTreeMap::new();
    let mut pages = clients.dynamodb.scan().table_name(&outputs.rejected_table).into_paginator().items().send();
    while let Some(item) = pages.next().await {
        let reason = item.expect("scan").get("Reason").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let kind = reasons.keys().find(|r| reason.starts_with(**r)).map_or(reason.clone(), |r| r.to_string());
        *quarantined.entry(kind).or_default() += 1;
    }
    let want: BTreeMap<String, usize> = reasons.iter().map(|(r, n)| (r.to_string(), *n)).collect();
    assert_eq!(quarantined, want, "the quarantine is the poison set");
    assert_eq!(summary["skipped"], 0, "nothing given up: {summary}");
    // The faults happened: bootstraps were killed (processes named `bootstrap`, children of
    // `stream local`), and the function's crashes were seen.
    let kills = kills.load(Ordering::SeqCst);
    assert!(kills > 0, "no bootstrap process was found to kill: {summary}");
    assert!(summary["crashes"].as_u64() > Some(0), "{kills} kills, no crash seen: {summary}");
    // Every child was read, each parent closed and done first.
    assert_eq!(summary["shards"], 12, "4 parents and 8 children: {summary}");
    for parent in &parents {
        assert!(stderr.contains(&format!("shard {parent} is closed and done")), "{parent}: {stderr}");
    }
    let reads = proxy.counters.read_times();
    for (i, child) in children.iter().enumerate() {
        let parent = &parents[i / 2];
        let first = reads.get(child).and_then(|r| r.first());
        assert!(first.is_some(), "{child} was read: {:?}", reads.keys());
        assert!(reads[parent].last() < first, "{child} was read before {parent} was read to its end");
    }
    let log = std::fs::read_to_string(w.state_dir().join(format!("local/{}/{}/function.log", w.region, w.stack)))
        .unwrap_or_default();
    assert!(!stderr.contains("panicked") && !log.contains("panicked"), "no panic");

    let seconds = summary["seconds"].as_f64().unwrap_or(0.0);
    let c = &proxy.counters;
    println!("soak: {TWEETS} tweets + {poison_count} poison records over 4 shards (split to 8 mid-run)");
    println!(
        "  stream local: {seconds:.1} s, {:.0} records/s; {} invocations, {} deliveries, {} batch retries, {} bisections",
        (TWEETS + poison_count) as f64 / seconds.max(0.001),
        summary["invocations"],
        summary["deliveries"],
        summary["retries"],
        summary["bisections"]
    );
    println!(
        "  faults: {} BatchWriteItem calls, {} throttled, {} 5xx; {} bootstraps killed ({} crashes, {} cold starts)",
        c.batch_writes.load(Ordering::SeqCst),
        c.throttled.load(Ordering::SeqCst),
        c.server_errors.load(Ordering::SeqCst),
        kills,
        summary["crashes"],
        summary["cold_starts"]
    );
    println!(
        "  table: {} items (exactly the expected); quarantine: {poison_count} (exactly the poison); given up: 0",
        table.len()
    );
    println!("  wall time of the whole soak: {:.0} s", started.elapsed().as_secs_f64());
    w.run(&["destroy", "--yes"], 0);
}

/// Pids of the `bootstrap` processes whose parent is `parent`.
fn bootstraps_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let ppid = stat[close + 2..].split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if &stat[open + 1..close] == "bootstrap" && ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}
