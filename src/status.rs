//! `stream status`: what an operator checks first — the stack's status and outputs, its event
//! schema, the event source mapping's state and last processing result, the items in the table and
//! in quarantine, and, where
//! CloudWatch answers, the last hour's iterator age, errors and invocations of the function, and
//! where its dashboard is (the URL comes from `stack`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use clap::Args;
use serde::Serialize;

use crate::aws::Clients;
use crate::error::Error;
use crate::stack::{self, Dashboard, Outputs};

/// `stream status`
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {}

/// The event source mapping, as Lambda reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Mapping {
    /// Mapping id.
    pub uuid: String,
    /// Enabled, Disabled, Creating, Updating…
    pub state: String,
    /// "OK", "PROBLEM: …", or "No records processed".
    pub last_processing_result: Option<String>,
    /// Records per invocation.
    pub batch_size: Option<i32>,
}

/// The function's last hour in CloudWatch.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LastHour {
    /// Highest IteratorAge (ms): how far behind the stream the function is.
    pub iterator_age_max_ms: Option<f64>,
    /// Function errors.
    pub errors: Option<f64>,
    /// Invocations.
    pub invocations: Option<f64>,
}

/// The event schema the function runs.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaStatus {
    /// Its name.
    pub name: String,
    /// Where it is kept.
    pub origin: String,
    /// Keys, contents, time, TTL, ordering and Kinesis key, in words.
    pub summary: Vec<(String, String)>,
}

/// The result of `stream status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusOutput {
    /// Stack name.
    pub stack: String,
    /// CloudFormation status.
    pub stack_status: String,
    /// The event schema.
    pub schema: SchemaStatus,
    /// The function's instruction set: x86_64 or arm64 (Graviton).
    pub architecture: String,
    /// The stack's resources.
    pub outputs: Outputs,
    /// The stack's CloudWatch dashboard; `None` for a stack deployed before it existed.
    pub dashboard: Option<Dashboard>,
    /// The stack's parameters.
    pub parameters: BTreeMap<String, String>,
    /// The stack's tags (`stream`'s own `managed-by` included), propagated to its resources.
    pub tags: BTreeMap<String, String>,
    /// The CloudFormation service role the stack is operated with (`deploy --role-arn`), if any.
    pub role_arn: Option<String>,
    /// The event source mapping.
    pub mapping: Option<Mapping>,
    /// Items in the table (DynamoDB's ItemCount: refreshed about every six hours in AWS).
    pub items: Option<i64>,
    /// Items in the quarantine table (same caveat).
    pub quarantined: Option<i64>,
    /// CloudWatch figures, or `None` when CloudWatch did not answer.
    pub last_hour: Option<LastHour>,
}

fn show(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".to_string(), |v| format!("{v:.0}"))
}

impl fmt::Display for StatusOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "stack {}: {}", self.stack, self.stack_status)?;
        let o = &self.outputs;
        for (k, v) in [
            ("StreamName", &o.stream_name),
            ("TableName", &o.table_name),
            ("RejectedTableName", &o.rejected_table),
            ("FunctionName", &o.function_name),
            ("Architecture", &self.architecture),
            ("Region", &o.region),
            ("ProducerUserName", &o.producer_user),
        ] {
            writeln!(f, "  {k:<18} {v}")?;
        }
        match &self.dashboard {
            Some(d) => writeln!(f, "  {:<18} {}", "Dashboard", d.url)?,
            None => {
                writeln!(f, "  {:<18} none yet: run `stream deploy --stack {}` to add it", "Dashboard", self.stack)?
            }
        }
        writeln!(f, "schema {} ({})", self.schema.name, self.schema.origin)?;
        for (k, v) in &self.schema.summary {
            writeln!(f, "  {k:<18} {v}")?;
        }
        if !self.parameters.is_empty() {
            let shown: Vec<String> = self
                .parameters
                .iter()
                .filter(|(k, _)| !k.starts_with("Code"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            writeln!(f, "  parameters         {}", shown.join(" "))?;
        }
        let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(f, "  tags               {}", tags.join(" "))?;
        if let Some(role) = &self.role_arn {
            writeln!(f, "  service role       {role}")?;
        }
        match &self.mapping {
            Some(m) => writeln!(
                f,
                "mapping {}: {} (last result: {}), batch size {}",
                m.uuid,
                m.state,
                m.last_processing_result.as_deref().unwrap_or("none yet"),
                m.batch_size.map_or("?".into(), |b| b.to_string())
            )?,
            None => writeln!(f, "mapping: none found for {}", o.function_name)?,
        }
        let count = |c: Option<i64>| c.map_or("unknown".to_string(), |c| c.to_string());
        writeln!(f, "items: {} in the table, {} in quarantine", count(self.items), count(self.quarantined))?;
        match &self.last_hour {
            Some(h) => write!(
                f,
                "last hour: iterator age max {} ms, {} errors, {} invocations",
                show(h.iterator_age_max_ms),
                show(h.errors),
                show(h.invocations)
            ),
            None => write!(f, "last hour: CloudWatch did not answer"),
        }
    }
}

async fn item_count(clients: &Clients, table: &str) -> Result<Option<i64>, Error> {
    let out = clients
        .dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| Error::aws("DescribeTable", table, e))?;
    Ok(out.table.and_then(|t| t.item_count))
}

async fn metric(clients: &Clients, function: &str, name: &str, stat: Statistic) -> Result<Option<f64>, Error> {
    let now = SystemTime::now();
    let out = clients
        .cloudwatch
        .get_metric_statistics()
        .namespace("AWS/Lambda")
        .metric_name(name)
        .dimensions(Dimension::builder().name("FunctionName").value(function).build())
        .start_time(DateTime::from(now - Duration::from_secs(3600)))
        .end_time(DateTime::from(now))
        .period(3600)
        .statistics(stat.clone())
        .send()
        .await
        .map_err(|e| Error::aws("GetMetricStatistics", function, e))?;
    let value = out
        .datapoints()
        .iter()
        .filter_map(|d| if stat == Statistic::Maximum { d.maximum } else { d.sum })
        .reduce(f64::max);
    Ok(value)
}

/// `stream status`.
pub async fn run(stack_name: &str, clients: &Clients) -> Result<StatusOutput, Error> {
    let deployed = stack::load(clients, stack_name).await?;
    let loaded = stack::schema(clients, &deployed.stack).await?;
    let schema = SchemaStatus {
        name: loaded.schema.name().to_string(),
        origin: loaded.origin.clone(),
        summary: loaded.schema.describe(),
    };
    let parameters = deployed.parameters();
    let architecture = deployed.parameter(crate::template::param::ARCHITECTURE).unwrap_or("x86_64").to_string();
    let outputs = deployed.outputs.clone();
    let dashboard = deployed.dashboard.clone();
    let mapping = stack::mapping(clients, &outputs).await?.map(|m| Mapping {
        uuid: m.uuid().unwrap_or_default().to_string(),
        state: m.state().unwrap_or("unknown").to_string(),
        last_processing_result: m.last_processing_result().map(str::to_string),
        batch_size: m.batch_size(),
    });
    let items = item_count(clients, &outputs.table_name).await?;
    let quarantined = item_count(clients, &outputs.rejected_table).await?;
    // CloudWatch is optional: an endpoint without it (or no permission) leaves the figures out.
    let f = &outputs.function_name;
    let last_hour = match (
        metric(clients, f, "IteratorAge", Statistic::Maximum).await,
        metric(clients, f, "Errors", Statistic::Sum).await,
        metric(clients, f, "Invocations", Statistic::Sum).await,
    ) {
        (Ok(iterator_age_max_ms), Ok(errors), Ok(invocations)) => {
            Some(LastHour { iterator_age_max_ms, errors, invocations })
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            tracing::info!(error = %e, "CloudWatch not reachable; leaving out the last hour");
            None
        }
    };
    Ok(StatusOutput {
        stack: stack_name.to_string(),
        stack_status: deployed.status().to_string(),
        schema,
        architecture,
        outputs,
        dashboard,
        parameters,
        tags: deployed
            .stack
            .tags()
            .iter()
            .map(|t| (t.key().unwrap_or_default().into(), t.value().unwrap_or_default().into()))
            .collect(),
        role_arn: deployed.stack.role_arn().map(str::to_string),
        mapping,
        items,
        quarantined,
        last_hour,
    })
}
