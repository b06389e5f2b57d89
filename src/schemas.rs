//! `stream schema`: `check` reads a schema file (every problem named, exit code 2) and shows, for
//! sample events, the item each would become or the reason it would be quarantined, with no AWS
//! call; `show` prints the schema the stack's function runs, as it was written. Reading schemas is
//! `schema`'s job, finding the stack's is `stack`'s.

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::aws::Clients;
use crate::error::Error;
use crate::output::{self, Output};
use crate::schema;
use crate::stack;

/// `stream schema`
#[derive(Debug, Clone, Args)]
pub struct SchemaArgs {
    /// What to do with a schema
    #[command(subcommand)]
    pub action: SchemaAction,
}

/// The actions of `stream schema`.
#[derive(Debug, Clone, Subcommand)]
pub enum SchemaAction {
    /// Check a schema file and show what sample events become (no AWS call)
    Check {
        /// The schema: a TOML or JSON file, or a built-in name (tweets, clickstream, iot, orders)
        #[arg(value_name = "FILE|NAME")]
        schema: String,

        /// JSON-lines file of events: each line's item, or why it would be quarantined
        #[arg(long, value_name = "FILE.jsonl")]
        sample: Option<PathBuf>,
    },
    /// Print the event schema the stack's function runs, as it was written
    Show,
}

/// What one sample line became.
#[derive(Debug, Clone, Serialize)]
pub struct SampleLine {
    /// Line number in the sample file.
    pub line: u64,
    /// The item, in DynamoDB's JSON form, when the function would write one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<serde_json::Value>,
    /// The Kinesis partition key the producer would give it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kinesis_key: Option<String>,
    /// Why it would be quarantined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<String>,
}

/// The result of `stream schema check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutput {
    /// Schema name.
    pub schema: String,
    /// Where it was read from.
    pub origin: String,
    /// The table's keys, the stored contents, time, TTL and ordering, in words.
    pub summary: Vec<(String, String)>,
    /// The sample's lines, when one was given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<SampleLine>,
}

impl CheckOutput {
    /// Exit code 3 when sample lines would be quarantined (so CI can check a sample is clean).
    pub fn problem(&self) -> Option<Error> {
        let refused = self.sample.iter().filter(|l| l.quarantined.is_some()).count();
        (refused > 0).then(|| Error::Partial {
            what: format!("{refused} of {} sample events would be quarantined", self.sample.len()),
            hint: "fix the events or the schema; each line's reason is above".into(),
        })
    }
}

impl fmt::Display for CheckOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "schema {} ({}): ok", self.schema, self.origin)?;
        for (k, v) in &self.summary {
            writeln!(f, "  {k:<12} {v}")?;
        }
        for l in &self.sample {
            match (&l.item, &l.quarantined) {
                (Some(item), _) => writeln!(
                    f,
                    "line {}: item {} (Kinesis key {:?})",
                    l.line,
                    item,
                    l.kinesis_key.as_deref().unwrap_or_default()
                )?,
                (None, Some(why)) => writeln!(f, "line {}: quarantined: {why}", l.line)?,
                (None, None) => {}
            }
        }
        if !self.sample.is_empty() {
            let refused = self.sample.iter().filter(|l| l.quarantined.is_some()).count();
            writeln!(
                f,
                "{} sample events: {} items, {refused} quarantined",
                self.sample.len(),
                self.sample.len() - refused
            )?;
        }
        Ok(())
    }
}

/// `stream schema check FILE [--sample FILE.jsonl]`: no AWS call.
pub fn check(schema: &str, sample: Option<&PathBuf>) -> Result<CheckOutput, Error> {
    let loaded = schema::load(schema)?;
    let s = &loaded.schema;
    let mut lines = Vec::new();
    if let Some(path) = sample {
        let text = std::fs::read(path).map_err(|e| {
            Error::usage(
                format!("cannot read sample {}: {e}", path.display()),
                "give --sample a JSON-lines file of events",
            )
        })?;
        for (i, line) in text.split(|b| *b == b'\n').enumerate() {
            let line_bytes = line.trim_ascii();
            if line_bytes.is_empty() {
                continue;
            }
            let number = i as u64 + 1;
            let out = match (s.item(line_bytes), s.kinesis_key(line_bytes)) {
                (Ok(item), Ok(key)) => SampleLine {
                    line: number,
                    item: Some(item.to_json(s.attribute_names())),
                    kinesis_key: Some(key),
                    quarantined: None,
                },
                (Err(why), _) | (_, Err(why)) => {
                    SampleLine { line: number, item: None, kinesis_key: None, quarantined: Some(why.to_string()) }
                }
            };
            lines.push(out);
        }
    }
    Ok(CheckOutput {
        schema: s.name().to_string(),
        origin: loaded.origin.clone(),
        summary: s.describe(),
        sample: lines,
    })
}

/// `stream schema show`: the stack's schema as written, and where it is kept.
pub async fn show(stack_name: &str, clients: &Clients) -> Result<(String, String), Error> {
    let deployed = stack::load(clients, stack_name).await?;
    let loaded = stack::schema(clients, &deployed.stack).await?;
    Ok((loaded.text, format!("schema {} of stack {stack_name} ({})", loaded.schema.name(), loaded.origin)))
}

/// Prints a schema file's text in `format`: as written (text), or its content as one JSON
/// document or a table of it, whether the file is TOML or JSON.
pub fn print_schema(text: &str, format: Output) -> Result<(), Error> {
    if format == Output::Text {
        return output::print_stdout(text.trim_end());
    }
    let value: serde_json::Value = serde_json::from_str(text).or_else(|_| toml::from_str(text)).map_err(|e| {
        Error::failed(
            format!("the stack's schema file does not parse: {e}"),
            "deploy a schema that `stream schema check` accepts",
        )
    })?;
    match format {
        Output::Table => output::print_stdout(output::table::render("schema show", &value).trim_end()),
        _ => output::print_stdout(&value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_shows_each_samples_item_or_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sample = dir.path().join("s.jsonl");
        let good = r#"{"order_id":"o-1","version":2,"status":"paid","updated_at":"2025-01-01T00:00:00Z","total":12.5}"#;
        std::fs::write(&sample, format!("{good}\n\n{{\"order_id\":\"o-2\",\"status\":\"paid\",\"updated_at\":\"2025-01-01T00:00:00Z\"}}\nnot json\n")).expect("write");
        let out = check("orders", Some(&sample)).expect("checked");
        assert_eq!(out.sample.len(), 3);
        assert_eq!(out.sample[0].line, 1);
        let item = out.sample[0].item.as_ref().expect("item");
        assert_eq!(item["OrderId"], serde_json::json!({"S": "o-1"}));
        assert_eq!(item["Version"], serde_json::json!({"N": "2"}));
        assert_eq!(item["Total"], serde_json::json!({"N": "12.5"}));
        assert_eq!(out.sample[0].kinesis_key.as_deref(), Some("o-1"));
        assert_eq!(out.sample[1].line, 3, "blank lines are skipped, numbers kept");
        assert_eq!(out.sample[1].quarantined.as_deref(), Some("no version (version)"));
        assert!(out.sample[2].quarantined.as_deref().is_some_and(|r| r.starts_with("not a JSON order event")));
        assert_eq!(out.problem().map(|e| e.exit_code()), Some(3));
        let text = out.to_string();
        assert!(text.contains("ordering     by Version (a number): a write never replaces a newer version"), "{text}");
        assert!(text.contains("3 sample events: 1 items, 2 quarantined"), "{text}");
    }

    #[test]
    fn a_bad_schema_names_every_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "name = \"Bad Name\"\n[partition_key]\ntype = \"X\"\nfrom = \"id\"\n[ttl]\nattribute = \"E\"\nafter = \"soon\"\n")
            .expect("write");
        let err = check(file.to_str().expect("utf8"), None).expect_err("refused");
        assert_eq!(err.exit_code(), 2);
        let Error::Problems { problems } = err else { panic!("not a list of problems") };
        let whats: Vec<&str> = problems.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(whats.len(), 5, "{whats:#?}");
        assert!(whats.iter().all(|w| w.starts_with(file.to_str().expect("utf8"))));
        for (part, hint) in [
            ("name: \"Bad Name\" is not 1-64 lowercase letters", "name it like clickstream"),
            ("partition_key.type: \"X\" is not one of S, N, B", "set partition_key.type to one of: S, N, B"),
            ("partition_key.from[0]: \"id\" does not start with /", "RFC 6901"),
            ("partition_key.attribute: missing", "partition_key.attribute = "),
            ("ttl.after: \"soon\" is not a duration", "90s, 15m, 12h, 30d, 2w"),
        ] {
            let found = problems.iter().find(|(w, _)| w.contains(part)).unwrap_or_else(|| panic!("{part}: {whats:#?}"));
            assert!(found.1.contains(hint), "{part}: hint {:?}", found.1);
        }
    }
}
