//! The Runtime API a bootstrap talks to, answered as Lambda's runtime interface emulator answers
//! it: `next` hands out one invocation with Lambda's headers; `response` and `error` end it (202);
//! `init/error` reports a failed init; an unknown request id is 400 `InvalidRequestID`, a call
//! the runtime's state does not allow (a second response, `init/error` after `next`) is 403
//! `InvalidStateTransition`, a response over 6,291,556 bytes is 413 `RequestEntityTooLarge`.
//! What happens reaches the invoker as `Event`s; deadlines and processes are the invoker's.
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

use super::Outcome;

/// Lambda refuses synchronous responses larger than this: 6 MiB and 100 bytes (the emulator's
/// `MaxPayloadSize`).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;

/// The path every call starts with.
pub const API_PREFIX: &str = "/2018-06-01/runtime";

/// What the runtime did, for the invoker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The runtime asked for its first invocation: its init is over.
    InitDone,
    /// The runtime reported that its init failed (type: message).
    InitError(String),
    /// The invocation with this request id was answered.
    Answered { id: String, outcome: Outcome },
}

/// An invocation waiting for the runtime's `next`.
#[derive(Debug)]
pub struct Pending {
    /// Request id.
    pub id: String,
    /// The event.
    pub body: Bytes,
    /// When the invocation times out: Lambda-Runtime-Deadline-Ms.
    pub deadline: SystemTime,
}

/// Where the runtime is, named as the emulator names its states in its error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Started, init not over.
    Started,
    /// Waiting for an invocation.
    Ready,
    /// Working on an invocation.
    Running(String),
    /// Answered an invocation, not yet back for the next.
    Answered(String),
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Started => "Started",
            Phase::Ready => "Ready",
            Phase::Running(_) => "Running",
            Phase::Answered(_) => "RuntimeResponseSentState",
        }
    }
}

struct State {
    phase: Phase,
    pending: Option<Pending>,
}

/// One environment's Runtime API.
pub struct Api {
    state: Mutex<State>,
    ready: Notify,
    events: mpsc::UnboundedSender<Event>,
    function_arn: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock would be a bug in this file; the data stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Api {
    /// A Runtime API for the function `function_arn`, and where its events arrive.
    pub fn new(function_arn: String) -> (Arc<Api>, mpsc::UnboundedReceiver<Event>) {
        let (events, rx) = mpsc::unbounded_channel();
        let state = Mutex::new(State { phase: Phase::Started, pending: None });
        (Arc::new(Api { state, ready: Notify::new(), events, function_arn }), rx)
    }

    /// A new process starts: its init begins, nothing is pending.
    pub fn reset(&self) {
        let mut st = lock(&self.state);
        st.phase = Phase::Started;
        st.pending = None;
    }

    /// Offers an invocation to the runtime's next `next`.
    pub fn offer(&self, pending: Pending) {
        lock(&self.state).pending = Some(pending);
        self.ready.notify_one();
    }

    /// Serves the API on `listener` until the task is aborted.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        while let Ok((stream, _)) = listener.accept().await {
            let api = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, std::convert::Infallible>(api.route(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    fn send(&self, event: Event) {
        // The invoker may be gone (the run is stopping): nobody to tell.
        let _ = self.events.send(event);
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let Some(rest) = path.strip_prefix(API_PREFIX) else {
            return reply(StatusCode::NOT_FOUND, "unknown path");
        };
        if req.method() == hyper::Method::GET && rest == "/invocation/next" {
            return self.next().await;
        }
        if req.method() != hyper::Method::POST {
            return reply(StatusCode::METHOD_NOT_ALLOWED, "");
        }
        let error_type = req.headers().get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok());
        let error_type = valid_error_type(error_type);
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return reply(StatusCode::BAD_REQUEST, "unreadable body"),
        };
        if rest == "/init/error" {
            return self.init_error(&error_type, &body);
        }
        match rest.strip_prefix("/invocation/").and_then(|r| r.split_once('/')) {
            Some((id, "response")) => self.answer(id, "InvocationResponse", response_outcome(body)),
            Some((id, "error")) => {
                let outcome = Outcome::Error { error_type, message: error_message(&body) };
                self.answer(id, "InvocationErrorResponse", (StatusCode::ACCEPTED, outcome))
            }
            _ => reply(StatusCode::NOT_FOUND, "unknown path"),
        }
    }

    /// `GET next`: ends init (the first time), waits for an invocation and hands it out.
    async fn next(&self) -> Response<Full<Bytes>> {
        {
            let mut st = lock(&self.state);
            match &st.phase {
                Phase::Running(_) => return transition_refused(&st.phase, "Ready"),
                Phase::Started => self.send(Event::InitDone),
                Phase::Ready | Phase::Answered(_) => {}
            }
            st.phase = Phase::Ready;
        }
        let pending = loop {
            // Notify keeps a permit when nobody waits: an offer made before this wait is not lost.
            let taken = {
                let mut st = lock(&self.state);
                let p = st.pending.take();
                if let Some(p) = &p {
                    st.phase = Phase::Running(p.id.clone());
                }
                p
            };
            if let Some(p) = taken {
                break p;
            }
            self.ready.notified().await;
        };
        let deadline_ms = pending.deadline.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut r = reply(StatusCode::OK, pending.body);
        let h = r.headers_mut();
        for (k, v) in [
            ("lambda-runtime-aws-request-id", pending.id.clone()),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            ("lambda-runtime-invoked-function-arn", self.function_arn.clone()),
            ("lambda-runtime-trace-id", trace_id(deadline_ms / 1000)),
            ("content-type", "application/json".to_string()),
        ] {
            if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        r
    }

    /// `POST init/error`: allowed only while the runtime initializes.
    fn init_error(&self, error_type: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let st = lock(&self.state);
        if st.phase != Phase::Started {
            return transition_refused(&st.phase, "InitError");
        }
        let message = error_message(body);
        self.send(Event::InitError(if message.is_empty() {
            error_type.to_string()
        } else {
            format!("{error_type}: {message}")
        }));
        reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
    }

    /// `POST invocation/{id}/response|error`: ends the invocation the runtime is working on.
    fn answer(&self, id: &str, to: &str, (status, outcome): (StatusCode, Outcome)) -> Response<Full<Bytes>> {
        let mut st = lock(&self.state);
        match &st.phase {
            Phase::Running(current) if current == id => {}
            // The emulator checks the state first: answering twice is a refused transition.
            Phase::Answered(last) if last == id => return transition_refused(&st.phase, to),
            Phase::Running(_) | Phase::Answered(_) => return invalid_request_id(),
            Phase::Started | Phase::Ready => return transition_refused(&st.phase, to),
        }
        st.phase = Phase::Answered(id.to_string());
        self.send(Event::Answered { id: id.to_string(), outcome });
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            let body = format!(
                r#"{{"errorMessage":"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).","errorType":"RequestEntityTooLarge"}}"#
            );
            return reply(status, body);
        }
        reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
    }
}

/// A response body as the invocation's outcome: over the limit, the invocation fails with
/// `Function.ResponseSizeTooLarge` and the runtime gets a 413.
fn response_outcome(body: Bytes) -> (StatusCode, Outcome) {
    if body.len() > MAX_RESPONSE_BYTES {
        let message = format!(
            "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
            body.len()
        );
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::Error { error_type: "Function.ResponseSizeTooLarge".into(), message },
        );
    }
    (StatusCode::ACCEPTED, Outcome::Response(body))
}

/// The error type Lambda reports: the `Lambda-Runtime-Function-Error-Type` header when it has the
/// form `Runtime.Xxx` or `Function.Xxx`; `Function.Unknown` for other `Function.` types;
/// `Runtime.Unknown` otherwise (a missing header included).
pub fn valid_error_type(header: Option<&str>) -> String {
    let well_formed = |rest: &str| {
        let mut chars = rest.chars();
        chars.next().is_some_and(|c| c.is_ascii_uppercase()) && rest.len() > 1 && chars.all(|c| c.is_ascii_alphabetic())
    };
    match header {
        Some(h) if h.strip_prefix("Runtime.").or_else(|| h.strip_prefix("Function.")).is_some_and(well_formed) => {
            h.to_string()
        }
        Some(h) if h.starts_with("Function.") => "Function.Unknown".into(),
        _ => "Runtime.Unknown".into(),
    }
}

/// The `errorMessage` of an error body (JSON), or the body as text.
fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => v["errorMessage"].as_str().unwrap_or_default().to_string(),
        Err(_) => String::from_utf8_lossy(body).chars().take(1024).collect(),
    }
}

/// An X-Ray trace header as Lambda sends it: `Root=1-<epoch seconds, 8 hex>-<24 hex>;Parent=<16
/// hex>;Sampled=0` (nothing is sampled here: there is no X-Ray daemon).
pub fn trace_id(epoch_secs: u64) -> String {
    let root = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{epoch_secs:08x}-{};Parent={};Sampled=0", &root[..24], &parent[..16])
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn invalid_request_id() -> Response<Full<Bytes>> {
    reply(StatusCode::BAD_REQUEST, r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#)
}

fn transition_refused(from: &Phase, to: &str) -> Response<Full<Bytes>> {
    let message = format!(
        "State transition from {} to {to} failed for runtime. Error: State transition is not allowed",
        from.name()
    );
    let body = serde_json::json!({"errorMessage": message, "errorType": "InvalidStateTransition"}).to_string();
    reply(StatusCode::FORBIDDEN, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_taken_from_the_header_when_well_formed() {
        assert_eq!(valid_error_type(Some("Runtime.ConfigError")), "Runtime.ConfigError");
        assert_eq!(valid_error_type(Some("Function.MyError")), "Function.MyError");
        assert_eq!(valid_error_type(Some("Function.bad")), "Function.Unknown");
        assert_eq!(valid_error_type(Some("Function.")), "Function.Unknown");
        assert_eq!(valid_error_type(Some("unhandled")), "Runtime.Unknown", "what lambda_runtime sends");
        assert_eq!(valid_error_type(Some("Runtime.Bad-Name")), "Runtime.Unknown");
        assert_eq!(valid_error_type(None), "Runtime.Unknown");
    }

    #[test]
    fn trace_ids_have_lambdas_form() {
        let t = trace_id(0x5bef4de7);
        let parts: Vec<&str> = t.split(';').collect();
        assert_eq!(parts.len(), 3, "{t}");
        let root = parts[0].strip_prefix("Root=1-").expect("root");
        let (epoch, rest) = root.split_once('-').expect("epoch and id");
        assert_eq!(epoch, "5bef4de7");
        assert!(rest.len() == 24 && rest.chars().all(|c| c.is_ascii_hexdigit()), "{t}");
        let parent = parts[1].strip_prefix("Parent=").expect("parent");
        assert!(parent.len() == 16 && parent.chars().all(|c| c.is_ascii_hexdigit()), "{t}");
        assert_eq!(parts[2], "Sampled=0");
    }

    #[test]
    fn responses_over_the_limit_fail_the_invocation() {
        let (status, outcome) = response_outcome(Bytes::from(vec![b'x'; MAX_RESPONSE_BYTES]));
        assert_eq!(
            (status, matches!(outcome, Outcome::Response(_))),
            (StatusCode::ACCEPTED, true),
            "the limit itself is allowed"
        );
        let (status, outcome) = response_outcome(Bytes::from(vec![b'x'; MAX_RESPONSE_BYTES + 1]));
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(matches!(outcome, Outcome::Error { error_type, .. } if error_type == "Function.ResponseSizeTooLarge"));
        assert_eq!(MAX_RESPONSE_BYTES, 6_291_556);
    }
}
