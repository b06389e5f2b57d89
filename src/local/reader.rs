//! Reading one shard as the event source mapping does: from its checkpoint (or the mapping's
//! starting position), paced within Kinesis' five reads per second per shard and once a second
//! when idle (`kinesis::reader` does the reading); read throttles and passing errors are counted,
//! only an error no wait can fix ends the shard.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::Record;

use super::Ctx;
use super::checkpoint::SHARD_END;
use crate::error::{Disposition, Error};
use crate::kinesis::reader::{self, Pace, Position};

/// Lambda polls an idle shard about once a second.
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// As Lambda reads a shard that has records: as often as Kinesis allows (five reads per second).
const PACE: Pace = Pace { busy: Duration::from_millis(200), idle: IDLE_POLL };

/// Where one shard is read.
pub struct ShardReader(reader::ShardReader);

impl ShardReader {
    /// Starts after the shard's checkpoint, or at the mapping's starting position.
    pub async fn open(ctx: &Ctx, shard: &str) -> Result<ShardReader, Error> {
        let (client, stream) = (&ctx.clients.kinesis, &ctx.outputs.stream_name);
        let start = match ctx.checkpoints.get(shard) {
            // Closed and done in an earlier run.
            Some(seq) if seq == SHARD_END => {
                return Ok(ShardReader(reader::ShardReader::finished(client, stream, shard)));
            }
            Some(seq) => Position::AfterSequence(seq),
            None => ctx.settings.start.clone(),
        };
        Ok(ShardReader(reader::ShardReader::open(client, stream, shard, start, PACE).await?))
    }

    /// When the next read may start.
    pub fn next_read(&self) -> Instant {
        self.0.next_read()
    }

    /// True when the last read found nothing new and the shard is at its tip (or closed).
    pub fn caught_up(&self) -> bool {
        self.0.caught_up()
    }

    /// True when the shard is closed (split or merged) and every record of it has been read.
    pub fn closed(&self) -> bool {
        self.0.closed()
    }

    /// One GetRecords of at most `limit` records, when its turn has come; an empty list otherwise.
    /// Only an error that no wait can fix (the stream is gone, reading is denied) ends the shard.
    pub async fn read(&mut self, ctx: &Ctx, limit: usize) -> Result<Vec<Record>, Error> {
        match self.0.read(limit).await {
            Ok(records) => {
                ctx.stats.set_lag(self.0.shard(), self.0.millis_behind());
                Ok(records)
            }
            // The shard's read allowance is shared with other consumers: wait, count, read again.
            Err(e) if e.code() == Some("ProvisionedThroughputExceededException") => {
                ctx.stats.read_throttled();
                Ok(Vec::new())
            }
            Err(e) if e.disposition() == Disposition::Fatal => Err(e),
            Err(e) => {
                ctx.stats.error(e.to_string());
                Ok(Vec::new())
            }
        }
    }
}
