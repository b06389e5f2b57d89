//! The one error type of the CLI: what went wrong (Display), what to do (`hint`), and the exit code.
//! SDK errors are converted where the call is made (`Error::aws`), naming the operation and resource;
//! `report` prints the two lines users see. The Lambda handler has its own failure types (process).

use std::fmt;

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

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

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, name or file the user gave is wrong; nothing was called.
    #[error("{what}")]
    Usage { what: String, hint: String },

    /// The environment is not set up (credentials, region, Lambda variables).
    #[error("{what}")]
    Config { what: String, hint: String },

    /// The stack does not exist.
    #[error("stack \"{stack}\" does not exist")]
    StackNotFound { stack: String },

    /// The stack is in a state this command cannot work from.
    #[error("stack \"{stack}\" is in {status} and cannot be {action}")]
    StackState { stack: String, status: String, action: &'static str },

    /// A stack operation finished in a failed state.
    #[error("{what}")]
    StackFailed { what: String, hint: String },

    /// An AWS call failed.
    #[error("{op} on {resource}: {message}")]
    Aws { op: &'static str, resource: String, message: String, kind: AwsFailure, detail: String },

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

    /// Converts an SDK error of operation `op` on `resource` into an `Error`, keeping the error
    /// code and message the service sent (`SdkError`'s own Display says only "service error").
    pub fn aws<E, R>(op: &'static str, resource: impl Into<String>, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let detail = DisplayErrorContext(&err).to_string();
        let (kind, message) = classify(&err);
        Error::Aws { op, resource: resource.into(), message, kind, detail }
    }

    /// The line that says what to do.
    pub fn hint(&self) -> String {
        match self {
            Error::Usage { hint, .. }
            | Error::Config { hint, .. }
            | Error::StackFailed { hint, .. }
            | Error::Partial { hint, .. }
            | Error::Failed { hint, .. } => hint.clone(),
            Error::StackNotFound { stack } => {
                format!("run `stream deploy --stack {stack}` first, or pass the right --stack / --region")
            }
            Error::StackState { stack, status, .. } if status.contains("ROLLBACK") || status.ends_with("FAILED") => {
                format!("run `stream deploy --stack {stack} --recreate` to delete and create it again")
            }
            Error::StackState { stack, .. } => {
                format!("wait until stack \"{stack}\" finishes its current operation, then run the command again")
            }
            Error::Aws { kind, .. } => match kind {
                AwsFailure::Credentials => crate::aws::CREDENTIALS_HINT.into(),
                AwsFailure::Unreachable => "check the network, --region and --endpoint-url \
                     (for the local emulator: `scripts/local-aws start`)"
                    .into(),
                AwsFailure::Timeout => "the service did not answer in time; check the network and try again".into(),
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
            Error::Usage { .. } | Error::Config { .. } => exit::USAGE,
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
        eprintln!("stream: error: {self}");
        if verbose && let Some(detail) = self.detail() {
            eprintln!("caused by: {detail}");
        }
        eprintln!("hint: {}", self.hint());
        self.exit_code()
    }
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

    #[test]
    fn stack_state_hint_names_the_stack() {
        let e = Error::StackState { stack: "s1".into(), status: "ROLLBACK_COMPLETE".into(), action: "updated" };
        assert_eq!(e.to_string(), "stack \"s1\" is in ROLLBACK_COMPLETE and cannot be updated");
        assert!(e.hint().contains("stream deploy --stack s1 --recreate"));
        let busy = Error::StackState { stack: "s1".into(), status: "UPDATE_IN_PROGRESS".into(), action: "used" };
        assert!(busy.hint().contains("wait until"));
    }

    #[test]
    fn find_source_walks_the_chain() {
        let inner = std::io::Error::other("inner");
        let outer = Error::io("file", inner);
        assert!(find_source::<std::io::Error>(&outer).is_some());
        assert!(find_source::<std::fmt::Error>(&outer).is_none());
    }
}
