//! The Lambda bootstrap: checks its environment, reads its event schema and builds the client once,
//! then serves invocations with `handle`, logging one JSON summary line and one EMF metrics line
//! per invocation. The event's bytes go to `handle` as the Runtime API delivered them, parsed
//! once, the records borrowing from them. A schema it cannot use is an init error, never a silent
//! fallback.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{LambdaEvent, LambdaInvocation, Runtime, layers, service_fn};

use super::{Batch, BatchOutcome, DEFAULT_WRITE_CONCURRENCY, DynamoStore, Options, Response, event, handle, metrics};
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
    let bodies = EventBodies::default();
    let taken = bodies.clone();
    let handler = service_fn(move |event: LambdaEvent<()>| {
        let body = taken.take(&event.context.request_id);
        let opts = Options { deadline: deadline_instant(event.context.deadline), concurrency };
        serve(body, schema, store, opts, function)
    });
    // As `lambda_runtime::run` builds it, with the event's bytes taken out first.
    Runtime::new(handler)
        .layer(layers::TracingLayer::new())
        .layer(bodies)
        .run()
        .await
        .map_err(|e| Error::failed(format!("Lambda runtime failed: {e}"), "see the function's logs"))
}

/// One invocation: the event parsed from its bytes (the records borrow from them), handled, the
/// summary and metrics lines logged.
async fn serve(
    body: Bytes,
    schema: &Schema,
    store: &DynamoStore,
    opts: Options,
    function: &str,
) -> Result<Response, lambda_runtime::Error> {
    let started = Instant::now();
    // Not a Kinesis event at all: an invocation error, as lambda_runtime's own parse made it.
    // The text is checked as UTF-8 once, with SIMD, so that serde_json does not check each string.
    let text = simdutf8::basic::from_utf8(&body)
        .map_err(|_| lambda_runtime::Error::from("the event is not a Kinesis event: it is not UTF-8 text"))?;
    let batch: Batch<'_> = event::parse(text)
        .map_err(|e| lambda_runtime::Error::from(format!("the event is not a Kinesis event: {e}")))?;
    let BatchOutcome { response, stats, fatal } = handle(&batch, schema, store, &opts).await;
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
}

/// The events' bytes on their way to the handler, by request id. As a layer it takes each
/// invocation's body out before lambda_runtime deserializes it (leaving `null`, which the handler's
/// `()` reads), so `handle` gets the bytes the Runtime API delivered without a copy: a 6 MB event
/// (Lambda's limit) was held twice, as its bytes and as owned records.
#[derive(Debug, Clone, Default)]
struct EventBodies(Arc<Mutex<Vec<(String, Bytes)>>>);

impl EventBodies {
    /// The body of invocation `request_id` (empty, which is not an event, if there is none).
    fn take(&self, request_id: &str) -> Bytes {
        // A poisoned lock only means a panic elsewhere; the list itself is still whole.
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match held.iter().position(|(id, _)| id == request_id) {
            Some(i) => held.swap_remove(i).1,
            None => Bytes::new(),
        }
    }
}

impl<S> Layer<S> for EventBodies {
    type Service = TakeBody<S>;

    fn layer(&self, inner: S) -> TakeBody<S> {
        TakeBody { inner, bodies: self.clone() }
    }
}

/// The service `EventBodies` wraps around the runtime's own.
#[derive(Debug, Clone)]
struct TakeBody<S> {
    inner: S,
    bodies: EventBodies,
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for TakeBody<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> S::Future {
        let body = std::mem::replace(&mut invocation.body, Bytes::from_static(b"null"));
        let mut held = self.bodies.0.lock().unwrap_or_else(|p| p.into_inner());
        held.push((invocation.context.request_id.clone(), body));
        drop(held);
        self.inner.call(invocation)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each invocation's handler gets its own event's bytes, once; an unknown id gets none.
    #[test]
    fn the_handler_gets_the_bytes_of_its_own_invocation() {
        let bodies = EventBodies::default();
        bodies
            .0
            .lock()
            .expect("lock")
            .extend([("a".to_string(), Bytes::from_static(b"{1}")), ("b".into(), "{2}".into())]);
        assert_eq!(bodies.take("b"), "{2}");
        assert_eq!(bodies.take("b"), "", "taken once");
        assert_eq!(bodies.take("a"), "{1}");
    }
}
