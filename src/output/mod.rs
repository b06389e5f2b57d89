//! How results reach stdout: data only (progress and errors go to stderr), in the format the user
//! chose once for every command — `--output`, else `AWS_DEFAULT_OUTPUT`, else the profile's
//! `output`, as the AWS CLI reads them — and a closed pipe (`stream … | head`) counted as success.
//!
//! JSON keys are snake_case and stable (`zip_bytes`, `stream_name`); names that come from AWS
//! (stack parameters, outputs, tags) keep AWS's spelling (`LocalPrincipals`).

pub mod table;

use std::fmt::Display;
use std::io::Write;

use clap::ValueEnum;
use serde::Serialize;

use crate::error::Error;

/// An output format. Every command takes `json`, `text` and `table`, except those that print a
/// file or a script; `jsonl` where a command streams; `csv` for the table's items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// One JSON document, stable keys (for scripts)
    Json,
    /// For people (scan-table and tail: tab-separated, one item a line)
    Text,
    /// Boxed or aligned columns
    Table,
    /// One JSON object per line, as they come (streaming commands)
    Jsonl,
    /// Comma-separated values with a header row (scan-table)
    Csv,
}

impl Output {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Output::Json => "json",
            Output::Text => "text",
            Output::Table => "table",
            Output::Jsonl => "jsonl",
            Output::Csv => "csv",
        }
    }
}

/// The formats a command prints, and the one it prints when the user chose none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    /// Its own default.
    pub default: Output,
    /// What it can print, in the order they are offered in a hint.
    pub accepted: &'static [Output],
}

/// The summaries: one document.
pub const SUMMARY: Formats = Formats { default: Output::Text, accepted: &[Output::Text, Output::Json, Output::Table] };

/// Where a format was configured outside the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    /// `AWS_DEFAULT_OUTPUT`, or the profile's name.
    pub place: Place,
    /// The value as written.
    pub value: String,
}

/// Where a configured format was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The AWS_DEFAULT_OUTPUT variable.
    Env,
    /// `output` in this profile of the AWS config file.
    Profile(String),
}

/// The format of `command`: `--output` first, else the configured one, else the command's own
/// default. A format the command cannot print is refused with where it came from, never replaced
/// by another in silence (a profile's `yaml` included: stream prints no YAML).
pub fn choose(
    command: &str,
    formats: Formats,
    flag: Option<Output>,
    configured: Option<&Configured>,
) -> Result<Output, Error> {
    let offered = || {
        let names: Vec<&str> = formats.accepted.iter().map(|f| f.as_str()).collect();
        match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    };
    if let Some(f) = flag {
        return if formats.accepted.contains(&f) {
            Ok(f)
        } else {
            Err(Error::usage(
                format!("stream {command} has no {} output", f.as_str()),
                format!("give --output {}", offered()),
            ))
        };
    }
    let Some(c) = configured else { return Ok(formats.default) };
    let value = c.value.trim().to_ascii_lowercase();
    match Output::from_str(&value, true) {
        Ok(f) if formats.accepted.contains(&f) => Ok(f),
        _ => {
            let (what, fix) = match &c.place {
                Place::Env => ("AWS_DEFAULT_OUTPUT is".to_string(), "or unset AWS_DEFAULT_OUTPUT".to_string()),
                Place::Profile(p) => (
                    format!("the output of profile \"{p}\" is"),
                    format!("or set its output to {} (aws configure set output json)", offered()),
                ),
            };
            Err(Error::config(
                format!("{what} {:?}, which stream {command} cannot print", c.value),
                format!("give --output {}, {fix}", offered()),
            ))
        }
    }
}

/// Writes `text` to stdout with a final newline. A closed pipe is not an error.
pub fn print_stdout(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io("stdout", e)),
        _ => Ok(()),
    }
}

/// A command's result as JSON text.
fn json<T: Serialize>(out: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(out)
        .map_err(|e| Error::failed(format!("writing the summary as JSON: {e}"), "report this as a bug"))
}

/// Prints `command`'s result in `format`: its text for people, one JSON document, or a table of
/// that document.
pub fn print<T: Display + Serialize>(command: &str, out: &T, format: Output) -> Result<(), Error> {
    match format {
        Output::Json => print_stdout(&json(out)?.to_string()),
        Output::Table => print_stdout(table::render(command, &json(out)?).trim_end()),
        Output::Text | Output::Jsonl | Output::Csv => print_stdout(&out.to_string()),
    }
}

/// One JSON array written element by element ("[", one element a line, "]"), so that a command
/// that streams prints one JSON document without keeping what it printed.
#[derive(Debug, Default)]
pub struct JsonArray {
    started: bool,
}

impl JsonArray {
    /// Writes one element.
    pub fn push<T: Serialize + ?Sized>(&mut self, w: &mut impl Write, value: &T) -> std::io::Result<()> {
        w.write_all(if self.started { b",\n" } else { b"[\n" })?;
        self.started = true;
        serde_json::to_writer(&mut *w, value)?;
        Ok(())
    }

    /// Closes the array (`[]` when nothing was pushed).
    pub fn finish(self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(if self.started { b"\n]\n" } else { b"[]\n" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAMING: Formats =
        Formats { default: Output::Table, accepted: &[Output::Table, Output::Json, Output::Jsonl] };

    fn env(value: &str) -> Configured {
        Configured { place: Place::Env, value: value.into() }
    }

    #[test]
    fn the_flag_wins_then_the_configured_format_then_the_commands_own() {
        let profile = Configured { place: Place::Profile("dev".into()), value: "json".into() };
        assert_eq!(choose("status", SUMMARY, Some(Output::Table), Some(&profile)).ok(), Some(Output::Table));
        assert_eq!(choose("status", SUMMARY, None, Some(&profile)).ok(), Some(Output::Json));
        assert_eq!(choose("status", SUMMARY, None, Some(&env(" TABLE "))).ok(), Some(Output::Table));
        assert_eq!(choose("status", SUMMARY, None, None).ok(), Some(Output::Text));
        assert_eq!(choose("tail", STREAMING, None, None).ok(), Some(Output::Table));
    }

    #[test]
    fn a_format_the_command_cannot_print_is_refused_with_its_source() {
        let e = choose("status", SUMMARY, Some(Output::Csv), None).expect_err("no csv");
        assert_eq!(e.to_string(), "stream status has no csv output");
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.hint(), "give --output text, json or table");
        let e = choose("tail", STREAMING, None, Some(&env("yaml"))).expect_err("no yaml");
        assert_eq!(e.to_string(), "AWS_DEFAULT_OUTPUT is \"yaml\", which stream tail cannot print");
        assert_eq!(e.hint(), "give --output table, json or jsonl, or unset AWS_DEFAULT_OUTPUT");
        let profile = Configured { place: Place::Profile("ops".into()), value: "yaml-stream".into() };
        let e = choose("status", SUMMARY, None, Some(&profile)).expect_err("no yaml");
        assert!(e.to_string().starts_with("the output of profile \"ops\" is \"yaml-stream\""), "{e}");
    }

    #[test]
    fn a_json_array_streams_and_parses() {
        let mut buf = Vec::new();
        let mut array = JsonArray::default();
        array.push(&mut buf, &serde_json::json!({"a": 1})).expect("push");
        array.push(&mut buf, "two").expect("push");
        array.finish(&mut buf).expect("finish");
        let text = String::from_utf8(buf).expect("utf8");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).expect("json"),
            serde_json::json!([{"a": 1}, "two"])
        );
        let mut empty = Vec::new();
        JsonArray::default().finish(&mut empty).expect("finish");
        assert_eq!(empty, b"[]\n");
    }
}
