//! The Lambda bootstrap: checks its environment, reads its event schema and builds the client once,
//! then serves invocations with `handle`, logging one JSON summary line and one EMF metrics line
//! per invocation. A schema it cannot use is an init error, never a silent fallback.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{LambdaEvent, service_fn};

use super::{Batch, BatchOutcome, DEFAULT_WRITE_CONCURRENCY, DynamoStore, Options, handle, metrics};
use crate::aws::{self, AwsArgs, RetryMode};
use crate::error::Error;
use crate::schema::Schema;
use crate::template::{REJECTED_TABLE_ENV, SCHEMA_ENV, TABLE_ENV};

/// Variables the Lambda runtime requires; lambda_runtime panics without them, so check first.
const LAMBDA_VARS: [&str; 3] =
    ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION"];

/// Environment variable bounding BatchWriteItem calls in flight.
pub const CONCURRENCY_ENV: &str = "WRITE_CONCURRENCY";

/// Serves invocations until the process ends. Returns an error only when the function cannot work
/// at all (not inside Lambda, no table configured).
pub async fn run_lambda() -> Result<(), Error> {
    for var in LAMBDA_VARS {
        if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
            return Err(Error::config(
                format!("{var} is not set: this process is not running inside Lambda"),
                "run `stream` as a CLI (without AWS_LAMBDA_RUNTIME_API), or use `stream local`",
            ));
        }
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(table) = var(TABLE_ENV) else {
        let what = format!("{TABLE_ENV} is not set: the function does not know its table");
        report_init_error("Runtime.ConfigError", &what).await;
        return Err(Error::config(what, "deploy with `stream deploy`, which sets it from the stack"));
    };
    let schema = match load_schema(var(SCHEMA_ENV)) {
        Ok(s) => s,
        Err(what) => {
            report_init_error("Runtime.ConfigError", &what).await;
            return Err(Error::config(
                what,
                "deploy again with `stream deploy` (check the schema with `stream schema check`)",
            ));
        }
    };
    let rejected = var(REJECTED_TABLE_ENV);
    let concurrency = var(CONCURRENCY_ENV).and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_WRITE_CONCURRENCY);
    let function = var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    init_json_logs();
    if rejected.is_none() {
        tracing::warn!("{REJECTED_TABLE_ENV} is not set: poison records will be retried instead of quarantined");
    }
    let config = aws::load_config(&AwsArgs::default(), RetryMode::Standard).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table, rejected).for_schema(schema);
    let (store, function) = (&store, function.as_str());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Batch>| async move {
        let started = Instant::now();
        let opts = Options { deadline: deadline_instant(event.context.deadline), concurrency };
        let BatchOutcome { response, stats, fatal } = handle(&event.payload, schema, store, &opts).await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            records = stats.records,
            user_records = stats.user_records,
            written = stats.written,
            duplicates = stats.duplicates,
            superseded = stats.superseded,
            retried = stats.retries,
            quarantined = stats.quarantined,
            not_done = stats.not_done,
            duration_ms,
            "batch done"
        );
        println!("{}", metrics::emf(function, &stats, duration_ms, now_ms(), schema.version().is_some()));
        match fatal {
            // An invocation error: Lambda retries the batch (and bisects it) instead of moving on.
            Some(why) => Err(lambda_runtime::Error::from(format!("the function cannot work: {why}"))),
            None => Ok(response),
        }
    }))
    .await
    .map_err(|e| Error::failed(format!("Lambda runtime failed: {e}"), "see the function's logs"))
}

/// The event schema: the file `EVENT_SCHEMA` names in the function's code directory
/// (`LAMBDA_TASK_ROOT`; canonical JSON, or TOML by its extension), or the built-in tweets schema
/// when the variable is not set. Any problem is the init error's message.
/// Read once per process and kept for its life (hence `'static`).
fn load_schema(file: Option<String>) -> Result<&'static Schema, String> {
    let Some(file) = file else { return Ok(Schema::tweets()) };
    let root = std::env::var_os("LAMBDA_TASK_ROOT").map(std::path::PathBuf::from).unwrap_or_default();
    let path = root.join(&file);
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("{SCHEMA_ENV}: cannot read {}: {e}", path.display()))?;
    let toml = path.extension().is_some_and(|e| e == "toml");
    Schema::parse(&text, toml).map(|s| &*Box::leak(Box::new(s))).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| p.what.clone()).collect();
        format!("{SCHEMA_ENV}: {} is not a usable schema: {}", path.display(), lines.join("; "))
    })
}

/// Tells the Runtime API that initialization failed (POST /runtime/init/error), so Lambda (or
/// `stream local`) reports the reason instead of a bare exit. Best effort: the process exits anyway.
async fn report_init_error(error_type: &str, message: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else { return };
    let body = serde_json::json!({"errorType": error_type, "errorMessage": message, "stackTrace": []}).to_string();
    let request = format!(
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\n\
         Lambda-Runtime-Function-Error-Type: {error_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let send = async {
        let mut conn = tokio::net::TcpStream::connect(&api).await?;
        conn.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.map(|_| ())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), send).await;
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Converts Lambda's deadline (milliseconds since the epoch) into an `Instant`.
pub fn deadline_instant(deadline_ms: u64) -> Instant {
    let now = now_ms().max(0) as u64;
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now))
}

fn init_json_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // Lambda adds its own timestamps; CloudWatch reads one JSON object per line.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .with_writer(std::io::stdout)
        .finish()
        .with(crate::progress::log_filter("info"))
        .try_init();
}
