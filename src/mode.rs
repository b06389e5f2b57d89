//! Which of its two lives the process lives: the CLI, or the Lambda bootstrap.
//! Decided before clap runs, from argv[0] and `AWS_LAMBDA_RUNTIME_API`; a pure function.

use std::ffi::OsStr;
use std::path::Path;

/// How the process was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run by a person or a script: parse the command line.
    Cli,
    /// Run by Lambda (or `stream local`): serve the Runtime API loop.
    Lambda,
    /// Named `bootstrap` but not inside Lambda: a usage error.
    BootstrapOutsideLambda,
}

/// Decides the mode. Lambda sets `AWS_LAMBDA_RUNTIME_API` for the bootstrap process; that variable
/// alone decides, so the same file works under any name.
pub fn detect(argv0: Option<&OsStr>, runtime_api: Option<&OsStr>) -> Mode {
    if runtime_api.is_some_and(|v| !v.is_empty()) {
        return Mode::Lambda;
    }
    let named_bootstrap = argv0.and_then(|a| Path::new(a).file_name()).is_some_and(|name| name == "bootstrap");
    if named_bootstrap { Mode::BootstrapOutsideLambda } else { Mode::Cli }
}

/// Reads argv[0] and the environment of this process.
pub fn detect_current() -> Mode {
    let argv0 = std::env::args_os().next();
    let api = std::env::var_os("AWS_LAMBDA_RUNTIME_API");
    detect(argv0.as_deref(), api.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn runtime_api_means_lambda_whatever_the_name() {
        assert_eq!(detect(os("/var/task/bootstrap"), os("127.0.0.1:9001")), Mode::Lambda);
        assert_eq!(detect(os("stream"), os("127.0.0.1:9001")), Mode::Lambda);
    }

    #[test]
    fn plain_names_are_the_cli() {
        assert_eq!(detect(os("stream"), None), Mode::Cli);
        assert_eq!(detect(os("/usr/local/bin/stream"), None), Mode::Cli);
        assert_eq!(detect(None, None), Mode::Cli);
        assert_eq!(detect(os("bootstrapper"), None), Mode::Cli);
    }

    #[test]
    fn bootstrap_without_runtime_api_is_a_usage_error() {
        assert_eq!(detect(os("./bootstrap"), None), Mode::BootstrapOutsideLambda);
        assert_eq!(detect(os("bootstrap"), os("")), Mode::BootstrapOutsideLambda);
    }
}
