//! How results reach stdout: data only (progress and errors go to stderr), as text for people or
//! one JSON object for scripts, and a closed pipe (`stream … | head`) counted as success.

use std::fmt::Display;
use std::io::Write;

use clap::ValueEnum;
use serde::Serialize;

use crate::error::Error;

/// How a command prints its summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    /// For people
    #[default]
    Text,
    /// One JSON object, for scripts
    Json,
}

/// Writes `text` to stdout with a final newline. A closed pipe is not an error.
pub fn print_stdout(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io("stdout", e)),
        _ => Ok(()),
    }
}

/// Prints a command's result in `format`.
pub fn print<T: Display + Serialize>(out: &T, format: SummaryFormat) -> Result<(), Error> {
    match format {
        SummaryFormat::Text => print_stdout(&out.to_string()),
        SummaryFormat::Json => {
            let json = serde_json::to_string(out)
                .map_err(|e| Error::failed(format!("writing the summary as JSON: {e}"), "report this as a bug"))?;
            print_stdout(&json)
        }
    }
}
