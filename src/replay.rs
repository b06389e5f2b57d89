//! `stream replay`: puts quarantined records back into the stack's stream (after the function or
//! the producer was fixed) and removes each from quarantine once the stream has accepted it.
//! A record that is still poison is quarantined again by the function.

use std::fmt;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use clap::Args;
use serde::Serialize;

use crate::args::at_least;
use crate::aws::Clients;
use crate::dynamo::{self, MAX_BATCH_WRITE};
use crate::error::Error;
use crate::kinesis::{self, Batcher, Carries, Entry, MAX_RECORDS_PER_CALL};
use crate::process::store::rejected_attr;
use crate::retry::{self, Policy};
use crate::stack;

/// `stream replay`
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Replay at most N records
    #[arg(long, value_name = "N", value_parser = at_least::<u64>(1))]
    pub limit: Option<u64>,
}

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

impl Carries for Quarantined {
    fn entry(&self) -> &Entry {
        &self.entry
    }
}

/// `stream replay`: reads the quarantine, puts its records back in PutRecords-sized batches, and
/// removes a batch from quarantine only when the stream accepted all of it (a partly failed batch
/// is replayed whole next time; the function's writes are idempotent).
pub async fn run(args: &ReplayArgs, stack_name: &str, clients: &Clients) -> Result<ReplayOutput, Error> {
    let outputs = stack::load(clients, stack_name).await?.outputs;
    let mut out = ReplayOutput { stream: outputs.stream_name.clone(), ..Default::default() };
    let (records, truncated) = read_quarantine(clients, &outputs.rejected_table, args.limit).await?;
    out.truncated = truncated;
    let mut batcher = Batcher::new(MAX_RECORDS_PER_CALL);
    let mut batches = Vec::new();
    for record in records {
        let full = batcher.push(record).map_err(|q| {
            Error::failed(
                format!("quarantined record of {} bytes is over Kinesis' 1 MiB", q.entry.size()),
                "it cannot be replayed",
            )
        })?;
        batches.extend(full);
    }
    batches.extend(batcher.take());
    for batch in batches {
        let put = kinesis::put_records(&clients.kinesis, &outputs.stream_name, &batch).await;
        if let Some(fatal) = put.stopped_by.filter(|e| e.disposition() == crate::error::Disposition::Fatal) {
            return Err(fatal);
        }
        if !put.failed.is_empty() {
            out.failed += batch.len();
            continue;
        }
        delete_from_quarantine(clients, &outputs.rejected_table, &batch).await?;
        out.replayed += batch.len();
    }
    Ok(out)
}

/// The quarantined records to replay (up to `limit`), and how many were only partly kept.
async fn read_quarantine(
    clients: &Clients,
    table: &str,
    limit: Option<u64>,
) -> Result<(Vec<Quarantined>, usize), Error> {
    let mut records = Vec::new();
    let mut truncated = 0;
    let mut items = clients.dynamodb.scan().table_name(table).into_paginator().items().send();
    while let Some(item) = items.next().await {
        let item = item.map_err(|e| Error::aws("Scan", table, e))?;
        let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        if item.get(rejected_attr::TRUNCATED).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false) {
            truncated += 1;
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
            entry: Entry { key: if key.is_empty() { "replay".into() } else { key }, data: data.into() },
        });
        if limit.is_some_and(|l| records.len() as u64 >= l) {
            break;
        }
    }
    Ok((records, truncated))
}

/// Deletes the batch's records from quarantine, 25 at a time, resending what DynamoDB leaves unprocessed.
async fn delete_from_quarantine(clients: &Clients, table: &str, batch: &[Quarantined]) -> Result<(), Error> {
    for chunk in batch.chunks(MAX_BATCH_WRITE) {
        let mut requests = Vec::with_capacity(chunk.len());
        for q in chunk {
            let delete = DeleteRequest::builder()
                .key(rejected_attr::SHARD, AttributeValue::S(q.key.0.clone()))
                .key(rejected_attr::SEQUENCE, AttributeValue::S(q.key.1.clone()))
                .build()
                .map_err(|e| Error::failed(format!("building DeleteRequest: {e}"), "report this as a bug"))?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        let requests = &requests;
        let resent = retry::resend(
            requests.len(),
            Policy::attempts(crate::process::MAX_WRITE_ATTEMPTS),
            |indices: Vec<usize>| async move {
                let subset: Vec<WriteRequest> = indices.iter().map(|&i| requests[i].clone()).collect();
                let left = dynamo::batch_write(
                    &clients.dynamodb,
                    table,
                    (rejected_attr::SHARD, Some(rejected_attr::SEQUENCE)),
                    subset,
                )
                .await?;
                Ok(left.into_iter().map(|k| (indices[k], "unprocessed".to_string())).collect())
            },
        )
        .await;
        if let Some(e) = resent.stopped_by {
            return Err(e);
        }
        if !resent.failed.is_empty() {
            return Err(Error::failed(
                format!("some replayed records could not be removed from {table}"),
                "they are in the stream already; a later replay would put them again",
            ));
        }
    }
    Ok(())
}
