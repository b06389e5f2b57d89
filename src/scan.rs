//! `stream scan-table`: a paginated Scan of the stack's table (or a Query of one partition) printed
//! as aligned columns, JSON, JSON lines or CSV: the keys first, then the schema's attributes, then
//! the rest by name. The table name comes from the stack's outputs, the keys from its schema.

use std::collections::HashMap;
use std::io::Write;

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use clap::{Args, ValueEnum};
use unicode_width::UnicodeWidthStr;

use crate::args::{BadValue, at_least, range_of};
use crate::aws::Clients;
use crate::error::Error;
use crate::process::store::rejected_attr;
use crate::schema::{self, KeyType, Schema};
use crate::stack;

/// `stream scan-table`
#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// Output format
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Stop after N items
    #[arg(long, value_name = "N", value_parser = at_least::<u64>(1))]
    pub limit: Option<u64>,

    /// Print only the number of items
    #[arg(long)]
    pub count: bool,

    /// Read the quarantine table (poison records) instead of the events table
    #[arg(long)]
    pub rejected: bool,

    /// Only the items of this partition key value (a Query, not a Scan); `--user` for tweets
    #[arg(long, visible_alias = "user", value_name = "VALUE", conflicts_with = "rejected", value_parser = key_value)]
    pub key: Option<String>,

    /// Scan in N parallel segments (1-1000)
    #[arg(long, default_value_t = 1, value_name = "N", conflicts_with = "key", value_parser = range_of::<u32>(1, 1000, "DynamoDB's parallel scan limit"))]
    pub segments: u32,
}

/// How `scan-table` prints items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns, long messages shortened
    Table,
    /// One JSON array
    Json,
    /// One JSON object per line
    Jsonl,
    /// Comma-separated values with a header row
    Csv,
}

/// A partition key value as the table takes one: 1 to 2,048 bytes (its type is checked against
/// the schema's once the stack is read).
fn key_value(s: &str) -> Result<String, BadValue> {
    if s.is_empty() || s.len() > schema::MAX_PARTITION_KEY_BYTES {
        return Err(BadValue {
            value: format!("of {} bytes", s.len()),
            what: "is not 1 to 2048 bytes long".into(),
            hint: "give {flag} the exact partition key value of the items".into(),
        });
    }
    Ok(s.to_string())
}

/// `--key` as the attribute value the Query needs: a string as it is, a number in canonical
/// form, binary from base64.
fn key_attribute(value: &str, key: (&str, KeyType)) -> Result<AttributeValue, Error> {
    let refuse = |what: &str| {
        Error::usage(
            format!("--key {value:?} is not {what}, the type of the table's key {}", key.0),
            format!("give --key a {what}"),
        )
    };
    match key.1 {
        KeyType::S => Ok(AttributeValue::S(value.to_string())),
        KeyType::N => schema::number::canonical(value).map(AttributeValue::N).ok_or_else(|| refuse("number")),
        KeyType::B => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(value)
                .map(|b| AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b)))
                .map_err(|_| refuse("base64 value (binary)"))
        }
    }
}

/// Messages longer than this are shortened in the table format only.
const TABLE_MESSAGE_WIDTH: usize = 60;

/// One item as JSON, its attributes in `order` first, the others by name (nested maps by name).
pub fn item_json(item: &HashMap<String, AttributeValue>, order: &[&str]) -> serde_json::Value {
    let mut keys: Vec<&String> = item.keys().collect();
    keys.sort_by_key(|k| (column_rank(k, order), k.as_str()));
    let map = keys.into_iter().map(|k| (k.clone(), value_json(&item[k]))).collect();
    serde_json::Value::Object(map)
}

/// The quarantine table's columns, in the order shown.
pub const REJECTED_COLUMNS: [&str; 7] = [
    rejected_attr::SHARD,
    rejected_attr::SEQUENCE,
    rejected_attr::ARRIVAL,
    rejected_attr::REASON,
    rejected_attr::PARTITION_KEY,
    rejected_attr::PAYLOAD_BYTES,
    rejected_attr::PAYLOAD,
];

/// The event table's columns as `schema` orders them: its keys, then its own attributes.
pub fn event_columns(schema: &Schema) -> Vec<&str> {
    schema.attribute_names().iter().map(|n| &**n).collect()
}

/// Columns in `order` first, in that order; others after, by name.
fn column_rank(name: &str, order: &[&str]) -> usize {
    order.iter().position(|c| *c == name).unwrap_or(order.len())
}

fn value_json(v: &AttributeValue) -> serde_json::Value {
    use serde_json::Value;
    match v {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => {
            n.parse::<serde_json::Number>().map(Value::Number).unwrap_or_else(|_| Value::String(n.clone()))
        }
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(l) => Value::Array(l.iter().map(value_json).collect()),
        AttributeValue::M(m) => item_json(m, &[]),
        AttributeValue::Ss(ss) => Value::Array(ss.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(ns) => Value::Array(ns.iter().cloned().map(Value::String).collect()),
        AttributeValue::B(b) => Value::String(base64_encode(b.as_ref())),
        AttributeValue::Bs(bs) => Value::Array(bs.iter().map(|b| Value::String(base64_encode(b.as_ref()))).collect()),
        _ => Value::Null,
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A cell as plain text (strings without quotes).
fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Shortens `s` to `width` display columns, ending in an ellipsis when cut; newlines become spaces.
fn shorten(s: &str, width: usize) -> String {
    let flat: String = s.chars().map(|c| if c == '\n' || c == '\r' || c == '\t' { ' ' } else { c }).collect();
    if flat.width() <= width {
        return flat;
    }
    let mut out = String::new();
    let mut used = 0;
    for c in flat.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Writes `items` in `format`. Table and CSV columns are the union of the items' attributes,
/// those in `order` first (the keys, then the schema's attributes).
pub fn write_items(
    w: &mut impl Write,
    items: &[serde_json::Value],
    format: OutputFormat,
    order: &[&str],
) -> std::io::Result<()> {
    let mut columns: Vec<String> = Vec::new();
    if matches!(format, OutputFormat::Table | OutputFormat::Csv) {
        for item in items {
            if let Some(obj) = item.as_object() {
                for k in obj.keys() {
                    if !columns.contains(k) {
                        columns.push(k.clone());
                    }
                }
            }
        }
        columns.sort_by_key(|k| (column_rank(k, order), k.clone()));
        if columns.is_empty() {
            columns = order.iter().map(|c| c.to_string()).collect();
        }
    }
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *w, items)?;
            writeln!(w)
        }
        OutputFormat::Jsonl => {
            for item in items {
                serde_json::to_writer(&mut *w, item)?;
                writeln!(w)?;
            }
            Ok(())
        }
        OutputFormat::Csv => {
            writeln!(w, "{}", columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","))?;
            for item in items {
                let row: Vec<String> = columns.iter().map(|c| csv_field(&cell(&item[c.as_str()]))).collect();
                writeln!(w, "{}", row.join(","))?;
            }
            Ok(())
        }
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|item| columns.iter().map(|c| shorten(&cell(&item[c.as_str()]), TABLE_MESSAGE_WIDTH)).collect())
                .collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| rows.iter().map(|r| r[i].width()).chain([c.width()]).max().unwrap_or(0))
                .collect();
            let line = |w: &mut dyn Write, cells: &[String]| -> std::io::Result<()> {
                let mut text = String::new();
                for (i, c) in cells.iter().enumerate() {
                    if i + 1 < cells.len() {
                        text.push_str(c);
                        text.push_str(&" ".repeat(widths[i] - c.width() + 2));
                    } else {
                        text.push_str(c);
                    }
                }
                writeln!(w, "{}", text.trim_end())
            };
            line(w, &columns)?;
            for row in &rows {
                line(w, row)?;
            }
            Ok(())
        }
    }
}

type Item = std::collections::HashMap<String, AttributeValue>;

/// What is read: the table, and the partition a Query reads (attribute name and value).
struct Source<'a> {
    table: &'a str,
    partition: Option<(&'a str, AttributeValue)>,
}

/// One segment of a (parallel) Scan, or a Query on the partition key, up to `limit` items; or
/// their count.
async fn read_part(
    clients: &Clients,
    source: &Source<'_>,
    args: &ScanArgs,
    segment: u32,
    limit: Option<u64>,
) -> Result<(Vec<Item>, i64), Error> {
    let table = source.table;
    let (mut items, mut count) = (Vec::new(), 0i64);
    let select = if args.count { Select::Count } else { Select::AllAttributes };
    if let Some((name, value)) = &source.partition {
        let mut pages = clients
            .dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", *name)
            .expression_attribute_values(":k", value.clone())
            .select(select)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::aws("Query", table, e))?;
            count += i64::from(page.count);
            items.extend(page.items.unwrap_or_default());
            if limit.is_some_and(|l| items.len() as u64 >= l) {
                break;
            }
        }
        return Ok((items, count));
    }
    let mut scan = clients.dynamodb.scan().table_name(table).select(select);
    if args.segments > 1 {
        scan = scan.segment(segment as i32).total_segments(args.segments as i32);
    }
    let mut pages = scan.into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("Scan", table, e))?;
        count += i64::from(page.count);
        items.extend(page.items.unwrap_or_default());
        if limit.is_some_and(|l| items.len() as u64 >= l) {
            break;
        }
    }
    Ok((items, count))
}

/// `stream scan-table`: prints the table's items (or their number) to `out`. A closed pipe
/// (`stream scan-table | head`) ends the output quietly.
/// The flags are checked by `ScanArgs::validate` first.
pub async fn run(args: &ScanArgs, stack_name: &str, clients: &Clients, out: &mut impl Write) -> Result<(), Error> {
    let deployed = stack::load(clients, stack_name).await?;
    let schema = if args.rejected { None } else { Some(stack::schema(clients, &deployed.stack).await?.schema) };
    let order: Vec<&str> = schema.as_deref().map_or(REJECTED_COLUMNS.to_vec(), event_columns);
    let outputs = deployed.outputs;
    let table = if args.rejected { outputs.rejected_table } else { outputs.table_name };
    let partition = match (&args.key, &schema) {
        (Some(value), Some(s)) => Some((s.partition_key().0, key_attribute(value, s.partition_key())?)),
        _ => None,
    };
    let source = Source { table: &table, partition };
    let parts =
        futures::future::join_all((0..args.segments).map(|s| read_part(clients, &source, args, s, args.limit))).await;
    let (mut items, mut total) = (Vec::new(), 0i64);
    for part in parts {
        let (part_items, count) = part?;
        total += count;
        items.extend(part_items.iter().map(|i| item_json(i, &order)));
    }
    let written = if args.count {
        writeln!(out, "{total}")
    } else {
        if let Some(l) = args.limit {
            items.truncate(l as usize);
        }
        write_items(out, &items, args.output, &order)
    };
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io("stdout", e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> Vec<serde_json::Value> {
        vec![
            json!({"Username": "山田太郎", "Id": "1", "Timestamp": "2018-10-10T20:19:24.000Z", "Message": "こんにちは, \"world\""}),
            json!({"Username": "ana", "Id": "22", "Timestamp": "2018-10-10T20:19:25.000Z", "Message": "x".repeat(100)}),
        ]
    }

    fn render(format: OutputFormat) -> String {
        let mut buf = Vec::new();
        write_items(&mut buf, &items(), format, &event_columns(Schema::tweets())).expect("write");
        String::from_utf8(buf).expect("utf8")
    }

    #[test]
    fn table_aligns_wide_characters_and_shortens_only_messages_there() {
        let text = render(OutputFormat::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("Username  Id  Timestamp"));
        // Column starts line up in display width even with CJK names.
        let col = |l: &str| l[..l.find("2018").expect("timestamp")].width();
        assert_eq!(col(lines[1]), col(lines[2]));
        assert!(lines[2].ends_with('…'));
        assert!(lines[2].width() < 130);
        assert!(render(OutputFormat::Jsonl).contains(&"x".repeat(100)));
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let text = render(OutputFormat::Csv);
        assert!(text.starts_with("Username,Id,Timestamp,Message\n"));
        assert!(text.contains("\"こんにちは, \"\"world\"\"\""));
    }

    #[test]
    fn json_formats_round_trip() {
        let arr: Vec<serde_json::Value> = serde_json::from_str(&render(OutputFormat::Json)).expect("json");
        assert_eq!(arr, items());
        let lines: Vec<serde_json::Value> =
            render(OutputFormat::Jsonl).lines().map(|l| serde_json::from_str(l).expect("jsonl")).collect();
        assert_eq!(lines, items());
    }

    /// `--key` takes the type of the table's partition key, or is refused with two lines.
    #[test]
    fn key_values_take_the_keys_type() {
        assert_eq!(key_attribute("ana", ("U", KeyType::S)).expect("s"), AttributeValue::S("ana".into()));
        assert_eq!(key_attribute("1.50", ("T", KeyType::N)).expect("n"), AttributeValue::N("1.5".into()));
        assert_eq!(
            key_attribute("AQID", ("B", KeyType::B)).expect("b"),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(vec![1, 2, 3]))
        );
        let e = key_attribute("ten", ("T", KeyType::N)).expect_err("not a number");
        assert_eq!(
            (e.exit_code(), e.to_string()),
            (2, "--key \"ten\" is not number, the type of the table's key T".to_string())
        );
    }

    #[test]
    fn attribute_values_become_json() {
        let item = HashMap::from([
            ("Id".to_string(), AttributeValue::S("1".into())),
            ("N".to_string(), AttributeValue::N("3.5".into())),
            ("L".to_string(), AttributeValue::L(vec![AttributeValue::Bool(true)])),
        ]);
        assert_eq!(item_json(&item, &["N"]), json!({"N": 3.5, "Id": "1", "L": [true]}));
        let keys: Vec<String> = item_json(&item, &["N"]).as_object().expect("object").keys().cloned().collect();
        assert_eq!(keys, ["N", "Id", "L"], "the order given first, then by name");
    }
}
