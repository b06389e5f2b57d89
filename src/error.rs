//! The one error type: what went wrong (Display), what to do (`hint`), the exit code, and whether a
//! failed AWS call is worth repeating (`disposition`, the one place that decides it). SDK errors are
//! converted where the call is made (`Error::aws`), naming the operation and resource; `report`
//! prints the two lines users see. The bottom layer: it imports nothing from the crate.

use std::fmt;

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::ProvideErrorKind;

/// Exit codes, listed in `stream --help`.
pub mod exit {
    /// The command did what was asked.
    pub const OK: i32 = 0;
    /// The operation failed.
    pub const FAILED: i32 = 1;
    /// Bad usage or configuration (clap's own code for syntax errors).
    pub const USAGE: i32 = 2;
    /// Finished, but some records were rejected after retries.
    pub const PARTIAL: i32 = 3;
    /// Interrupted (Ctrl-C).
    pub const INTERRUPTED: i32 = 130;
}

/// Text for the `after_help` of `stream --help`.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 success · 1 operation failed · 2 usage or configuration error · \
3 partial: finished, but some records were rejected after retries · 130 interrupted";

/// What to do when no credentials are found.
pub const CREDENTIALS_HINT: &str = "configure credentials: `aws configure`, `aws sso login`, --profile NAME, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY";

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, name or file the user gave is wrong; nothing was called.
    #[error("{what}")]
    Usage { what: String, hint: String },

    /// Several things the user gave are wrong (a schema file's problems); nothing was called.
    /// Each is printed as its own two lines; the first is the error's text.
    #[error("{}", problems.first().map_or("", |p| p.0.as_str()))]
    Problems { problems: Vec<(String, String)> },

    /// The environment is not set up (credentials, region, Lambda variables).
    #[error("{what}")]
    Config { what: String, hint: String },

    /// The stack does not exist.
    #[error("stack \"{stack}\" does not exist")]
    StackNotFound { stack: String },

    /// The stack is in a state this command cannot work from (`stack` decides the hint).
    #[error("stack \"{stack}\" is in {status} and cannot be {action}")]
    StackState { stack: String, status: String, action: &'static str, hint: String },

    /// The stack exists but `stream deploy` did not create it: `stream` leaves it alone.
    #[error("stack \"{stack}\" exists and was not created by stream")]
    NotManaged { stack: String },

    /// A stack operation finished in a failed state.
    #[error("{what}")]
    StackFailed { what: String, hint: String },

    /// An AWS call failed. `code` is the service's error code, when it sent one; `retryable` is
    /// what the SDK's own classifiers say of it (a throttling or transient code, a 5xx, a modeled
    /// retryable error, a timeout or an unreachable endpoint).
    #[error("{op} on {resource}: {message}")]
    Aws {
        op: &'static str,
        resource: String,
        message: String,
        kind: AwsFailure,
        code: Option<String>,
        retryable: bool,
        detail: String,
    },

    /// A local file or stream could not be read or written.
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },

    /// The command finished but some records did not make it.
    #[error("{what}")]
    Partial { what: String, hint: String },

    /// Any other failure of the operation, with what to do about it.
    #[error("{what}")]
    Failed { what: String, hint: String },

    /// The user pressed Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

/// Why an AWS call failed, as far as the hint cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsFailure {
    /// No credentials could be loaded.
    Credentials,
    /// The endpoint could not be reached (DNS, refused, TLS).
    Unreachable,
    /// The call timed out.
    Timeout,
    /// The service answered with an error.
    Service,
    /// Anything else (could not build the request, bad response).
    Other,
}

/// What to do after a failed AWS call: decided once, here, for every caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Throttling, 5xx, timeouts, an unreachable endpoint: the same call may succeed later.
    Transient,
    /// The request itself was refused (validation): the same request fails again, others may not.
    Rejected,
    /// Nothing will work: no credentials, no permission, no such resource.
    Fatal,
}

/// Error codes of requests the service refused for what they hold.
const REJECTED_CODES: &[&str] = &[
    "ValidationException",
    "ValidationError",
    "SerializationException",
    "InvalidArgumentException",
    "InvalidParameterValueException",
];

/// Error codes after which no call of this process can succeed.
const FATAL_CODES: &[&str] = &[
    "ResourceNotFoundException",
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "ExpiredToken",
    "MissingAuthenticationTokenException",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSNotFoundException",
    "KMSInvalidStateException",
];

/// What to do after a failure with this error `code` and `kind`, which the SDK's classifiers
/// found `retryable` or not. A code none of them knows is not worth repeating: repeating it
/// would only multiply the attempts the user configured.
pub fn disposition(code: Option<&str>, kind: AwsFailure, retryable: bool) -> Disposition {
    if kind == AwsFailure::Credentials {
        return Disposition::Fatal;
    }
    match code {
        Some(c) if FATAL_CODES.contains(&c) => Disposition::Fatal,
        Some(c) if REJECTED_CODES.contains(&c) => Disposition::Rejected,
        _ if retryable => Disposition::Transient,
        _ => Disposition::Fatal,
    }
}

/// A code the SDK retries as throttling.
fn is_throttling(code: &str) -> bool {
    aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code)
}

/// HTTP statuses the SDK's status classifier retries.
/// <https://docs.rs/aws-smithy-runtime/latest/aws_smithy_runtime/client/retries/classifiers/struct.HttpStatusCodeClassifier.html>
const RETRYABLE_STATUSES: [u16; 4] = [500, 502, 503, 504];

/// What the SDK's own retry classifiers say of a failed call: a modeled error marked retryable,
/// one of the throttling or transient codes the SDK retries, a 5xx it retries, a timeout or a
/// connection that failed.
fn sdk_retryable(kind: AwsFailure, modeled: bool, code: Option<&str>, status: Option<u16>) -> bool {
    use aws_runtime::retries::classifiers::TRANSIENT_ERRORS;
    matches!(kind, AwsFailure::Timeout | AwsFailure::Unreachable)
        || modeled
        || code.is_some_and(|c| is_throttling(c) || TRANSIENT_ERRORS.contains(&c))
        || status.is_some_and(|s| RETRYABLE_STATUSES.contains(&s))
}

impl Error {
    /// A usage error: `what` is wrong, `hint` says what to do.
    pub fn usage(what: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage { what: what.into(), hint: hint.into() }
    }

    /// A configuration error.
    pub fn config(what: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Config { what: what.into(), hint: hint.into() }
    }

    /// An operation failure with a hint.
    pub fn failed(what: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Failed { what: what.into(), hint: hint.into() }
    }

    /// An I/O failure on `what` (a path or stream name).
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { what: what.into(), source }
    }

    /// True for a write to a closed pipe (`stream tail | head`): the reader has all it wanted.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Converts an SDK error of operation `op` on `resource` into an `Error`, keeping the error
    /// code and message the service sent (`SdkError`'s own Display says only "service error").
    pub fn aws<E, R>(op: &'static str, resource: impl Into<String>, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + ProvideErrorKind + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let detail = DisplayErrorContext(&err).to_string();
        let (kind, mut message) = classify(&err);
        let mut code = err.code().map(str::to_string);
        let (status, body_code) = raw_status_and_code(&err);
        // A refusal in a shape the SDK does not read (an emulator answering a JSON service in
        // XML) is still a refusal: its body names the code, or its status says what it is.
        if code.is_none() && kind == AwsFailure::Service {
            code = body_code.or_else(|| (status == Some(403)).then(|| "AccessDenied".to_string()));
            if let Some(c) = &code {
                message = format!("{c}: HTTP {} with an error body the SDK could not read", status.unwrap_or(0));
            }
        }
        let modeled = err.as_service_error().is_some_and(|e| e.retryable_error_kind().is_some());
        let retryable = sdk_retryable(kind, modeled, code.as_deref(), status);
        Error::Aws { op, resource: resource.into(), message, kind, code, retryable, detail }
    }

    /// Whether repeating the call can help (`Fatal` for errors that are not AWS calls).
    pub fn disposition(&self) -> Disposition {
        match self {
            Error::Aws { code, kind, retryable, .. } => disposition(code.as_deref(), *kind, *retryable),
            _ => Disposition::Fatal,
        }
    }

    /// An AWS call the service throttled (a code the SDK retries as throttling).
    pub fn throttled(&self) -> bool {
        self.code().is_some_and(is_throttling)
    }

    /// The service's error code, for an AWS call that failed with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The line that says what to do.
    pub fn hint(&self) -> String {
        match self {
            Error::Usage { hint, .. }
            | Error::Config { hint, .. }
            | Error::StackFailed { hint, .. }
            | Error::Partial { hint, .. }
            | Error::StackState { hint, .. }
            | Error::Failed { hint, .. } => hint.clone(),
            Error::Problems { problems } => problems.first().map(|p| p.1.clone()).unwrap_or_default(),
            Error::StackNotFound { stack } => {
                format!("run `stream deploy --stack {stack}` first, or pass the right --stack / --region")
            }
            Error::NotManaged { .. } => {
                "pass --stack with the name of a stack made by `stream deploy`; stream changes no other stack".into()
            }
            Error::Aws { kind, .. } => match kind {
                AwsFailure::Credentials => CREDENTIALS_HINT.into(),
                AwsFailure::Unreachable => "check the network, --region and --endpoint-url \
                     (for the local emulator: `scripts/local-aws start`)"
                    .into(),
                AwsFailure::Timeout => "the service did not answer in time; check the network and try again".into(),
                AwsFailure::Service | AwsFailure::Other if self.throttled() => "AWS throttled the call past the \
                     retries: run it again later or with fewer calls at once, or raise AWS_MAX_ATTEMPTS"
                    .into(),
                AwsFailure::Service | AwsFailure::Other if self.disposition() == Disposition::Transient => {
                    "the call failed past the retries and may succeed later: run it again, or raise \
                     AWS_MAX_ATTEMPTS (-v shows the full error chain and request id)"
                        .into()
                }
                AwsFailure::Service | AwsFailure::Other => {
                    "run again with -v for the full error chain and request id".into()
                }
            },
            Error::Io { .. } => "check that the path exists and is readable/writable".into(),
            Error::Interrupted => "run the command again to continue".into(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage { .. } | Error::Config { .. } | Error::Problems { .. } => exit::USAGE,
            Error::Aws { kind: AwsFailure::Credentials, .. } => exit::USAGE,
            Error::Partial { .. } => exit::PARTIAL,
            Error::Interrupted => exit::INTERRUPTED,
            _ => exit::FAILED,
        }
    }

    /// The full cause chain, shown with `-v`.
    pub fn detail(&self) -> Option<String> {
        match self {
            Error::Aws { detail, .. } => Some(detail.clone()),
            Error::Io { source, .. } => Some(format!("{source:?}")),
            _ => None,
        }
    }

    /// Prints the two lines (and with `verbose` the cause chain) to stderr; returns the exit code.
    pub fn report(&self, verbose: bool) -> i32 {
        if let Error::Problems { problems } = self {
            for (what, hint) in problems {
                eprintln!("stream: error: {what}");
                eprintln!("hint: {hint}");
            }
            return self.exit_code();
        }
        eprintln!("stream: error: {self}");
        if verbose && let Some(detail) = self.detail() {
            eprintln!("caused by: {detail}");
        }
        eprintln!("hint: {}", self.hint());
        self.exit_code()
    }
}

/// The HTTP status of the response a failed call got, and the error code its body names
/// (`<Code>…</Code>` or `"__type"`), when the SDK could not read it.
fn raw_status_and_code<E, R: 'static>(err: &SdkError<E, R>) -> (Option<u16>, Option<String>) {
    let Some(http) = err
        .raw_response()
        .and_then(|r| (r as &dyn std::any::Any).downcast_ref::<aws_smithy_runtime_api::http::Response>())
    else {
        return (None, None);
    };
    let body = http.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
    let between = |open: &str, close: &str| {
        let start = body.find(open)? + open.len();
        let end = body[start..].find(close)? + start;
        Some(body[start..end].trim().to_string()).filter(|c| !c.is_empty() && !c.contains(' '))
    };
    let code = between("<Code>", "</Code>")
        .or_else(|| between("\"__type\":\"", "\""))
        .map(|c| c.rsplit('#').next().unwrap_or(&c).to_string());
    (Some(http.status().as_u16()), code)
}

/// Sorts an SDK error into what the user can act on, and the message to show.
fn classify<E, R>(err: &SdkError<E, R>) -> (AwsFailure, String)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    if let Some(cred) = find_source::<CredentialsError>(err) {
        let reason = match cred {
            CredentialsError::CredentialsNotLoaded(_) => "no AWS credentials found".to_string(),
            other => format!("could not load AWS credentials: {}", DisplayErrorContext(other)),
        };
        return (AwsFailure::Credentials, reason);
    }
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let code = e.code().unwrap_or("UnknownError");
            let message = e.message().unwrap_or("no message");
            (AwsFailure::Service, format!("{code}: {message}"))
        }
        SdkError::DispatchFailure(d) if d.is_timeout() => (AwsFailure::Timeout, "request timed out".into()),
        SdkError::DispatchFailure(d) if d.is_io() => {
            (AwsFailure::Unreachable, "cannot reach the endpoint (connection failed)".into())
        }
        SdkError::DispatchFailure(_) => (AwsFailure::Unreachable, "cannot reach the endpoint".into()),
        SdkError::TimeoutError(_) => (AwsFailure::Timeout, "request timed out".into()),
        SdkError::ResponseError(_) => (AwsFailure::Other, "the response could not be read".into()),
        other => (AwsFailure::Other, DisplayErrorContext(other).to_string()),
    }
}

/// The first error of type `T` in the source chain of `err`.
fn find_source<'a, T: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_style_guide() {
        assert_eq!(Error::usage("x", "y").exit_code(), 2);
        assert_eq!(Error::config("x", "y").exit_code(), 2);
        assert_eq!(Error::StackNotFound { stack: "s".into() }.exit_code(), 1);
        assert_eq!(Error::Partial { what: "x".into(), hint: "y".into() }.exit_code(), 3);
        assert_eq!(Error::Interrupted.exit_code(), 130);
    }

    /// A call that failed past the retries says what may help: throttled, transient, or neither.
    #[test]
    fn hints_after_the_retries_follow_the_failure() {
        let aws = |code: &str, retryable: bool| Error::Aws {
            op: "Scan",
            resource: "t".into(),
            message: "m".into(),
            kind: AwsFailure::Service,
            code: Some(code.into()),
            retryable,
            detail: String::new(),
        };
        let throttled = aws("ProvisionedThroughputExceededException", true);
        assert!(throttled.throttled());
        assert!(throttled.hint().starts_with("AWS throttled the call past the retries"), "{}", throttled.hint());
        assert!(throttled.hint().contains("raise AWS_MAX_ATTEMPTS"));
        let transient = aws("InternalServerError", true);
        assert!(!transient.throttled());
        assert!(transient.hint().starts_with("the call failed past the retries and may succeed later"));
        let refused = aws("ResourceNotFoundException", false);
        assert_eq!(refused.hint(), "run again with -v for the full error chain and request id");
        assert!(!Error::usage("x", "y").throttled());
    }

    #[test]
    fn failures_are_sorted_once_by_code_kind_and_the_sdks_classifiers() {
        use Disposition::*;
        let service = AwsFailure::Service;
        for (code, status, modeled, expected) in [
            (Some("ProvisionedThroughputExceededException"), Some(400), false, Transient),
            (Some("ThrottlingException"), Some(400), false, Transient),
            (Some("RequestTimeout"), Some(400), false, Transient),
            (Some("InternalFailure"), Some(500), false, Transient),
            (Some("InternalServerError"), Some(400), true, Transient),
            (None, Some(503), false, Transient),
            // A code no classifier knows is not repeated: it would multiply the configured attempts.
            (Some("SomethingNew"), Some(400), false, Fatal),
            (None, None, false, Fatal),
            (Some("ValidationException"), Some(400), false, Rejected),
            (Some("InvalidArgumentException"), Some(400), false, Rejected),
            (Some("ResourceNotFoundException"), Some(400), false, Fatal),
            (Some("AccessDeniedException"), Some(400), false, Fatal),
            (Some("UnrecognizedClientException"), Some(400), false, Fatal),
        ] {
            let retryable = sdk_retryable(service, modeled, code, status);
            assert_eq!(disposition(code, service, retryable), expected, "{code:?} {status:?}");
        }
        for kind in [AwsFailure::Timeout, AwsFailure::Unreachable] {
            assert_eq!(disposition(None, kind, sdk_retryable(kind, false, None, None)), Transient);
        }
        assert_eq!(disposition(Some("ThrottlingException"), AwsFailure::Credentials, true), Fatal);
        assert_eq!(Error::failed("x", "y").disposition(), Fatal);
    }

    /// An answer of 403 whose body names no code is a refusal all the same; a 500 stays transient.
    #[test]
    fn a_403_without_a_code_is_access_denied() {
        use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let failed = |status: u16, body: &'static str| {
            let response = Response::new(StatusCode::try_from(status).expect("status"), SdkBody::from(body));
            let err = SdkError::service_error(BatchWriteItemError::generic(ErrorMetadata::builder().build()), response);
            Error::aws("BatchWriteItem", "t", err)
        };
        let denied = failed(403, "");
        assert_eq!((denied.code(), denied.disposition()), (Some("AccessDenied"), Disposition::Fatal));
        assert!(denied.to_string().contains("AccessDenied"), "{denied}");
        let xml = "<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code></Error></Errors></ErrorResponse>";
        assert_eq!(failed(403, xml).code(), Some("SignatureDoesNotMatch"), "the body names it");
        let json = r#"{"__type":"com.amazonaws.dynamodb.v20120810#AccessDeniedException"}"#;
        assert_eq!(failed(400, json).code(), Some("AccessDeniedException"));
        let broken = failed(500, "");
        assert_eq!((broken.code(), broken.disposition()), (None, Disposition::Transient));
    }

    #[test]
    fn not_managed_names_the_stack_and_what_to_do() {
        let e = Error::NotManaged { stack: "s1".into() };
        assert_eq!(e.to_string(), "stack \"s1\" exists and was not created by stream");
        assert!(e.hint().contains("--stack"));
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn find_source_walks_the_chain() {
        let inner = std::io::Error::other("inner");
        let outer = Error::io("file", inner);
        assert!(find_source::<std::io::Error>(&outer).is_some());
        assert!(find_source::<std::fmt::Error>(&outer).is_none());
    }
}
