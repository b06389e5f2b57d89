//! How a `Plan` reads for people: the capacity lines, the function's billed duration and its
//! assumptions, and the monthly cost table with the provisioned alternative. Figures are grouped
//! and rounded here only; the arithmetic is the parent's.

use std::fmt;

use super::Plan;
use crate::capacity::prices::HOURS_PER_MONTH;
use crate::kinesis::SHARD_BYTES_PER_S;

/// A figure for people: thousands grouped at 100 and above, two decimals below, three below 1.
pub(super) fn figure(x: f64) -> String {
    if x.abs() < 1.0 {
        return format!("{x:.3}");
    }
    if x.abs() < 100.0 {
        return format!("{x:.2}");
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

/// Dollars with at least two decimals and every significant digit: "$0.20", "$0.0000166667".
pub(super) fn dollars(usd: f64) -> String {
    let text = format!("{usd}");
    let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
    if decimals >= 2 { format!("${text}") } else { format!("${usd:.2}") }
}

/// Dollars for a total: thousands grouped, two decimals ("4,927.50").
pub(super) fn money(usd: f64) -> String {
    let cents = format!("{usd:.2}");
    let (whole_part, decimals) = cents.split_once('.').unwrap_or((&cents, "00"));
    let grouped = if whole_part.len() > 3 { figure(whole_part.parse().unwrap_or(0.0)) } else { whole_part.to_string() };
    format!("{grouped}.{decimals}")
}

/// "1 shard", "3 shards".
fn count(n: u64, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

impl Plan {
    fn fmt_capacity(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inputs;
        let mode = if i.on_demand { "on-demand" } else { "provisioned" };
        let packing = if i.aggregate { "aggregated" } else { "not aggregated" };
        writeln!(f, "plan: {} records/s of {} bytes, {mode}, {packing}", figure(i.rate), i.record_bytes)?;
        writeln!(
            f,
            "settings from {}; sizes from {} (items of {} bytes)",
            i.settings_from, i.sizes_from, i.item_bytes
        )?;
        writeln!(f, "Kinesis               shards  set by        records/s   MiB/s in")?;
        for (name, s) in [("without aggregation", &self.unaggregated), ("with aggregation", &self.aggregated)] {
            writeln!(
                f,
                "  {name:<20} {:>5}  {:<12} {:>10} {:>10}   ({:.0}% of the limit; {} per Kinesis record)",
                s.shards,
                s.limit.to_string(),
                figure(s.records_per_s),
                figure(s.bytes_per_s / SHARD_BYTES_PER_S),
                s.utilization * 100.0,
                count(s.user_records_per_record, "user record"),
            )?;
        }
        self.fmt_lambda(f)?;
        let (t, p) = (&self.table, &self.provisioned_writes);
        writeln!(
            f,
            "DynamoDB  {} write units/s ({} per item of {} bytes); provisioned, {} WCU at {:.0}% target utilization",
            figure(t.units_per_s),
            t.units_per_item,
            t.item_bytes,
            figure(p.write_capacity_units as f64),
            p.target_utilization * 100.0,
        )
    }

    /// The function's lines: lanes and invocations, what each invocation is billed and why, and the
    /// assumptions behind it with the flags that change them.
    fn fmt_lambda(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (i, l, d) = (&self.inputs, &self.lambda, &self.lambda.billed_duration);
        writeln!(
            f,
            "Lambda    concurrency {} ({} × parallelization {}); {} invocations/s of {} records",
            l.concurrency,
            count(l.shards, "shard"),
            i.parallelization,
            figure(l.invocations_per_s),
            figure(l.user_records_per_invocation),
        )?;
        writeln!(
            f,
            "          {} ms billed each: {} records × {} µs CPU = {} ms, + {} of {} {} calls ({} in flight) × {} ms = {} ms",
            d.billed_ms,
            figure(d.records),
            figure(d.cpu_us_per_record),
            figure(d.cpu_ms),
            count(d.rounds, "round"),
            d.calls,
            d.write_call,
            d.calls_in_flight,
            figure(d.latency_ms),
            figure(d.wait_ms),
        )?;
        writeln!(
            f,
            "          assumed: {} ms per DynamoDB call (--write-latency-ms), {} µs CPU per record (--duration-us-per-record)",
            figure(d.latency_ms),
            figure(d.cpu_us_per_record),
        )?;
        writeln!(
            f,
            "          at {} MB ({}): {} GB-seconds a month; lanes busy {:.0}%",
            i.memory_mb,
            i.architecture.as_str(),
            figure(l.gb_seconds_per_month),
            l.busy * 100.0,
        )?;
        if l.busy > 1.0 {
            writeln!(f, "          the function cannot keep up: raise --parallelization or the shards")?;
        }
        Ok(())
    }

    fn fmt_costs(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\nmonthly cost: us-east-1 list prices, {HOURS_PER_MONTH:.0}-hour month, before free tiers and discounts"
        )?;
        writeln!(
            f,
            "{:<32} {:>16} {:<20} {:<40} {:<10} {:>12}",
            "component", "quantity", "", "price", "as of", "USD/month"
        )?;
        for r in &self.costs {
            writeln!(
                f,
                "{:<32} {:>16} {:<20} {:<40} {:<10} {:>12}",
                r.component,
                figure(r.quantity),
                r.quantity_unit,
                format!("{} per {}", dollars(r.price_usd), r.price_unit),
                r.as_of,
                money(r.monthly_usd)
            )?;
        }
        writeln!(f, "{:<32} {:>16} {:<20} {:<40} {:<10} {:>12}", "total", "", "", "", "", money(self.total_usd))?;
        writeln!(
            f,
            "  DynamoDB's on-demand writes are {:.1}% of it (the stack's table is on-demand)",
            self.dynamodb_share * 100.0
        )?;
        self.fmt_provisioned(f)?;
        let mut sources: Vec<&str> =
            self.costs.iter().chain([&self.provisioned_writes.cost]).map(|r| r.source).collect();
        sources.dedup();
        write!(f, "prices: {}", sources.join(" "))
    }

    /// The same writes bought as provisioned capacity: its row and the total it makes.
    fn fmt_provisioned(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.provisioned_writes;
        writeln!(
            f,
            "instead, provisioned: {} WCU ({} write units/s at {:.0}% target utilization), every hour of the month",
            figure(p.write_capacity_units as f64),
            figure(self.table.units_per_s),
            p.target_utilization * 100.0,
        )?;
        let r = &p.cost;
        writeln!(
            f,
            "{:<32} {:>16} {:<20} {:<40} {:<10} {:>12}",
            r.component,
            figure(r.quantity),
            r.quantity_unit,
            format!("{} per {}", dollars(r.price_usd), r.price_unit),
            r.as_of,
            money(r.monthly_usd)
        )?;
        let total = "total with provisioned writes";
        writeln!(f, "{total:<32} {:>16} {:<20} {:<40} {:<10} {:>12}", "", "", "", "", money(p.total_usd))?;
        writeln!(f, "  DynamoDB's provisioned writes are {:.1}% of it", p.dynamodb_share * 100.0)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_capacity(f)?;
        self.fmt_costs(f)
    }
}
