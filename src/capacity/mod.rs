//! `stream plan`: capacity and monthly cost before traffic arrives — shards with and without KPL
//! aggregation, Lambda concurrency, invocations and the duration each is billed (CPU plus the waits
//! for DynamoDB), DynamoDB write units on-demand and provisioned, and a cost per component at AWS's
//! us-east-1 list prices. A model, not a bill: no metrics, no pricing API. This file owns the flags
//! and `run`, which takes the settings from the deployed stack (or the template) and the handler's
//! write concurrency; `model` is the arithmetic (a pure `plan`), `prices` the dated price table.

pub mod model;
pub mod prices;

use clap::Args;

use std::path::PathBuf;

use crate::args::{BadValue, range, range_of};
use crate::aws::Clients;
use crate::error::Error;
use crate::process::DEFAULT_WRITE_CONCURRENCY;
use crate::schema::Schema;
use crate::stack;
use crate::synthetic::{Events, Kind};
use crate::template::{self, param};
use model::{Architecture, Inputs};
pub use model::{Plan, plan};

/// `stream plan`
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Records per second the producers will put (any number above 0)
    #[arg(long, value_name = "RECORDS_PER_S", value_parser = above_zero)]
    pub rate: f64,

    /// Bytes per record (1-1048576; default: the mean of --sample, or of the schema's synthetic events)
    #[arg(long, value_name = "N", value_parser = range_of::<u64>(1, 1_048_576, "a Kinesis record's limit"))]
    pub record_bytes: Option<u64>,

    /// JSON-lines file of your events: record and item sizes are their means, through the schema
    #[arg(long, value_name = "FILE.jsonl")]
    pub sample: Option<PathBuf>,

    /// Price the plan with KPL aggregation (`stream produce --aggregate`)
    #[arg(long)]
    pub aggregate: bool,

    /// Batches of one shard processed at once (1-10; default: the stack's)
    #[arg(long, value_name = "N", value_parser = range::<u32>(1, 10))]
    pub parallelization: Option<u32>,

    /// Function memory in MB (128-10240; default: the stack's)
    #[arg(long, value_name = "MB", value_parser = range::<u32>(128, 10_240))]
    pub memory: Option<u32>,

    /// Records per function invocation (1-10000; default: the stack's)
    #[arg(long, value_name = "N", value_parser = range::<u32>(1, 10_000))]
    pub batch_size: Option<u32>,

    /// Function CPU µs per record (default: 20, from scripts/bench)
    ///
    /// The function's own work per record; the wait for DynamoDB is added from --write-latency-ms.
    #[arg(long, value_name = "MICROSECONDS", value_parser = above_zero)]
    pub duration_us_per_record: Option<f64>,

    /// Milliseconds per DynamoDB write call (default: 5)
    ///
    /// Request sent to answer received, as the function sees it. An invocation waits one latency
    /// per round of write calls in flight; AWS quotes DynamoDB at single-digit milliseconds.
    #[arg(long, value_name = "MS", value_parser = latency_ms, allow_negative_numbers = true)]
    pub write_latency_ms: Option<f64>,

    /// Price the stream in on-demand capacity mode (default: the stack's mode)
    #[arg(long)]
    pub on_demand: bool,
}

/// A parser for a number above 0 (`--rate 0.5`, `--duration-us-per-record 20`).
fn above_zero(s: &str) -> Result<f64, BadValue> {
    let refuse = |value: String, what: &str| BadValue {
        value,
        what: what.into(),
        hint: "give {flag} a number above 0, like 500 or 0.5".into(),
    };
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err(refuse(s.to_string(), "is not above 0")),
        Err(_) => Err(refuse(format!("{s:?}"), "is not a number")),
    }
}

/// A parser for a latency in milliseconds: 0 (no wait) up to 60,000 (a call that slow is an outage,
/// not a latency).
fn latency_ms(s: &str) -> Result<f64, BadValue> {
    let refuse = |value: String, what: &str| BadValue {
        value,
        what: what.into(),
        hint: "give {flag} the milliseconds a call takes, from 0 to 60000, like 5 (DynamoDB's single-digit figure)"
            .into(),
    };
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=MAX_WRITE_LATENCY_MS).contains(&x) => Ok(x),
        Ok(x) if x < 0.0 => Err(refuse(s.to_string(), "is below 0")),
        Ok(x) if x.is_nan() => Err(refuse(format!("{s:?}"), "is not a number")),
        Ok(_) => Err(refuse(s.to_string(), "is out of range")),
        Err(_) => Err(refuse(format!("{s:?}"), "is not a number")),
    }
}

/// The largest --write-latency-ms taken: a minute.
const MAX_WRITE_LATENCY_MS: f64 = 60_000.0;

// ---- Defaults of the flags ----

/// Mean bytes of the tweets `stream produce` makes (`Synthetic`, seed 1, 1,000 tweets, compact
/// JSON), measured once; a test keeps it within 10% of the generator's current mean.
pub const DEFAULT_RECORD_BYTES: u64 = 456;
/// Function CPU time per record, in microseconds: a conservative round figure above the handler's
/// CPU per record that `scripts/bench` prints (release build, in memory). It is CPU time, not the
/// wait for DynamoDB, which `DEFAULT_WRITE_LATENCY_MS` adds.
pub const DEFAULT_DURATION_US_PER_RECORD: f64 = 20.0;
/// DynamoDB's time per write call, in milliseconds: AWS quotes "single-digit millisecond
/// performance at any scale"; 5 is the middle of that range.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Introduction.html>
pub const DEFAULT_WRITE_LATENCY_MS: f64 = 5.0;

// ---- Defaults from the stack ----

/// The stack's settings that shape the plan.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    parallelization: u32,
    memory_mb: u32,
    batch_size: u32,
    batching_window_s: u32,
    on_demand: bool,
    architecture: Architecture,
    from: String,
}

/// Reads the settings through `value`: a parameter's value (the stack's, else the template's
/// default). `from` says which, for the output.
fn settings(value: impl Fn(&str) -> Option<String>, from: String) -> Result<Settings, Error> {
    let number = |name: &str| -> Result<u32, Error> {
        let text = value(name).ok_or_else(|| {
            Error::failed(format!("the template has no default for parameter {name}"), "report this as a bug")
        })?;
        text.trim().parse().map_err(|_| {
            Error::failed(
                format!("parameter {name} of {from} is {text:?}, not a whole number"),
                "give the value as a flag (see `stream plan --help`), or deploy again",
            )
        })
    };
    Ok(Settings {
        parallelization: number(param::PARALLELIZATION)?,
        memory_mb: number(param::MEMORY)?,
        batch_size: number(param::BATCH_SIZE)?,
        batching_window_s: number(param::BATCHING_WINDOW)?,
        on_demand: value(param::STREAM_MODE).as_deref() == Some("ON_DEMAND"),
        architecture: Architecture::from_param(value(param::ARCHITECTURE).as_deref().unwrap_or_default()),
        from,
    })
}

/// Mean sizes of a record on the stream and of the item the schema makes of it.
#[derive(Debug, Clone, PartialEq)]
struct Sizes {
    record_bytes: u64,
    item_bytes: u64,
    from: String,
}

/// Events synthetic sizes are measured on (seed 1).
const SYNTHETIC_SAMPLE: usize = 1_000;

/// The sizes: of `--sample`'s lines the schema takes, else of the schema's synthetic events (for
/// tweets DEFAULT_RECORD_BYTES, that mean measured once), else of the tweets'; `--record-bytes`
/// beats the record's.
fn sizes(args: &PlanArgs, schema: &Schema) -> Result<Sizes, Error> {
    let (events, from): (Vec<Vec<u8>>, String) = match &args.sample {
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| {
                Error::usage(
                    format!("cannot read sample {}: {e}", path.display()),
                    "give --sample a JSON-lines file of events",
                )
            })?;
            let lines: Vec<Vec<u8>> =
                text.split(|b| *b == b'\n').map(|l| l.trim_ascii().to_vec()).filter(|l| !l.is_empty()).collect();
            (lines, format!("sample {}", path.display()))
        }
        None => {
            let kind = Kind::for_schema(schema.name()).unwrap_or(Kind::Tweets);
            let events = Events::new(kind, Some(1)).take(SYNTHETIC_SAMPLE).collect();
            (events, format!("{SYNTHETIC_SAMPLE} synthetic {} events", kind.name()))
        }
    };
    let items: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|e| schema.item(e).ok().map(|i| (e.len(), i.size(schema.attribute_names()))))
        .collect();
    if items.is_empty() {
        return Err(Error::usage(
            format!("no event of the {from} fits schema \"{}\"", schema.name()),
            "give --sample a JSON-lines file of events the stack's schema takes (`stream schema check --sample` says why not)",
        ));
    }
    let mean = |f: fn(&(usize, usize)) -> usize| {
        (items.iter().map(f).sum::<usize>() as f64 / items.len() as f64).round() as u64
    };
    let record = match (args.sample.is_none() && schema.name() == crate::schema::DEFAULT, args.record_bytes) {
        (_, Some(b)) => b,
        (true, None) => DEFAULT_RECORD_BYTES,
        (false, None) => mean(|x| x.0),
    };
    let refused = events.len() - items.len();
    let from = if refused > 0 { format!("{from}, {refused} of {} refused by the schema", events.len()) } else { from };
    Ok(Sizes { record_bytes: record, item_bytes: mean(|x| x.1), from })
}

/// The inputs: flags first, then the settings; the writes as the handler makes them for `schema`
/// (its write concurrency is the handler's own default, read, not copied).
fn inputs(args: &PlanArgs, settings: Settings, sizes: Sizes, schema: &Schema) -> Inputs {
    Inputs {
        rate: args.rate,
        record_bytes: sizes.record_bytes,
        item_bytes: sizes.item_bytes,
        sizes_from: sizes.from,
        aggregate: args.aggregate,
        on_demand: args.on_demand || settings.on_demand,
        parallelization: args.parallelization.unwrap_or(settings.parallelization),
        batch_size: args.batch_size.unwrap_or(settings.batch_size),
        batching_window_s: settings.batching_window_s,
        memory_mb: args.memory.unwrap_or(settings.memory_mb),
        architecture: settings.architecture,
        duration_us_per_record: args.duration_us_per_record.unwrap_or(DEFAULT_DURATION_US_PER_RECORD),
        write_latency_ms: args.write_latency_ms.unwrap_or(DEFAULT_WRITE_LATENCY_MS),
        write_concurrency: u32::try_from(DEFAULT_WRITE_CONCURRENCY).unwrap_or(u32::MAX),
        ordered: schema.version().is_some(),
        settings_from: settings.from,
    }
}

/// Runs `stream plan`: the stack's settings (one DescribeStacks), or the template's defaults when
/// the stack does not exist or AWS is not set up here (`clients` is None), overridden by the
/// flags; then the arithmetic.
pub async fn run(args: &PlanArgs, stack_name: &str, clients: Option<&Clients>) -> Result<Plan, Error> {
    let deployed = match clients {
        Some(clients) => stack::find(clients, stack_name).await?,
        None => None,
    };
    let defaults = template::parameter_defaults();
    let value = |name: &str| -> Option<String> {
        deployed
            .as_ref()
            .and_then(|s| stack::parameter(s, name))
            .map(str::to_string)
            .or_else(|| defaults.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    };
    let from = match (deployed.is_some(), clients.is_some()) {
        (true, _) => format!("stack \"{stack_name}\""),
        (false, true) => format!("the template's defaults (stack \"{stack_name}\" does not exist)"),
        (false, false) => "the template's defaults (AWS is not set up here)".to_string(),
    };
    let settings = settings(value, from)?;
    // The stack's schema shapes the items; without a stack, the default one.
    let deployed_schema = match (clients, &deployed) {
        (Some(clients), Some(stack)) => Some(stack::schema(clients, stack).await?.schema),
        _ => None,
    };
    let schema = deployed_schema.as_deref().unwrap_or(Schema::tweets());
    let sizes = sizes(args, schema)?;
    Ok(plan(&inputs(args, settings, sizes, schema)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        plan: PlanArgs,
    }

    fn refused(args: &[&str]) -> (String, String) {
        let err = Cmd::try_parse_from(args).expect_err("refused");
        let bad = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<BadValue>()).expect("ours");
        bad.lines("--rate")
    }

    /// --rate takes any number above 0 and names what is wrong with the rest.
    #[test]
    fn rate_must_be_above_zero() {
        assert_eq!(Cmd::try_parse_from(["x", "--rate", "0.5"]).expect("ok").plan.rate, 0.5);
        for bad in ["0", "-1", "inf", "NaN"] {
            let (what, hint) = refused(&["x", &format!("--rate={bad}")]);
            assert_eq!(what, format!("--rate {bad} is not above 0"));
            assert_eq!(hint, "give --rate a number above 0, like 500 or 0.5");
        }
        assert_eq!(refused(&["x", "--rate", "fast"]).0, "--rate \"fast\" is not a number");
        assert!(Cmd::try_parse_from(["x", "--rate", "1", "--record-bytes", "1048577"]).is_err());
        assert!(Cmd::try_parse_from(["x"]).is_err(), "--rate is required");
    }

    /// --write-latency-ms takes 0 to 60,000 ms (a negative value given as its own word, too) and
    /// names what is wrong with the rest; without it the plan assumes DynamoDB's 5 ms.
    #[test]
    fn write_latency_is_a_number_of_milliseconds_from_zero() {
        let parse = |v: &str| Cmd::try_parse_from(["x", "--rate", "1", "--write-latency-ms", v]).map(|c| c.plan);
        assert_eq!(parse("0").expect("ok").write_latency_ms, Some(0.0));
        assert_eq!(parse("7.5").expect("ok").write_latency_ms, Some(7.5));
        let hint = "give --write-latency-ms the milliseconds a call takes, from 0 to 60000, like 5 (DynamoDB's single-digit figure)";
        for (bad, what) in [
            ("-1", "--write-latency-ms -1 is below 0"),
            ("-0.5", "--write-latency-ms -0.5 is below 0"),
            ("60001", "--write-latency-ms 60001 is out of range"),
            ("inf", "--write-latency-ms inf is out of range"),
            ("NaN", "--write-latency-ms \"NaN\" is not a number"),
            ("fast", "--write-latency-ms \"fast\" is not a number"),
        ] {
            let err = parse(bad).expect_err("refused");
            let ours = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<BadValue>()).expect("ours");
            assert_eq!(ours.lines("--write-latency-ms"), (what.to_string(), hint.to_string()), "{bad}");
        }
        let args = Cmd::try_parse_from(["x", "--rate", "1"]).expect("ok").plan;
        let defaults = template::parameter_defaults();
        let from_template =
            settings(|n| defaults.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()), "t".into()).expect("settings");
        let i = inputs(&args, from_template, sizes(&args, Schema::tweets()).expect("sizes"), Schema::tweets());
        assert_eq!(i.write_latency_ms, DEFAULT_WRITE_LATENCY_MS);
    }

    /// The plan writes as the handler does: its default write concurrency, and conditional puts
    /// for a schema with a version.
    #[test]
    fn writes_are_modelled_as_the_handler_makes_them() {
        let defaults = template::parameter_defaults();
        let from_template = || {
            settings(|n| defaults.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()), "t".into()).expect("settings")
        };
        let args = Cmd::try_parse_from(["x", "--rate", "1", "--write-latency-ms", "9"]).expect("ok").plan;
        let tweets = inputs(&args, from_template(), sizes(&args, Schema::tweets()).expect("sizes"), Schema::tweets());
        assert_eq!(tweets.write_concurrency as usize, DEFAULT_WRITE_CONCURRENCY);
        assert_eq!(tweets.write_concurrency as usize, crate::process::Options::within(Duration::ZERO).concurrency);
        assert!(!tweets.ordered && tweets.write_latency_ms == 9.0);
        let orders = Schema::built_in("orders").expect("built in");
        let ordered = inputs(&args, from_template(), sizes(&args, orders).expect("sizes"), orders);
        assert!(ordered.ordered);
        assert_eq!(plan(&ordered).lambda.billed_duration.write_call, "PutItem");
    }

    /// Flags beat the stack's parameters; the template's defaults fill in when there is no stack.
    #[test]
    fn defaults_come_from_the_stack_then_the_template() {
        let defaults = template::parameter_defaults();
        let from_template = settings(
            |n| defaults.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()),
            "the template's defaults".into(),
        )
        .expect("template defaults");
        assert_eq!(
            (from_template.parallelization, from_template.memory_mb, from_template.batch_size, from_template.on_demand),
            (1, 256, 100, false)
        );
        let stack = |n: &str| match n {
            param::PARALLELIZATION => Some("3".to_string()),
            param::MEMORY => Some("512".into()),
            param::BATCH_SIZE => Some("500".into()),
            param::BATCHING_WINDOW => Some("5".into()),
            param::STREAM_MODE => Some("ON_DEMAND".into()),
            param::ARCHITECTURE => Some("arm64".into()),
            _ => None,
        };
        let deployed = settings(stack, "stack \"s\"".into()).expect("stack");
        let args = Cmd::try_parse_from(["x", "--rate", "10", "--memory", "1024"]).expect("ok").plan;
        let i = inputs(&args, deployed, sizes(&args, Schema::tweets()).expect("sizes"), Schema::tweets());
        assert_eq!((i.parallelization, i.memory_mb, i.batch_size, i.batching_window_s), (3, 1024, 500, 5));
        assert!(i.on_demand && i.architecture == Architecture::Arm64);
        assert_eq!((i.record_bytes, i.duration_us_per_record), (DEFAULT_RECORD_BYTES, DEFAULT_DURATION_US_PER_RECORD));
        let broken = settings(|_| Some("many".to_string()), "stack \"s\"".into()).expect_err("not a number");
        assert!(broken.to_string().contains("not a whole number"), "{broken}");
    }

    /// Sizes come from a sample through the schema, else from the schema's synthetic events; lines
    /// the schema refuses are left out and counted; none that fit is refused.
    #[test]
    fn sizes_come_from_a_sample_or_the_schemas_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sample = dir.path().join("s.jsonl");
        let line = r#"{"order_id":"o-1","version":1,"status":"paid","updated_at":"2025-01-01T00:00:00Z"}"#;
        std::fs::write(&sample, format!("{line}\nnot json\n{line}\n")).expect("write");
        let orders = Schema::built_in("orders").expect("built in");
        let args =
            Cmd::try_parse_from(["x", "--rate", "1", "--sample", sample.to_str().expect("utf8")]).expect("ok").plan;
        let s = sizes(&args, orders).expect("sizes");
        assert_eq!(s.record_bytes, line.len() as u64);
        let item = orders.item(line.as_bytes()).expect("item").size(orders.attribute_names());
        assert_eq!(s.item_bytes, item as u64);
        assert!(s.from.ends_with("1 of 3 refused by the schema"), "{}", s.from);
        let iot =
            sizes(&Cmd::try_parse_from(["x", "--rate", "1"]).expect("ok").plan, Schema::built_in("iot").expect("iot"))
                .expect("sizes");
        assert!((230..350).contains(&iot.record_bytes) && iot.from == "1000 synthetic iot events", "{iot:?}");
        let tweets =
            sizes(&Cmd::try_parse_from(["x", "--rate", "1"]).expect("ok").plan, Schema::tweets()).expect("sizes");
        assert_eq!(tweets.record_bytes, DEFAULT_RECORD_BYTES);
        let bad = sizes(&args, Schema::tweets()).expect_err("no tweet in the sample");
        assert_eq!(bad.exit_code(), 2);
    }

    /// DEFAULT_RECORD_BYTES stays within 10% of the mean size of the tweets `stream produce` makes.
    #[test]
    fn default_record_size_matches_the_synthetic_tweets() {
        let n = 1_000;
        let total: usize = crate::produce::source::Synthetic::new(Some(1)).take(n).map(|t| t.to_bytes().len()).sum();
        let mean = total as f64 / n as f64;
        let off = (DEFAULT_RECORD_BYTES as f64 - mean).abs() / mean;
        assert!(off <= 0.10, "DEFAULT_RECORD_BYTES {DEFAULT_RECORD_BYTES} vs the generator's mean {mean:.0}");
    }
}
