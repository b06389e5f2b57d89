//! `stream replay`: puts quarantined records back into the stack's stream (after the function or
//! the producer was fixed) and removes each from quarantine once the stream has accepted it.
//! A record that is still poison is quarantined again by the function.

use std::fmt;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use serde::Serialize;

use crate::aws::Clients;
use crate::cli::ReplayArgs;
use crate::error::Error;
use crate::process::store::rejected_attr;
use crate::produce::{Batcher, Entry, put_with_retries};
use crate::stack;

/// The summary of `stream replay`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayOutput {
    /// Stream written to.
    pub stream: String,
    /// Records put back and removed from quarantine.
    pub replayed: usize,
    /// Records only partly kept (over 400 KB): left in quarantine.
    pub truncated: usize,
    /// Records the stream did not accept: left in quarantine.
    pub failed: usize,
}

impl ReplayOutput {
    /// The error that decides the exit code, if any.
    pub fn problem(&self) -> Option<Error> {
        (self.failed > 0).then(|| Error::Partial {
            what: format!("{} quarantined records were not accepted by the stream", self.failed),
            hint: "run `stream replay` again; they stay in quarantine until it succeeds".into(),
        })
    }
}

impl fmt::Display for ReplayOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replayed {} quarantined records into {} ({} too large to replay, {} failed)",
            self.replayed, self.stream, self.truncated, self.failed
        )
    }
}

/// One quarantined record: its key in the quarantine table and what to put.
struct Quarantined {
    key: (String, String),
    entry: Entry,
}

/// `stream replay`.
pub async fn run(args: &ReplayArgs, stack_name: &str, clients: &Clients) -> Result<ReplayOutput, Error> {
    let outputs = stack::load(clients, stack_name).await?;
    let table = &outputs.rejected_table;
    let mut out = ReplayOutput { stream: outputs.stream_name.clone(), ..Default::default() };
    let mut records = Vec::new();
    let mut items = clients.dynamodb.scan().table_name(table).into_paginator().items().send();
    while let Some(item) = items.next().await {
        let item = item.map_err(|e| Error::aws("Scan", table, e))?;
        let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        if item.get(rejected_attr::TRUNCATED).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false) {
            out.truncated += 1;
            continue;
        }
        let data = item
            .get(rejected_attr::PAYLOAD)
            .and_then(|v| v.as_b().ok())
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        let key = s(rejected_attr::PARTITION_KEY);
        records.push(Quarantined {
            key: (s(rejected_attr::SHARD), s(rejected_attr::SEQUENCE)),
            entry: Entry { key: if key.is_empty() { "replay".into() } else { key }, data },
        });
        if args.limit.is_some_and(|l| records.len() as u64 >= l) {
            break;
        }
    }

    // Put in PutRecords-sized batches; a batch leaves quarantine only when all of it was accepted,
    // so a partly failed batch is replayed whole next time (the function's writes are idempotent).
    let mut batcher = Batcher::new(crate::produce::MAX_RECORDS_PER_CALL);
    let mut pending: Vec<Quarantined> = Vec::new();
    let mut batches: Vec<Vec<Quarantined>> = Vec::new();
    for rec in records {
        if let Some(full) = batcher.push(rec.entry.clone()).map_err(|e| {
            Error::failed(
                format!("quarantined record of {} bytes is over Kinesis' 1 MiB", e.size()),
                "it cannot be replayed",
            )
        })? {
            let n = full.len();
            batches.push(pending.drain(..n).collect());
        }
        pending.push(rec);
    }
    if !pending.is_empty() {
        batcher.take();
        batches.push(pending);
    }
    for batch in batches {
        let entries: Vec<Entry> = batch.iter().map(|q| q.entry.clone()).collect();
        let result = put_with_retries(&clients.kinesis, &outputs.stream_name, entries).await?;
        if !result.failed.is_empty() {
            out.failed += batch.len();
            continue;
        }
        delete_from_quarantine(clients, table, &batch).await?;
        out.replayed += batch.len();
    }
    Ok(out)
}

async fn delete_from_quarantine(clients: &Clients, table: &str, batch: &[Quarantined]) -> Result<(), Error> {
    for chunk in batch.chunks(crate::process::MAX_BATCH_WRITE) {
        let mut requests = Vec::with_capacity(chunk.len());
        for q in chunk {
            let delete = DeleteRequest::builder()
                .key(rejected_attr::SHARD, AttributeValue::S(q.key.0.clone()))
                .key(rejected_attr::SEQUENCE, AttributeValue::S(q.key.1.clone()))
                .build()
                .map_err(|e| Error::failed(format!("building DeleteRequest: {e}"), "report this as a bug"))?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        let mut left = Some(requests);
        for attempt in 0..crate::process::MAX_WRITE_ATTEMPTS {
            let Some(reqs) = left.take().filter(|r| !r.is_empty()) else { break };
            if attempt > 0 {
                tokio::time::sleep(crate::process::backoff(attempt)).await;
            }
            let out = clients
                .dynamodb
                .batch_write_item()
                .request_items(table, reqs)
                .send()
                .await
                .map_err(|e| Error::aws("BatchWriteItem", table, e))?;
            left = out.unprocessed_items.and_then(|mut m| m.remove(table));
        }
        if left.is_some_and(|l| !l.is_empty()) {
            return Err(Error::failed(
                format!("some replayed records could not be removed from {table}"),
                "they are in the stream already; a later replay would put them again",
            ));
        }
    }
    Ok(())
}
