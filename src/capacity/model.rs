//! The arithmetic of `stream plan`, pure and with no AWS: `plan` turns `Inputs` (a record rate and
//! the stack's settings) into a `Plan` — shards, Lambda load and what each invocation is billed,
//! write units, the cost rows, DynamoDB's provisioned alternative — which is `Display` for people
//! and `Serialize` for `--output json`. Prices come from `prices`; where the inputs come from
//! (flags, the stack, the template, the handler's write concurrency) is the parent module's business.

mod display;

use std::fmt;

use serde::Serialize;

use super::prices::{
    GB, HOURS_PER_MONTH, ON_DEMAND_ROUNDING_BYTES, PUT_PAYLOAD_UNIT_BYTES, Priced, SECONDS_PER_MONTH, WRITE_UNIT_BYTES,
    price,
};
use crate::dynamo::MAX_BATCH_WRITE;
use crate::kinesis::{SHARD_BYTES_PER_S, SHARD_RECORDS_PER_S};
use crate::process::PUTS_PER_BATCH_SLOT;

// ---- Limits and conventions the model rests on ----

/// A shard sends at most 2 MiB/s to all its standard (non-fan-out) readers together.
/// <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>
pub const SHARD_BYTES_OUT_PER_S: f64 = 2.0 * 1024.0 * 1024.0;
/// An on-demand stream starts at 4 MiB/s of writes, i.e. 4 shards, whatever the traffic; we assume
/// it keeps at least those, so Lambda reads at least 4 shards.
/// <https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html>
pub const ON_DEMAND_MIN_SHARDS: u64 = 4;

/// The producer closes a KPL aggregate at 51,200 bytes (the KPL's AggregationMaxSize default;
/// `produce::delivery::AGGREGATE_MAX_BYTES`, checked by a test).
pub const AGGREGATE_MAX_BYTES: u64 = 51_200;
/// What one user record costs inside an aggregate besides its data: the producer counts the
/// partition key (its handles are at most 15 bytes) and 16 bytes of protobuf framing.
pub const SUB_RECORD_OVERHEAD_BYTES: u64 = 32;
/// An aggregate's own framing: the 4-byte magic number and the 16-byte MD5 trailer.
pub const AGGREGATE_FRAME_BYTES: u64 = 20;

/// A Lambda invocation's event holds at most 6 MiB; Kinesis data travels in it as base64, with
/// about 512 bytes of metadata per record. A batch of large aggregates is cut short by it.
/// <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>
pub const INVOKE_PAYLOAD_BYTES: u64 = 6 * 1024 * 1024;
const EVENT_RECORD_OVERHEAD_BYTES: u64 = 512;
/// Lambda polls each shard about once a second and invokes as soon as records are waiting, so a
/// busy lane is invoked at least once a second (or once per batching window, when longer).
/// <https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html>
const POLL_INTERVAL_S: f64 = 1.0;

/// Log bytes per invocation: Lambda's START (~100), END (~70) and REPORT (~250) lines, the
/// handler's `batch done` JSON line (~350) and its EMF line (~700), rounded up.
pub const LOG_BYTES_PER_INVOCATION: u64 = 1_500;
/// Custom metrics the function publishes through EMF (`process::metrics`), one dimension set
/// (FunctionName): each is one metric-month.
pub const CUSTOM_METRICS: u64 = 9;

/// Provisioned DynamoDB is bought ahead of the traffic: auto scaling keeps consumed capacity near a
/// target share of what is provisioned (20-90 %), and the headroom above it absorbs bursts while
/// it scales. 70 % is the developer guide's worked example, and the share the console proposes.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/AutoScaling.html>
pub const PROVISIONED_TARGET_UTILIZATION: f64 = 0.70;

// ---- The plan ----

/// Which processor the function runs on: it sets the GB-second price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Architecture {
    /// x86_64, the template's default.
    #[serde(rename = "x86_64")]
    X86,
    /// arm64 (Graviton).
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    /// From the stack's `Architecture` parameter.
    pub fn from_param(value: &str) -> Self {
        if value == "arm64" { Architecture::Arm64 } else { Architecture::X86 }
    }

    /// As the template spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

/// Everything the plan is computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inputs {
    /// User records per second.
    pub rate: f64,
    /// Bytes per user record.
    pub record_bytes: u64,
    /// Bytes of the table item written per record (attribute names and values), as the event
    /// schema makes it.
    pub item_bytes: u64,
    /// Where the record and item sizes came from (a sample, the schema's synthetic events, a flag).
    pub sizes_from: String,
    /// Whether the cost is priced with KPL aggregation.
    pub aggregate: bool,
    /// Whether the stream is priced in on-demand mode.
    pub on_demand: bool,
    /// The mapping's ParallelizationFactor.
    pub parallelization: u32,
    /// The mapping's BatchSize (Kinesis records, so aggregates count as one).
    pub batch_size: u32,
    /// The mapping's MaximumBatchingWindowInSeconds.
    pub batching_window_s: u32,
    /// Function memory in MB.
    pub memory_mb: u32,
    /// The function's processor.
    pub architecture: Architecture,
    /// Function CPU time per user record, in microseconds: decoding, building items, the SDK's
    /// work per call; not the wait for DynamoDB.
    pub duration_us_per_record: f64,
    /// What one write call takes at DynamoDB, request sent to answer received, in milliseconds.
    pub write_latency_ms: f64,
    /// BatchWriteItem calls the handler keeps in flight within an invocation.
    pub write_concurrency: u32,
    /// The schema orders items by version: one conditional PutItem per item instead of
    /// BatchWriteItem (which takes no conditions), `PUTS_PER_BATCH_SLOT` in flight per slot.
    pub ordered: bool,
    /// Where the settings came from ("stack \"stream-dev\"", or the template's defaults).
    pub settings_from: String,
}

/// What bounds the shard count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// 1,000 records/s in.
    Records,
    /// 1 MiB/s in.
    BytesIn,
    /// 2 MiB/s out.
    BytesOut,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Records => "records/s in",
            Limit::BytesIn => "bytes/s in",
            Limit::BytesOut => "bytes/s out",
        })
    }
}

/// The stream's traffic in one packing (plain records or aggregates) and the shards it needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shards {
    /// User records in each Kinesis record (1 without aggregation).
    pub user_records_per_record: u64,
    /// Bytes of each Kinesis record.
    pub bytes_per_record: u64,
    /// Kinesis records per second.
    pub records_per_s: f64,
    /// Bytes per second into the stream (and out of it, to the one reader, the mapping).
    pub bytes_per_s: f64,
    /// Shards the record rate needs alone.
    pub by_records: u64,
    /// Shards the write bandwidth needs alone.
    pub by_bytes_in: u64,
    /// Shards the read bandwidth needs alone.
    pub by_bytes_out: u64,
    /// Shards needed: the largest of the three, at least 1.
    pub shards: u64,
    /// Which limit sets it.
    pub limit: Limit,
    /// How full the binding limit is across those shards (0-1).
    pub utilization: f64,
}

/// What the function does in a month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LambdaLoad {
    /// Shards the mapping reads.
    pub shards: u64,
    /// Most invocations running at once: shards × parallelization factor.
    pub concurrency: u64,
    /// Kinesis records per invocation at most: the batch size, or fewer when 6 MiB cuts it.
    pub batch_records: u64,
    /// Invocations per second.
    pub invocations_per_s: f64,
    /// User records per invocation, on average.
    pub user_records_per_invocation: f64,
    /// Billed milliseconds per invocation (Lambda bills whole milliseconds):
    /// `billed_duration.billed_ms`.
    pub billed_ms_per_invocation: u64,
    /// How that figure is made: CPU plus the waits for DynamoDB.
    pub billed_duration: BilledDuration,
    /// Share of the lanes' time spent running (above 1: the function cannot keep up).
    pub busy: f64,
    /// Invocations in a month.
    pub invocations_per_month: f64,
    /// GB-seconds in a month: billed seconds × memory in GB.
    pub gb_seconds_per_month: f64,
}

/// What Lambda bills one invocation, and why: its CPU, plus the rounds of write calls it waits for.
/// The handler decodes the batch, then sends its writes `calls_in_flight` at a time; each round
/// waits one call's latency. `tests/bench/billed_duration.py` measures the same figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BilledDuration {
    /// User records in the invocation (an average: it may be fractional).
    pub records: f64,
    /// CPU per record, in microseconds.
    pub cpu_us_per_record: f64,
    /// The invocation's CPU, in milliseconds.
    pub cpu_ms: f64,
    /// The write call: "BatchWriteItem", or "PutItem" (conditional) for ordered schemas.
    pub write_call: &'static str,
    /// Items per call: 25 for BatchWriteItem, 1 for PutItem.
    pub items_per_call: u64,
    /// Write calls the invocation makes.
    pub calls: u64,
    /// Calls in flight at once.
    pub calls_in_flight: u64,
    /// Rounds of calls the invocation waits for: calls / calls in flight, rounded up.
    pub rounds: u64,
    /// Latency per call, in milliseconds.
    pub latency_ms: f64,
    /// The waits: rounds × latency.
    pub wait_ms: f64,
    /// CPU + waits, in milliseconds.
    pub duration_ms: f64,
    /// What Lambda bills: the duration rounded up to the millisecond, at least 1.
    pub billed_ms: u64,
}

/// DynamoDB's writes bought as provisioned capacity instead of on-demand requests: enough WCU that
/// the write rate fills `target_utilization` of them, all month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProvisionedWrites {
    /// The share of provisioned capacity the writes use (`PROVISIONED_TARGET_UTILIZATION`).
    pub target_utilization: f64,
    /// Write capacity units provisioned: units/s ÷ target utilization, rounded up.
    pub write_capacity_units: u64,
    /// Their cost: WCU-hours at the list price.
    pub cost: CostRow,
    /// The plan's total with this row in place of the on-demand write units.
    pub total_usd: f64,
    /// This row's share of that total (0-1).
    pub dynamodb_share: f64,
}

/// What the table takes in a month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableLoad {
    /// Bytes per item.
    pub item_bytes: u64,
    /// Write request units per item.
    pub units_per_item: u64,
    /// Write request units per second.
    pub units_per_s: f64,
    /// Write request units in a month.
    pub units_per_month: f64,
}

/// One line of the cost table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostRow {
    /// "Kinesis shard-hours", "Lambda requests"…
    pub component: &'static str,
    /// How much of it a month.
    pub quantity: f64,
    /// What `quantity` counts.
    pub quantity_unit: &'static str,
    /// The list price, in USD per `price_per` of `price_unit`.
    pub price_usd: f64,
    /// How many units the price buys.
    pub price_per: f64,
    /// What the price buys.
    pub price_unit: &'static str,
    /// USD a month.
    pub monthly_usd: f64,
    /// The price's date.
    pub as_of: &'static str,
    /// AWS's pricing page.
    pub source: &'static str,
}

/// The result of `stream plan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// What it was computed from.
    pub inputs: Inputs,
    /// The stream without aggregation.
    pub unaggregated: Shards,
    /// The stream with KPL aggregation.
    pub aggregated: Shards,
    /// The function, with the packing `inputs.aggregate` chose.
    pub lambda: LambdaLoad,
    /// The table.
    pub table: TableLoad,
    /// Monthly cost per component, as the stack deploys them (an on-demand table).
    pub costs: Vec<CostRow>,
    /// Sum of the rows, USD a month.
    pub total_usd: f64,
    /// The on-demand write units' share of the total (0-1).
    pub dynamodb_share: f64,
    /// The same writes on a provisioned table, beside the on-demand row (not in the total).
    pub provisioned_writes: ProvisionedWrites,
    /// Hours in the priced month.
    pub hours_per_month: f64,
}

/// `x` rounded up to a whole number; float noise below 1e-9 does not add one (1,000/1,000 is 1).
fn whole(x: f64) -> u64 {
    (x - 1e-9).ceil().max(0.0) as u64
}

/// `bytes` rounded up to whole `unit`s.
fn units_of(bytes: u64, unit: u64) -> u64 {
    bytes.div_ceil(unit)
}

/// The plan for `inputs`: pure arithmetic, no AWS.
pub fn plan(inputs: &Inputs) -> Plan {
    let unaggregated = traffic(inputs.rate, 1, inputs.record_bytes);
    let aggregated = aggregated(inputs);
    let stream = if inputs.aggregate { &aggregated } else { &unaggregated };
    let lambda = lambda_load(inputs, stream);
    let table = table_load(inputs);
    let mut costs = kinesis_costs(inputs, stream);
    costs.extend(lambda_costs(inputs, &lambda));
    let on_demand = row(Priced::WriteUnits, DYNAMODB_ON_DEMAND, table.units_per_month, "write request units");
    let on_demand_usd = on_demand.monthly_usd;
    costs.push(on_demand);
    costs.extend(cloudwatch_costs(&lambda));
    let total_usd: f64 = costs.iter().map(|r| r.monthly_usd).sum();
    let provisioned_writes = provisioned_writes(&table, total_usd - on_demand_usd);
    Plan {
        inputs: inputs.clone(),
        unaggregated,
        aggregated,
        lambda,
        table,
        costs,
        total_usd,
        dynamodb_share: on_demand_usd / total_usd,
        provisioned_writes,
        hours_per_month: HOURS_PER_MONTH,
    }
}

/// The cost row of the table's on-demand writes.
const DYNAMODB_ON_DEMAND: &str = "DynamoDB write request units";

/// The table's writes as provisioned capacity: WCU for the write rate at the target utilization,
/// held every hour of the month; `rest_usd` is everything else the plan costs.
fn provisioned_writes(table: &TableLoad, rest_usd: f64) -> ProvisionedWrites {
    let write_capacity_units = whole(table.units_per_s / PROVISIONED_TARGET_UTILIZATION).max(1);
    let wcu_hours = write_capacity_units as f64 * HOURS_PER_MONTH;
    let cost = row(Priced::WriteCapacityHours, "DynamoDB provisioned write capacity", wcu_hours, "WCU-hours");
    let total_usd = rest_usd + cost.monthly_usd;
    ProvisionedWrites {
        target_utilization: PROVISIONED_TARGET_UTILIZATION,
        write_capacity_units,
        dynamodb_share: cost.monthly_usd / total_usd,
        total_usd,
        cost,
    }
}

/// Shards for `records_per_s` Kinesis records of `bytes_per_record`, each carrying `user` records.
/// The partition key's bytes (a handle, at most 15) are left out of plain records' size.
fn traffic(records_per_s: f64, user: u64, bytes_per_record: u64) -> Shards {
    let bytes_per_s = records_per_s * bytes_per_record as f64;
    // One reader (the mapping), so the bytes read equal the bytes written: with 2 MiB/s out
    // against 1 MiB/s in, reads never bind until a second reader is added.
    let ratios = [
        (Limit::Records, records_per_s / SHARD_RECORDS_PER_S),
        (Limit::BytesIn, bytes_per_s / SHARD_BYTES_PER_S),
        (Limit::BytesOut, bytes_per_s / SHARD_BYTES_OUT_PER_S),
    ];
    let (limit, need) = ratios.iter().fold(ratios[0], |best, &r| if r.1 > best.1 { r } else { best });
    let shards = whole(need).max(1);
    Shards {
        user_records_per_record: user,
        bytes_per_record,
        records_per_s,
        bytes_per_s,
        by_records: whole(ratios[0].1),
        by_bytes_in: whole(ratios[1].1),
        by_bytes_out: whole(ratios[2].1),
        shards,
        limit,
        utilization: need / shards as f64,
    }
}

/// The stream when the producer packs records into full KPL aggregates. Best case: at low rates
/// the producer's linger closes aggregates before they fill, so fewer records share each one.
fn aggregated(inputs: &Inputs) -> Shards {
    let sub_record = inputs.record_bytes + SUB_RECORD_OVERHEAD_BYTES;
    let per_aggregate = AGGREGATE_MAX_BYTES / sub_record;
    if per_aggregate < 2 {
        // A record too large to share an aggregate is sent alone, as a plain record.
        return traffic(inputs.rate, 1, inputs.record_bytes);
    }
    let bytes = per_aggregate * sub_record + AGGREGATE_FRAME_BYTES;
    traffic(inputs.rate / per_aggregate as f64, per_aggregate, bytes)
}

/// Lambda's side. The model: the mapping runs `shards × parallelization` lanes, each invoked at
/// least once per poll (1 s, or the batching window when longer) while records wait, and more
/// often when more than a batch waits; never more invocations than Kinesis records. Each
/// invocation is billed as `billed_duration` says.
fn lambda_load(inputs: &Inputs, stream: &Shards) -> LambdaLoad {
    let shards = if inputs.on_demand { stream.shards.max(ON_DEMAND_MIN_SHARDS) } else { stream.shards };
    let concurrency = shards * u64::from(inputs.parallelization);
    // Base64 turns every 3 bytes into 4; the 6 MiB event can cut a batch of large aggregates short.
    let event_bytes = units_of(stream.bytes_per_record, 3) * 4 + EVENT_RECORD_OVERHEAD_BYTES;
    let batch_records = u64::from(inputs.batch_size).min(INVOKE_PAYLOAD_BYTES / event_bytes).max(1);
    let interval = POLL_INTERVAL_S.max(f64::from(inputs.batching_window_s));
    let k = stream.records_per_s;
    let invocations_per_s = (k / batch_records as f64).max(concurrency as f64 / interval).min(k);
    let user_records_per_invocation = inputs.rate / invocations_per_s;
    let billed_duration = billed_duration(user_records_per_invocation, inputs);
    let billed_ms_per_invocation = billed_duration.billed_ms;
    let billed_s_per_s = invocations_per_s * billed_ms_per_invocation as f64 / 1000.0;
    // Lambda's GB is 1,024 MB: a 256 MB function is 0.25 GB.
    let gb = f64::from(inputs.memory_mb) / 1024.0;
    LambdaLoad {
        shards,
        concurrency,
        batch_records,
        invocations_per_s,
        user_records_per_invocation,
        billed_ms_per_invocation,
        billed_duration,
        busy: billed_s_per_s / concurrency as f64,
        invocations_per_month: invocations_per_s * SECONDS_PER_MONTH,
        gb_seconds_per_month: billed_s_per_s * gb * SECONDS_PER_MONTH,
    }
}

/// What Lambda bills an invocation of `records` user records. In Lambda an invocation waits for
/// its DynamoDB round trips: the handler decodes the batch (CPU), then writes its items in calls
/// of 25 (BatchWriteItem), `write_concurrency` calls in flight; an ordered schema writes one
/// conditional PutItem per item, `PUTS_PER_BATCH_SLOT` times as many in flight. Each round of
/// calls in flight waits one call's latency. Lambda bills the duration rounded up to the
/// millisecond. Duplicates, quarantine and resends aside.
/// <https://aws.amazon.com/lambda/pricing/>
pub fn billed_duration(records: f64, inputs: &Inputs) -> BilledDuration {
    let concurrency = u64::from(inputs.write_concurrency.max(1));
    let (write_call, items_per_call, calls_in_flight) = if inputs.ordered {
        ("PutItem", 1, concurrency * PUTS_PER_BATCH_SLOT as u64)
    } else {
        ("BatchWriteItem", MAX_BATCH_WRITE as u64, concurrency)
    };
    let calls = whole(records / items_per_call as f64);
    let rounds = calls.div_ceil(calls_in_flight);
    let cpu_ms = records * inputs.duration_us_per_record / 1000.0;
    let wait_ms = rounds as f64 * inputs.write_latency_ms;
    let duration_ms = cpu_ms + wait_ms;
    BilledDuration {
        records,
        cpu_us_per_record: inputs.duration_us_per_record,
        cpu_ms,
        write_call,
        items_per_call,
        calls,
        calls_in_flight,
        rounds,
        latency_ms: inputs.write_latency_ms,
        wait_ms,
        duration_ms,
        billed_ms: whole(duration_ms).max(1),
    }
}

/// DynamoDB's side: one put per user record (replays and duplicates aside).
fn table_load(inputs: &Inputs) -> TableLoad {
    let units_per_item = units_of(inputs.item_bytes, WRITE_UNIT_BYTES).max(1);
    let units_per_s = inputs.rate * units_per_item as f64;
    TableLoad {
        item_bytes: inputs.item_bytes,
        units_per_item,
        units_per_s,
        units_per_month: units_per_s * SECONDS_PER_MONTH,
    }
}

/// A cost row: `quantity` of `item` at its list price.
fn row(item: Priced, component: &'static str, quantity: f64, quantity_unit: &'static str) -> CostRow {
    let p = price(item);
    CostRow {
        component,
        quantity,
        quantity_unit,
        price_usd: p.usd,
        price_per: p.per,
        price_unit: p.unit,
        monthly_usd: quantity / p.per * p.usd,
        as_of: p.as_of,
        source: p.source,
    }
}

/// Kinesis: shard-hours and PUT payload units when provisioned; stream-hours and GB written and
/// read when on-demand.
fn kinesis_costs(inputs: &Inputs, stream: &Shards) -> Vec<CostRow> {
    if inputs.on_demand {
        let billed_bytes = units_of(stream.bytes_per_record, ON_DEMAND_ROUNDING_BYTES) * ON_DEMAND_ROUNDING_BYTES;
        let gb_in = stream.records_per_s * billed_bytes as f64 * SECONDS_PER_MONTH / GB;
        let gb_out = stream.bytes_per_s * SECONDS_PER_MONTH / GB;
        vec![
            row(Priced::StreamHour, "Kinesis on-demand stream-hours", HOURS_PER_MONTH, "stream-hours"),
            row(Priced::DataIn, "Kinesis on-demand data in", gb_in, "GB"),
            row(Priced::DataOut, "Kinesis on-demand data out", gb_out, "GB"),
        ]
    } else {
        let units = units_of(stream.bytes_per_record, PUT_PAYLOAD_UNIT_BYTES) as f64;
        vec![
            row(Priced::ShardHour, "Kinesis shard-hours", stream.shards as f64 * HOURS_PER_MONTH, "shard-hours"),
            row(
                Priced::PutPayloadUnits,
                "Kinesis PUT payload units",
                stream.records_per_s * units * SECONDS_PER_MONTH,
                "PUT payload units",
            ),
        ]
    }
}

/// Lambda: requests and GB-seconds at the function's architecture.
fn lambda_costs(inputs: &Inputs, lambda: &LambdaLoad) -> Vec<CostRow> {
    let gb_second = match inputs.architecture {
        Architecture::X86 => Priced::GbSecondX86,
        Architecture::Arm64 => Priced::GbSecondArm,
    };
    vec![
        row(Priced::Requests, "Lambda requests", lambda.invocations_per_month, "requests"),
        row(gb_second, "Lambda GB-seconds", lambda.gb_seconds_per_month, "GB-seconds"),
    ]
}

/// CloudWatch: the function's log lines ingested, and its EMF custom metrics.
fn cloudwatch_costs(lambda: &LambdaLoad) -> Vec<CostRow> {
    let gb = lambda.invocations_per_month * LOG_BYTES_PER_INVOCATION as f64 / GB;
    vec![
        row(Priced::LogsIngested, "CloudWatch Logs ingestion", gb, "GB"),
        row(Priced::CustomMetric, "CloudWatch custom metrics", CUSTOM_METRICS as f64, "metric-months"),
    ]
}

#[cfg(test)]
mod tests {
    use super::display::{dollars, figure, money};
    use super::*;

    /// 730 hours × 3,600 s.
    const MONTH_S: f64 = 2_628_000.0;

    /// Provisioned, not aggregated, parallelization 1, batch 100, no window, 256 MB x86, 20 µs CPU
    /// per record, 5 ms per write call, 8 BatchWriteItem calls in flight (the tweets schema).
    fn base(rate: f64, record_bytes: u64) -> Inputs {
        Inputs {
            rate,
            record_bytes,
            item_bytes: record_bytes,
            sizes_from: "the test".into(),
            aggregate: false,
            on_demand: false,
            parallelization: 1,
            batch_size: 100,
            batching_window_s: 0,
            memory_mb: 256,
            architecture: Architecture::X86,
            duration_us_per_record: 20.0,
            write_latency_ms: 5.0,
            write_concurrency: 8,
            ordered: false,
            settings_from: "the test".into(),
        }
    }

    fn close(actual: f64, expected: f64) {
        let tolerance = 1e-9 * expected.abs().max(1.0);
        assert!((actual - expected).abs() <= tolerance, "{actual} != {expected}");
    }

    fn cost(plan: &Plan, component: &str) -> f64 {
        plan.costs.iter().find(|r| r.component == component).unwrap_or_else(|| panic!("no row {component}")).monthly_usd
    }

    fn has_row(plan: &Plan, component: &str) -> bool {
        plan.costs.iter().any(|r| r.component == component)
    }

    /// 500 records/s of 700 bytes, provisioned, plain records: the record rate sets one shard.
    #[test]
    fn a_small_stream_is_priced_by_hand() {
        let p = plan(&base(500.0, 700));
        // Shards: records 500/1,000 = 0.5; bytes in 500 × 700 = 350,000 B/s / 1,048,576 = 0.334;
        // out 350,000 / 2,097,152 = 0.167. ceil(max) = 1, set by the record rate, 50% full.
        assert_eq!((p.unaggregated.shards, p.unaggregated.limit), (1, Limit::Records));
        close(p.unaggregated.utilization, 0.5);
        // Aggregated: a sub-record is 700 + 32 = 732 bytes; 51,200 / 732 = 69 per aggregate of
        // 69 × 732 + 20 = 50,528 bytes; 500 / 69 = 7.246 aggregates/s; bytes 7.246 × 50,528 =
        // 366,144.9 B/s = 0.349 of a shard: still 1 shard, now set by bytes.
        assert_eq!((p.aggregated.user_records_per_record, p.aggregated.bytes_per_record), (69, 50_528));
        assert_eq!((p.aggregated.shards, p.aggregated.limit), (1, Limit::BytesIn));
        close(p.aggregated.bytes_per_s, 500.0 * 732.0 + 20.0 * 500.0 / 69.0);
        // Shard-hours: 1 × 730 × $0.015 = $10.95.
        close(cost(&p, "Kinesis shard-hours"), 10.95);
        // PUT payload units: 700 B is one 25 KB unit; 500 × 2,628,000 = 1,314,000,000 units;
        // 1,314 × $0.014 = $18.396.
        close(cost(&p, "Kinesis PUT payload units"), 18.396);
        // Lambda: 1 lane; max(500 / 100, 1 lane / 1 s) = 5 invocations/s of 100 records; 100 × 20 µs
        // = 2 ms of CPU, + 100 / 25 = 4 BatchWriteItem calls, all in flight (8): 1 round × 5 ms:
        // 7 ms billed. Requests: 5 × 2,628,000 = 13,140,000 × $0.20/M = $2.628.
        assert_eq!((p.lambda.concurrency, p.lambda.billed_ms_per_invocation), (1, 7));
        close(p.lambda.invocations_per_s, 5.0);
        close(cost(&p, "Lambda requests"), 2.628);
        // GB-s: 5 × 0.007 s × 0.25 GB × 2,628,000 = 22,995; × $0.0000166667 = $0.38325.
        close(p.lambda.gb_seconds_per_month, 22_995.0);
        close(cost(&p, "Lambda GB-seconds"), 22_995.0 * 0.000_016_666_7);
        // DynamoDB: 700 B ≤ 1 KB is 1 WRU; 500 × 2,628,000 = 1,314M WRU × $0.625 = $821.25.
        close(cost(&p, "DynamoDB write request units"), 821.25);
        // Logs: 13,140,000 invocations × 1,500 B = 19,710,000,000 B / 2^30 = 18.356 GB × $0.50.
        let logs = 19_710_000_000.0 / 1_073_741_824.0 * 0.5;
        close(cost(&p, "CloudWatch Logs ingestion"), logs);
        // Metrics: 9 × $0.30 = $2.70.
        close(cost(&p, "CloudWatch custom metrics"), 2.70);
        let total = 10.95 + 18.396 + 2.628 + 22_995.0 * 0.000_016_666_7 + 821.25 + logs + 2.70;
        close(p.total_usd, total);
        assert!(!has_row(&p, "Kinesis on-demand stream-hours"));
        // Provisioned instead: 500 WCU/s at 70% is 714.3 → 715 WCU × 730 h = 521,950 WCU-hours ×
        // $0.00065 = $339.2675, in place of the $821.25.
        let w = &p.provisioned_writes;
        assert_eq!(w.write_capacity_units, 715);
        close(w.cost.quantity, 521_950.0);
        close(w.cost.monthly_usd, 339.2675);
        close(w.total_usd, total - 821.25 + 339.2675);
        close(p.dynamodb_share, 821.25 / total);
        close(w.dynamodb_share, 339.2675 / (total - 821.25 + 339.2675));
    }

    /// 800 records/s of 2 KB: the bytes set the shards, and aggregation cannot lower them.
    #[test]
    fn large_records_are_bound_by_bytes() {
        let p = plan(&base(800.0, 2048));
        // Records 800 / 1,000 = 0.8 → 1; bytes 800 × 2,048 = 1,638,400 / 1,048,576 = 1.5625 → 2;
        // out 1,638,400 / 2,097,152 = 0.78 → 1. Two shards, set by bytes in, 78% full.
        let s = &p.unaggregated;
        assert_eq!((s.by_records, s.by_bytes_in, s.by_bytes_out, s.shards, s.limit), (1, 2, 1, 2, Limit::BytesIn));
        close(s.utilization, 1.5625 / 2.0);
        // Aggregated: 51,200 / 2,080 = 24 per aggregate; 800 × 2,080 + 20 × 800 / 24 =
        // 1,664,666.7 B/s = 1.588 shards → still 2.
        assert_eq!((p.aggregated.user_records_per_record, p.aggregated.shards), (24, 2));
        // Shard-hours: 2 × 730 = 1,460 × $0.015 = $21.90. PUT units: 800 × 2,628,000 =
        // 2,102,400,000 × $0.014/M = $29.4336.
        close(cost(&p, "Kinesis shard-hours"), 21.90);
        close(cost(&p, "Kinesis PUT payload units"), 29.4336);
        // Lambda: 2 lanes; max(800 / 100, 2) = 8 invocations/s of 100 records, 2 + 5 = 7 ms each.
        // Requests 8 × 2,628,000 = 21,024,000 → $4.2048; GB-s 8 × 0.007 × 0.25 × 2,628,000 = 36,792.
        assert_eq!(p.lambda.concurrency, 2);
        close(cost(&p, "Lambda requests"), 4.2048);
        close(p.lambda.gb_seconds_per_month, 36_792.0);
        // DynamoDB: 2,048 B is 2 WRU; 1,600 WRU/s × 2,628,000 = 4,204.8M × $0.625 = $2,628.
        assert_eq!(p.table.units_per_item, 2);
        close(cost(&p, "DynamoDB write request units"), 2_628.0);
    }

    /// 3,000 records/s of 300 bytes: aggregation turns 3 shards into 1 and 3,000 PUT units/s into 39.
    #[test]
    fn aggregation_cuts_records_shards_and_put_units() {
        let plain = plan(&base(3000.0, 300));
        let p = plan(&Inputs { aggregate: true, ..base(3000.0, 300) });
        // Plain: 3,000 / 1,000 = 3 shards by records (bytes: 900,000 / 1,048,576 = 0.86).
        assert_eq!((plain.unaggregated.shards, plain.unaggregated.limit), (3, Limit::Records));
        // PUT units plain: 3,000 × 2,628,000 = 7,884M × $0.014 = $110.376; shard-hours 3 × 730 → $32.85.
        close(cost(&plain, "Kinesis PUT payload units"), 110.376);
        close(cost(&plain, "Kinesis shard-hours"), 32.85);
        // Aggregated: sub-record 332 bytes; 51,200 / 332 = 154 per aggregate of 154 × 332 + 20 =
        // 51,148 bytes; 3,000 / 154 = 19.48 aggregates/s; bytes 996,000 + 389.6 = 996,389.6 B/s
        // = 0.95 of a shard → 1 shard, set by bytes.
        let s = &p.aggregated;
        assert_eq!(
            (s.user_records_per_record, s.bytes_per_record, s.shards, s.limit),
            (154, 51_148, 1, Limit::BytesIn)
        );
        close(s.records_per_s, 3000.0 / 154.0);
        // An aggregate of 51,148 bytes is ceil(51,148 / 25,600) = 2 PUT units: 19.48 × 2 × 2,628,000
        // = 102,389,610.4 units × $0.014/M = $1.4334545; one shard: $10.95.
        close(cost(&p, "Kinesis PUT payload units"), 3000.0 / 154.0 * 2.0 * MONTH_S * 0.014 / 1e6);
        close(cost(&p, "Kinesis shard-hours"), 10.95);
        // Lambda: an event record is base64(51,148) = 68,200 + 512 = 68,712 bytes; 6 MiB /
        // 68,712 = 91 aggregates per batch (not 100). 1 lane: min(19.48, max(19.48 / 91, 1)) =
        // 1 invocation/s of 3,000 records; 3,000 × 20 µs = 60 ms of CPU, + 3,000 / 25 = 120 calls,
        // 8 at a time: 15 rounds × 5 ms = 75 ms; 135 ms billed. Requests 2,628,000 → $0.5256;
        // GB-s 1 × 0.135 × 0.25 × 2,628,000 = 88,695.
        assert_eq!((p.lambda.batch_records, p.lambda.billed_ms_per_invocation), (91, 135));
        assert_eq!((p.lambda.billed_duration.calls, p.lambda.billed_duration.rounds), (120, 15));
        close(p.lambda.invocations_per_s, 1.0);
        close(cost(&p, "Lambda requests"), 0.5256);
        close(p.lambda.gb_seconds_per_month, 88_695.0);
        close(p.lambda.busy, 0.135);
        // DynamoDB is unchanged by packing: 3,000 × 1 WRU × 2,628,000 = 7,884M × $0.625 = $4,927.50.
        close(cost(&p, "DynamoDB write request units"), 4_927.5);
    }

    /// 500 records/s of 700 bytes on-demand, parallelization 2: per-GB rows and 4 shards' lanes.
    #[test]
    fn on_demand_is_priced_per_gigabyte() {
        let p = plan(&Inputs { on_demand: true, parallelization: 2, ..base(500.0, 700) });
        assert!(!has_row(&p, "Kinesis shard-hours") && !has_row(&p, "Kinesis PUT payload units"));
        // Stream-hours: 730 × $0.04 = $29.20.
        close(cost(&p, "Kinesis on-demand stream-hours"), 29.20);
        // Data in: each 700-byte record is billed as 1,024 bytes: 500 × 1,024 × 2,628,000 =
        // 1,345,536,000,000 B / 2^30 = 1,253.128 GB × $0.08 = $100.250.
        close(cost(&p, "Kinesis on-demand data in"), 1_345_536_000_000.0 / 1_073_741_824.0 * 0.08);
        // Data out, not rounded: 350,000 × 2,628,000 = 919,800,000,000 B / 2^30 = 856.63 GB × $0.04.
        close(cost(&p, "Kinesis on-demand data out"), 919_800_000_000.0 / 1_073_741_824.0 * 0.04);
        // Lambda reads at least 4 shards: 4 × 2 = 8 lanes, each invoked once a second:
        // max(500 / 100, 8) = 8 invocations/s of 62.5 records = 1.25 ms of CPU, + ceil(62.5 / 25) =
        // 3 calls in 1 round × 5 ms: 6.25 ms → 7 ms billed.
        assert_eq!((p.lambda.shards, p.lambda.concurrency, p.lambda.billed_ms_per_invocation), (4, 8, 7));
        close(p.lambda.invocations_per_s, 8.0);
        close(p.lambda.gb_seconds_per_month, 8.0 * 0.007 * 0.25 * MONTH_S);
    }

    /// arm64 functions are priced at arm64's GB-second; a slow handler shows it cannot keep up.
    #[test]
    fn architecture_and_saturation_show() {
        let arm = plan(&Inputs { architecture: Architecture::Arm64, ..base(500.0, 700) });
        close(cost(&arm, "Lambda GB-seconds"), 22_995.0 * 0.000_013_333_4);
        // 2,000 records/s: 2 shards, 2 lanes, 20 invocations/s of 100 records × 2,000 µs = 200 ms
        // + 5 ms: 20 × 0.205 s / 2 lanes = 2.05 seconds of work per lane-second.
        let slow = plan(&Inputs { duration_us_per_record: 2_000.0, ..base(2000.0, 700) });
        close(slow.lambda.busy, 2.05);
        assert!(slow.to_string().contains("cannot keep up"));
    }

    /// An invocation is billed its CPU plus one call latency per round of write calls in flight,
    /// rounded up to the millisecond, at least 1.
    #[test]
    fn billed_duration_is_cpu_plus_rounds_of_writes() {
        let d = |records: f64, inputs: Inputs| billed_duration(records, &inputs);
        // 100 records: 2 ms of CPU; 4 calls of 25, 8 in flight: 1 round of 5 ms; 7 ms.
        let b = d(100.0, base(1.0, 456));
        assert_eq!(
            (b.write_call, b.items_per_call, b.calls, b.calls_in_flight, b.rounds),
            ("BatchWriteItem", 25, 4, 8, 1)
        );
        close(b.cpu_ms, 2.0);
        close(b.wait_ms, 5.0);
        close(b.duration_ms, 7.0);
        assert_eq!(b.billed_ms, 7);
        // 1,000 records: 20 ms of CPU; 40 calls, 5 rounds × 5 ms = 25 ms; 45 ms.
        let b = d(1000.0, base(1.0, 456));
        assert_eq!((b.calls, b.rounds, b.billed_ms), (40, 5, 45));
        // 201 records: 4.02 ms of CPU; ceil(201 / 25) = 9 calls: 2 rounds = 10 ms; 14.02 → 15 ms.
        let b = d(201.0, base(1.0, 456));
        assert_eq!((b.calls, b.rounds, b.billed_ms), (9, 2, 15));
        close(b.duration_ms, 14.02);
        // One call in flight: the 4 calls of 100 records wait one after another: 2 + 20 = 22 ms.
        assert_eq!(d(100.0, Inputs { write_concurrency: 1, ..base(1.0, 456) }).billed_ms, 22);
        // No latency: the CPU alone, 2 ms; 10 records are 0.2 ms, billed as Lambda's least, 1 ms.
        assert_eq!(d(100.0, Inputs { write_latency_ms: 0.0, ..base(1.0, 456) }).billed_ms, 2);
        assert_eq!(d(10.0, Inputs { write_latency_ms: 0.0, ..base(1.0, 456) }).billed_ms, 1);
        // 12.5 ms per call: 2 + 12.5 = 14.5 → 15 ms.
        assert_eq!(d(100.0, Inputs { write_latency_ms: 12.5, ..base(1.0, 456) }).billed_ms, 15);
        // An ordered schema puts each item alone (conditional PutItem), PUTS_PER_BATCH_SLOT per
        // slot in flight: 100 puts, 8 × 4 = 32 at once today, 4 rounds: 2 + 20 = 22 ms.
        let b = d(100.0, Inputs { ordered: true, ..base(1.0, 456) });
        let in_flight = 8 * PUTS_PER_BATCH_SLOT as u64;
        assert_eq!((b.write_call, b.items_per_call, b.calls, b.calls_in_flight), ("PutItem", 1, 100, in_flight));
        assert_eq!(b.rounds, 100u64.div_ceil(in_flight));
        close(b.duration_ms, 2.0 + 5.0 * 100u64.div_ceil(in_flight) as f64);
    }

    /// At 5,000 records/s of 2 KB, DynamoDB is more than 95% of the on-demand bill; provisioned at
    /// 70% it costs 41% of that, and is still most of a smaller bill.
    #[test]
    fn dynamodb_dominates_the_bill_at_5000_records_of_2kb() {
        let p = plan(&base(5000.0, 2048));
        // DynamoDB: 2 WRU per item, 10,000 WRU/s × 2,628,000 = 26,280M × $0.625/M = $16,425.
        close(cost(&p, DYNAMODB_ON_DEMAND), 16_425.0);
        // Kinesis: 10,240,000 B/s / 1,048,576 = 9.77 → 10 shards × 730 × $0.015 = $109.50; PUT
        // units 5,000 × 2,628,000 = 13,140M × $0.014/M = $183.96.
        close(cost(&p, "Kinesis shard-hours"), 109.5);
        close(cost(&p, "Kinesis PUT payload units"), 183.96);
        // Lambda: 10 lanes, 50 invocations/s of 100 records at 7 ms: requests 131.4M × $0.20/M =
        // $26.28; GB-s 50 × 0.007 × 0.25 × 2,628,000 = 229,950 × $0.0000166667.
        close(cost(&p, "Lambda requests"), 26.28);
        close(cost(&p, "Lambda GB-seconds"), 229_950.0 * 0.000_016_666_7);
        // Logs 131,400,000 × 1,500 B / 2^30 × $0.50; metrics $2.70.
        let logs = 131_400_000.0 * 1500.0 / 1_073_741_824.0 * 0.5;
        let total = 16_425.0 + 109.5 + 183.96 + 26.28 + 229_950.0 * 0.000_016_666_7 + logs + 2.70;
        close(p.total_usd, total);
        close(p.dynamodb_share, 16_425.0 / total);
        assert!(p.dynamodb_share > 0.95, "{}", p.dynamodb_share);
        // Provisioned: 10,000 / 0.7 = 14,285.7 → 14,286 WCU × 730 = 10,428,780 WCU-hours ×
        // $0.00065 = $6,778.707.
        let w = &p.provisioned_writes;
        assert_eq!(w.write_capacity_units, 14_286);
        close(w.cost.monthly_usd, 6_778.707);
        close(w.total_usd, total - 16_425.0 + 6_778.707);
        close(w.dynamodb_share, 6_778.707 / (total - 16_425.0 + 6_778.707));
    }

    /// Every price is listed once, in the enum's order, with a date and an AWS page.
    /// The text shows each row's price beside its date, and the JSON carries the rows.
    #[test]
    fn output_shows_prices_with_dates_and_json_has_the_rows() {
        for inputs in [base(500.0, 700), Inputs { on_demand: true, aggregate: true, ..base(500.0, 700) }] {
            let p = plan(&inputs);
            let text = p.to_string();
            for r in &p.costs {
                let line = text.lines().find(|l| l.starts_with(r.component)).expect("a line per row");
                assert!(line.contains(r.as_of) && line.contains(&dollars(r.price_usd)), "{line}");
            }
            assert!(text.contains("730-hour month") && text.contains("https://aws.amazon.com/lambda/pricing/"));
            let json = serde_json::to_value(&p).expect("json");
            let rows = json["costs"].as_array().expect("rows");
            assert_eq!(rows.len(), p.costs.len());
            assert!(rows.iter().all(|r| r["as_of"].is_string() && r["monthly_usd"].is_number()));
            assert!(json["unaggregated"]["shards"].is_number() && json["lambda"]["concurrency"].is_number());
            let w = &p.provisioned_writes.cost;
            let line = text.lines().find(|l| l.starts_with(w.component)).expect("the provisioned line");
            assert!(
                line.contains("$0.00065 per WCU-hour")
                    && line.contains(w.as_of)
                    && line.contains(&money(w.monthly_usd))
            );
        }
        // The billed duration's assumptions are printed with the flags that change them, and the
        // JSON carries the same figures.
        let p = plan(&base(500.0, 700));
        let text = p.to_string();
        assert!(text.contains("assumed: 5.00 ms per DynamoDB call (--write-latency-ms)"), "{text}");
        assert!(text.contains("20.00 µs CPU per record (--duration-us-per-record)"), "{text}");
        assert!(text.contains("7 ms billed each: 100 records × 20.00 µs CPU = 2.00 ms, + 1 round of 4 BatchWriteItem calls (8 in flight) × 5.00 ms = 5.00 ms"), "{text}");
        assert!(text.contains("715 WCU at 70% target utilization"), "{text}");
        assert!(text.contains("https://aws.amazon.com/dynamodb/pricing/provisioned/"), "{text}");
        let json = serde_json::to_value(&p).expect("json");
        let d = &json["lambda"]["billed_duration"];
        assert_eq!(
            (d["latency_ms"].as_f64(), d["rounds"].as_u64(), d["billed_ms"].as_u64()),
            (Some(5.0), Some(1), Some(7))
        );
        assert_eq!(json["inputs"]["write_latency_ms"].as_f64(), Some(5.0));
        let w = &json["provisioned_writes"];
        assert_eq!((w["target_utilization"].as_f64(), w["write_capacity_units"].as_u64()), (Some(0.7), Some(715)));
        assert!(w["cost"]["monthly_usd"].is_number() && json["dynamodb_share"].is_number());
        assert_eq!(
            (dollars(0.2), dollars(0.014), dollars(0.000_016_666_7)),
            ("$0.20".into(), "$0.014".into(), "$0.0000166667".into())
        );
        assert_eq!((money(4_927.5), money(865.214), money(0.109)), ("4,927.50".into(), "865.21".into(), "0.11".into()));
        assert_eq!(
            (figure(1_314_000_000.0), figure(18.356), figure(0.5)),
            ("1,314,000,000".into(), "18.36".into(), "0.500".into())
        );
    }

    /// The constants copied from the producer and the handler agree with them.
    #[test]
    fn constants_match_the_producer_and_the_handler() {
        assert_eq!(AGGREGATE_MAX_BYTES as usize, crate::produce::delivery::AGGREGATE_MAX_BYTES);
        let stats = crate::process::BatchStats { records: 100, user_records: 100, written: 100, ..Default::default() };
        let emf = crate::process::metrics::emf("stream-dev-DDBEventProcessor", &stats, 12.5, 1_700_000_000_000, false);
        let declared = emf["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().expect("metrics").len();
        assert_eq!(declared as u64, CUSTOM_METRICS);
        let emf_line = emf.to_string().len() as u64;
        assert!(emf_line < LOG_BYTES_PER_INVOCATION / 2, "EMF line {emf_line} bytes");
    }
}
