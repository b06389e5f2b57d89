//! `stream scan-table`: a paginated Scan of the stack's table (or a Query of one partition) printed
//! a page at a time as aligned columns, tab-separated text, JSON, JSON lines or CSV: the keys
//! first, then the schema's attributes, then the rest by name. The table name comes from the
//! stack's outputs, the keys from its schema.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use clap::Args;
use serde::ser::{Serialize, SerializeMap, Serializer};
use unicode_width::UnicodeWidthStr;

use crate::args::{BadValue, at_least, range_of};
use crate::aws::Clients;
use crate::error::Error;
use crate::output::{JsonArray, Output};
use crate::process::store::rejected_attr;
use crate::progress;
use crate::schema::{self, KeyType, Schema};
use crate::shutdown::Shutdown;
use crate::stack;

/// `stream scan-table`
#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// Stop after N items (the AWS CLI's --max-items)
    #[arg(long, visible_alias = "max-items", value_name = "N", conflicts_with = "count", value_parser = at_least::<u64>(1))]
    pub limit: Option<u64>,

    /// Items per Scan or Query call (its Limit; default: as many as fit in DynamoDB's 1 MB page)
    #[arg(long, value_name = "N", value_parser = at_least::<i32>(1))]
    pub page_size: Option<i32>,

    /// Print only the number of items
    #[arg(long)]
    pub count: bool,

    /// Read the quarantine table (poison records) instead of the events table
    #[arg(long)]
    pub rejected: bool,

    /// Only the items of this partition key value (a Query, not a Scan); `--user` for tweets
    #[arg(long, visible_alias = "user", value_name = "VALUE", conflicts_with = "rejected", value_parser = key_value)]
    pub key: Option<String>,

    /// Scan in N parallel segments (1-1000000)
    #[arg(long, default_value_t = 1, value_name = "N", conflicts_with = "key", value_parser = range_of::<u32>(1, MAX_SEGMENTS, "Scan's TotalSegments"))]
    pub segments: u32,
}

/// Most segments a parallel Scan takes (its TotalSegments).
const MAX_SEGMENTS: u64 = 1_000_000;

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

/// Cells wider than this are shortened in the table format only.
const TABLE_CELL_WIDTH: usize = 60;

type Item = HashMap<String, AttributeValue>;

/// One item as printed: its attributes in the columns' order first, the others by name.
pub struct Row<'a> {
    attrs: Vec<(&'a str, &'a AttributeValue)>,
}

impl<'a> Row<'a> {
    /// `item`'s attributes, those in `order` first (in that order), the others by name.
    pub fn new(item: &'a Item, order: &[&str]) -> Row<'a> {
        let mut attrs: Vec<(&str, &AttributeValue)> = item.iter().map(|(k, v)| (k.as_str(), v)).collect();
        attrs.sort_by_key(|(k, _)| (column_rank(k, order), *k));
        Row { attrs }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeValue> {
        self.attrs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    fn names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.attrs.iter().map(|(k, _)| *k)
    }
}

/// Items as rows, their attributes in `order` first.
fn rows<'a>(items: &'a [Item], order: &[&str]) -> Vec<Row<'a>> {
    items.iter().map(|i| Row::new(i, order)).collect()
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.attrs.len()))?;
        for (name, value) in &self.attrs {
            map.serialize_entry(name, &Attr(value))?;
        }
        map.end()
    }
}

/// An attribute value as JSON: a number with DynamoDB's own text (38 digits, more than a float
/// holds: as the AWS CLI prints it), a set as a list, binary as base64, a map's keys by name.
struct Attr<'a>(&'a AttributeValue);

impl Serialize for Attr<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AttributeValue::S(v) => s.serialize_str(v),
            AttributeValue::N(n) => Number(n).serialize(s),
            AttributeValue::Bool(b) => s.serialize_bool(*b),
            AttributeValue::B(b) => s.serialize_str(&base64_encode(b.as_ref())),
            AttributeValue::L(l) => s.collect_seq(l.iter().map(Attr)),
            AttributeValue::M(m) => Row::new(m, &[]).serialize(s),
            AttributeValue::Ss(ss) => s.collect_seq(ss),
            AttributeValue::Ns(ns) => s.collect_seq(ns.iter().map(|n| Number(n))),
            AttributeValue::Bs(bs) => s.collect_seq(bs.iter().map(|b| base64_encode(b.as_ref()))),
            _ => s.serialize_unit(),
        }
    }
}

/// A number as DynamoDB writes it, put into the JSON as it is (a string if it is not a JSON
/// number, which DynamoDB never sends).
struct Number<'a>(&'a str);

impl Serialize for Number<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let numeric = self.0.starts_with(|c: char| c == '-' || c.is_ascii_digit());
        match serde_json::value::RawValue::from_string(self.0.to_string()) {
            Ok(raw) if numeric => raw.serialize(s),
            _ => s.serialize_str(self.0),
        }
    }
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

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A cell as plain text: a string or a number as it is, nothing for null or a missing
/// attribute, binary as base64, the rest as compact JSON.
fn cell(v: Option<&AttributeValue>) -> String {
    match v {
        None | Some(AttributeValue::Null(_)) => String::new(),
        Some(AttributeValue::S(s) | AttributeValue::N(s)) => s.clone(),
        Some(AttributeValue::B(b)) => base64_encode(b.as_ref()),
        Some(other) => serde_json::to_string(&Attr(other)).unwrap_or_default(),
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

/// Prints items a page at a time as they are read, so that memory stays flat on any table and
/// `stream scan-table | head` stops the reading. Table, CSV and text columns are the keys and the
/// schema's attributes, then any other attribute of the first page; an attribute first seen later
/// is named once on stderr (jsonl and json show every attribute). Table widths come from the
/// header and the first page: a wider value later pushes its row out instead of waiting for the
/// whole table.
pub struct ItemWriter<W: Write> {
    w: W,
    format: Output,
    order: Vec<String>,
    columns: Option<Vec<String>>,
    widths: Vec<usize>,
    array: JsonArray,
    unlisted: BTreeSet<String>,
}

impl<W: Write> ItemWriter<W> {
    /// A writer of `format` whose columns start with `order`.
    pub fn new(w: W, format: Output, order: &[&str]) -> Self {
        let order = order.iter().map(|c| c.to_string()).collect();
        ItemWriter {
            w,
            format,
            order,
            columns: None,
            widths: Vec::new(),
            array: JsonArray::default(),
            unlisted: BTreeSet::new(),
        }
    }

    /// The columns, fixed by the first page that has items (or by the order alone at the end).
    fn settle_columns(&mut self, items: &[Row]) -> std::io::Result<()> {
        let mut columns = self.order.clone();
        for item in items {
            for k in item.names() {
                if !columns.iter().any(|c| c == k) {
                    columns.push(k.to_string());
                }
            }
        }
        let order: Vec<&str> = self.order.iter().map(String::as_str).collect();
        columns.sort_by_key(|k| (column_rank(k, &order), k.clone()));
        match self.format {
            Output::Csv => writeln!(self.w, "{}", columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","))?,
            Output::Table => {
                self.widths = columns
                    .iter()
                    .map(|c| {
                        let cells = items.iter().map(|i| shorten(&cell(i.get(c)), TABLE_CELL_WIDTH).width());
                        cells.chain([c.width()]).max().unwrap_or(0)
                    })
                    .collect();
                let header = columns.clone();
                self.columns = Some(columns);
                return self.table_row(&header);
            }
            _ => {}
        }
        self.columns = Some(columns);
        Ok(())
    }

    fn table_row(&mut self, cells: &[String]) -> std::io::Result<()> {
        let mut text = String::new();
        for (i, c) in cells.iter().enumerate() {
            text.push_str(c);
            text.push_str(&" ".repeat(self.widths[i].saturating_sub(c.width()) + 2));
        }
        // The last column's padding goes, as a line's trailing blanks do.
        writeln!(self.w, "{}", text.trim_end())
    }

    /// Writes one page of items, then flushes it.
    pub fn page(&mut self, items: &[Row]) -> std::io::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        if self.columns.is_none() && matches!(self.format, Output::Table | Output::Csv | Output::Text) {
            self.settle_columns(items)?;
        }
        for item in items {
            self.item(item)?;
        }
        self.w.flush()
    }

    fn item(&mut self, item: &Row) -> std::io::Result<()> {
        match self.format {
            Output::Json => return self.array.push(&mut self.w, item),
            Output::Jsonl => {
                serde_json::to_writer(&mut self.w, item)?;
                return writeln!(self.w);
            }
            _ => {}
        }
        let columns = self.columns.clone().unwrap_or_default();
        for k in item.names() {
            if !columns.iter().any(|c| c == k) && self.unlisted.insert(k.to_string()) {
                progress::status(format!(
                    "warning: attribute {k} is not among the columns (fixed by the first page): --output jsonl shows every attribute"
                ));
            }
        }
        let cells = columns.iter().map(|c| cell(item.get(c)));
        match self.format {
            Output::Csv => writeln!(self.w, "{}", cells.map(|c| csv_field(&c)).collect::<Vec<_>>().join(",")),
            // Tab-separated as the AWS CLI's text, but one item a line and no header.
            Output::Text => {
                writeln!(self.w, "{}", cells.map(|c| c.replace(['\t', '\n', '\r'], " ")).collect::<Vec<_>>().join("\t"))
            }
            _ => {
                let row: Vec<String> = cells.map(|c| shorten(&c, TABLE_CELL_WIDTH)).collect();
                self.table_row(&row)
            }
        }
    }

    /// Ends the output when the reading stopped short (an error, Ctrl-C): what was printed stays
    /// one JSON document (the array closed), nothing else is added.
    pub fn cut(mut self) -> std::io::Result<()> {
        if self.format == Output::Json {
            let array = std::mem::take(&mut self.array);
            array.finish(&mut self.w)?;
        }
        self.w.flush()
    }

    /// Ends the output: the array's close, or the header of an empty table.
    pub fn finish(mut self) -> std::io::Result<()> {
        if self.columns.is_none() && matches!(self.format, Output::Table | Output::Csv) {
            self.settle_columns(&[])?;
        }
        self.cut()
    }
}

/// What is read: the table, and the partition a Query reads (attribute name and value).
struct Source<'a> {
    table: &'a str,
    partition: Option<(&'a str, AttributeValue)>,
}

/// Segments of a parallel Scan read at once: each holds at most one page (1 MB) in memory, so
/// memory stays flat whatever `--segments` is; the others wait their turn.
const SEGMENTS_IN_FLIGHT: usize = 8;

/// One page: its items (none when counting) and the number DynamoDB counted.
type Page = Result<(Vec<Item>, i64), Error>;

/// The pages of one segment of a (parallel) Scan, or of a Query on the partition key, as they come.
fn pages<'a>(
    clients: &'a Clients,
    source: &'a Source<'a>,
    args: &'a ScanArgs,
    segment: u32,
) -> futures::stream::BoxStream<'a, Page> {
    use futures::StreamExt;
    let table = source.table;
    let select = if args.count { Select::Count } else { Select::AllAttributes };
    let limit = page_limit(args);
    if let Some((name, value)) = &source.partition {
        let query = clients
            .dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", *name)
            .expression_attribute_values(":k", value.clone())
            .select(select)
            .set_limit(limit);
        let stream = query.into_paginator().send();
        return futures::stream::unfold(stream, |mut s| async move { Some((s.next().await?, s)) })
            .map(move |page| {
                let page = page.map_err(|e| Error::aws("Query", table, e))?;
                Ok((page.items.unwrap_or_default(), i64::from(page.count)))
            })
            .boxed();
    }
    let mut scan = clients.dynamodb.scan().table_name(table).select(select).set_limit(limit);
    if args.segments > 1 {
        scan = scan.segment(segment as i32).total_segments(args.segments as i32);
    }
    let stream = scan.into_paginator().send();
    futures::stream::unfold(stream, |mut s| async move { Some((s.next().await?, s)) })
        .map(move |page| {
            let page = page.map_err(|e| Error::aws("Scan", table, e))?;
            Ok((page.items.unwrap_or_default(), i64::from(page.count)))
        })
        .boxed()
}

/// The Limit of each Scan or Query call: --page-size, else a --limit under 1,000 (a small --limit
/// needs no full page: DynamoDB reads, and bills, no more than the Limit), else none.
fn page_limit(args: &ScanArgs) -> Option<i32> {
    args.page_size.or(args.limit.filter(|l| *l < 1000).map(|l| l as i32))
}

/// `stream scan-table`: prints the table's items (or their number) to `out` in `format`, a page
/// at a time. A closed pipe (`stream scan-table | head`) ends the reading and the output quietly;
/// an error or Ctrl-C (exit 130) ends it with the JSON array closed, so what was printed parses.
pub async fn run(
    args: &ScanArgs,
    format: Output,
    stack_name: &str,
    clients: &Clients,
    out: &mut impl Write,
    shutdown: Shutdown,
) -> Result<(), Error> {
    use futures::StreamExt;
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
    let segments = if source.partition.is_some() { 1 } else { args.segments };
    let mut all = futures::stream::iter((0..segments).map(|s| pages(clients, &source, args, s)))
        .flatten_unordered(SEGMENTS_IN_FLIGHT);
    let mut writer = ItemWriter::new(std::io::BufWriter::new(&mut *out), format, &order);
    let (mut left, mut total) = (args.limit.unwrap_or(u64::MAX), 0i64);
    let read = async {
        loop {
            let page = tokio::select! {
                page = all.next() => page,
                () = shutdown.wait() => return Err(Error::Interrupted),
            };
            let Some(page) = page else { return Ok(()) };
            let (items, count) = page?;
            total += count;
            if args.count {
                continue;
            }
            let take = items.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let rows = rows(&items[..take], &order);
            writer.page(&rows).map_err(|e| Error::io("stdout", e))?;
            left -= take as u64;
            if left == 0 {
                return Ok(());
            }
        }
    };
    let ended = match read.await {
        Ok(()) if args.count => print_count(total, format, writer),
        Ok(()) => writer.finish(),
        Err(e) if e.is_broken_pipe() => return Ok(()),
        Err(e) => {
            // The output ends whole (the array closed; Ctrl-C's count so far), then the error,
            // which no failure to write hides.
            let _ = match (&e, args.count) {
                (Error::Interrupted, true) => print_count(total, format, writer),
                (_, true) => Ok(()),
                (_, false) => writer.cut(),
            };
            return Err(e);
        }
    };
    match ended.map_err(|e| Error::io("stdout", e)) {
        Err(e) if e.is_broken_pipe() => Ok(()),
        other => other,
    }
}

/// `--count`: `{"count": N}` as JSON, the number alone otherwise (a table of one number is
/// the number).
fn print_count<W: Write>(total: i64, format: Output, mut writer: ItemWriter<W>) -> std::io::Result<()> {
    match format {
        Output::Json | Output::Jsonl => writeln!(writer.w, "{}", serde_json::json!({ "count": total })),
        _ => writeln!(writer.w, "{total}"),
    }?;
    writer.w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `--key` takes 1 to 2,048 bytes (DynamoDB's partition key bound), counted in bytes.
    #[test]
    fn a_key_value_is_one_to_2048_bytes() {
        assert_eq!(key_value("a").expect("one byte"), "a");
        let most = "é".repeat(1024);
        assert_eq!(key_value(&most).expect("2048 bytes"), most);
        for (bad, size) in [(String::new(), 0), (format!("{most}a"), 2049)] {
            let refused = key_value(&bad).expect_err("refused");
            assert_eq!(refused.value, format!("of {size} bytes"));
            assert_eq!(refused.what, "is not 1 to 2048 bytes long");
            assert!(refused.hint.contains("exact partition key value"), "{}", refused.hint);
        }
    }

    fn attrs(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.into())
    }

    fn items() -> Vec<Item> {
        vec![
            attrs(&[
                ("Username", s("山田太郎")),
                ("Id", s("1")),
                ("Timestamp", s("2018-10-10T20:19:24.000Z")),
                ("Message", s("こんにちは, \"world\"")),
            ]),
            attrs(&[
                ("Username", s("ana")),
                ("Id", s("22")),
                ("Timestamp", s("2018-10-10T20:19:25.000Z")),
                ("Message", s(&"x".repeat(100))),
            ]),
        ]
    }

    fn render_items(format: Output, items: &[Item]) -> String {
        let order = event_columns(Schema::tweets());
        let mut buf = Vec::new();
        let mut w = ItemWriter::new(&mut buf, format, &order);
        let rows = rows(items, &order);
        w.page(&rows).expect("write");
        w.finish().expect("finish");
        String::from_utf8(buf).expect("utf8")
    }

    fn render(format: Output) -> String {
        render_items(format, &items())
    }

    /// The table lines columns up in display width and shortens cells past 60 columns.
    #[test]
    fn table_aligns_wide_characters_and_shortens_long_cells() {
        let text = render(Output::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("Username  Id  Timestamp"));
        // Column starts line up in display width even with CJK names.
        let col = |l: &str| l[..l.find("2018").expect("timestamp")].width();
        assert_eq!(col(lines[1]), col(lines[2]));
        assert!(lines[2].ends_with('…'));
        assert!(lines[2].width() < 130);
        assert!(render(Output::Jsonl).contains(&"x".repeat(100)));
    }

    /// A cell is cut to its width in display columns, the ellipsis counted in it, and a wide
    /// character that would pass the width is left out whole; newlines, carriage returns and tabs
    /// become spaces, and a cell that fits is kept as it is.
    #[test]
    fn cells_are_cut_to_their_display_width() {
        assert_eq!(shorten("abcdef", 6), "abcdef");
        assert_eq!(shorten("abcdefg", 6), "abcde…");
        assert_eq!(shorten("a\nb\rc\td", 7), "a b c d");
        assert_eq!(shorten("a\nb\rc\tde", 6), "a b c…");
        assert_eq!(shorten("山田太郎", 8), "山田太郎");
        assert_eq!(shorten("山田太郎", 7), "山田太…");
        assert_eq!(shorten("山田太郎", 6), "山田…");
        assert_eq!(shorten("a山田太郎", 6), "a山田…");
        assert_eq!(shorten("ab", 1), "…");
        for width in 1..12 {
            assert!(shorten("a山田太郎bcdef", width).width() <= width, "{width}");
        }
    }

    /// Attributes outside the schema's come after its columns, by name, each once however many
    /// items of the first page hold it; an item without one leaves its cell empty.
    #[test]
    fn other_attributes_follow_the_schemas_columns_once() {
        let mut more = items();
        more[0].insert("Zeta".into(), s("z"));
        more[0].insert("Alpha".into(), s("a"));
        more[1].insert("Zeta".into(), s("z2"));
        let text = render_items(Output::Csv, &more);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Username,Id,Timestamp,Message,Alpha,Zeta");
        assert!(lines[2].ends_with(&format!("{},,z2", "x".repeat(100))), "{}", lines[2]);
    }

    /// Pages come one after another under one header: the columns are settled once, by the first.
    #[test]
    fn the_header_is_written_once_for_every_page() {
        let order = event_columns(Schema::tweets());
        for (format, header) in [(Output::Csv, "Username,Id"), (Output::Table, "Username")] {
            let mut buf = Vec::new();
            let mut w = ItemWriter::new(&mut buf, format, &order);
            let (first, second) = (items(), items());
            w.page(&rows(&first, &order)).expect("page");
            w.page(&rows(&second, &order)).expect("page");
            w.finish().expect("finish");
            let text = String::from_utf8(buf).expect("utf8");
            assert_eq!(text.lines().filter(|l| l.starts_with(header)).count(), 1, "{text}");
            assert_eq!(text.lines().count(), 5, "{text}");
        }
    }

    /// Text is the AWS CLI's: cells separated by tabs, one item a line, no header, and a tab or
    /// a newline inside a cell made a space.
    #[test]
    fn text_is_tab_separated_without_a_header() {
        let mut tabbed = items();
        tabbed[0].insert("Message".into(), s("a\tb\nc"));
        let text = render_items(Output::Text, &tabbed);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], "山田太郎\t1\t2018-10-10T20:19:24.000Z\ta b c");
        assert_eq!(lines[1].split('\t').nth(3), Some("x".repeat(100).as_str()), "not cut as a table's cell");
    }

    /// An attribute first seen after the columns are fixed is named once (on stderr), and only it.
    #[test]
    fn attributes_past_the_columns_are_named_once() {
        let order = event_columns(Schema::tweets());
        let mut buf = Vec::new();
        let mut w = ItemWriter::new(&mut buf, Output::Csv, &order);
        let mut later = items();
        later[0].insert("Late".into(), s("1"));
        later[1].insert("Late".into(), s("2"));
        w.page(&rows(&items(), &order)).expect("page");
        w.page(&rows(&later, &order)).expect("page");
        assert_eq!(w.unlisted.iter().collect::<Vec<_>>(), ["Late"]);
    }

    /// Each call's Limit: --page-size as given; else a --limit under 1,000 (DynamoDB then reads no
    /// more than it); else DynamoDB's own page of 1 MB.
    #[test]
    fn a_small_limit_is_each_calls_limit() {
        #[derive(clap::Parser)]
        struct Scan {
            #[command(flatten)]
            args: ScanArgs,
        }
        let limit = |flags: &[&str]| {
            let scan =
                <Scan as clap::Parser>::try_parse_from(std::iter::once("scan-table").chain(flags.iter().copied()));
            page_limit(&scan.expect("flags").args)
        };
        assert_eq!(limit(&[]), None);
        assert_eq!(limit(&["--limit", "5"]), Some(5));
        assert_eq!(limit(&["--limit", "999"]), Some(999));
        assert_eq!(limit(&["--limit", "1000"]), None);
        assert_eq!(limit(&["--limit", "5000"]), None);
        assert_eq!(limit(&["--page-size", "7"]), Some(7));
        assert_eq!(limit(&["--page-size", "7", "--limit", "5"]), Some(7));
    }

    /// CSV quotes a field with a comma or a quote, doubling the quote.
    #[test]
    fn csv_quotes_what_needs_quoting() {
        let text = render(Output::Csv);
        assert!(text.starts_with("Username,Id,Timestamp,Message\n"));
        assert!(text.contains("\"こんにちは, \"\"world\"\"\""));
    }

    /// JSON is one array of the items, JSON lines one item a line, keys in the columns' order.
    #[test]
    fn json_formats_round_trip() {
        let expected = vec![
            json!({"Username": "山田太郎", "Id": "1", "Timestamp": "2018-10-10T20:19:24.000Z", "Message": "こんにちは, \"world\""}),
            json!({"Username": "ana", "Id": "22", "Timestamp": "2018-10-10T20:19:25.000Z", "Message": "x".repeat(100)}),
        ];
        let arr: Vec<serde_json::Value> = serde_json::from_str(&render(Output::Json)).expect("json");
        assert_eq!(arr, expected);
        let lines: Vec<serde_json::Value> =
            render(Output::Jsonl).lines().map(|l| serde_json::from_str(l).expect("jsonl")).collect();
        assert_eq!(lines, expected);
        assert!(render(Output::Jsonl).starts_with(r#"{"Username":"山田太郎","Id":"1","Timestamp""#));
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

    /// Every attribute type as JSON and as a cell; numbers keep DynamoDB's text, all 38 digits.
    #[test]
    fn attribute_values_print_as_dynamodb_holds_them() {
        use aws_sdk_dynamodb::primitives::Blob;
        let big = "12345678901234567890123456789012345678";
        let item = attrs(&[
            ("Id", s("1")),
            ("N", AttributeValue::N("3.5".into())),
            ("Big", AttributeValue::N(big.into())),
            ("Tiny", AttributeValue::N("-1.5E-130".into())),
            ("L", AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::N("1.10".into())])),
            ("M", AttributeValue::M(attrs(&[("z", s("last")), ("a", AttributeValue::Null(true))]))),
            ("Ss", AttributeValue::Ss(vec!["a".into(), "b".into()])),
            ("Ns", AttributeValue::Ns(vec!["1".into(), big.into()])),
            ("B", AttributeValue::B(Blob::new(vec![1, 2, 3]))),
            ("Bs", AttributeValue::Bs(vec![Blob::new(vec![255])])),
            ("Nul", AttributeValue::Null(true)),
        ]);
        let row = Row::new(&item, &["N"]);
        let names: Vec<&str> = row.names().collect();
        assert_eq!(
            names,
            ["N", "B", "Big", "Bs", "Id", "L", "M", "Ns", "Nul", "Ss", "Tiny"],
            "the order, then by name"
        );
        assert_eq!(
            serde_json::to_string(&row).expect("json"),
            format!(
                r#"{{"N":3.5,"B":"AQID","Big":{big},"Bs":["/w=="],"Id":"1","L":[true,1.10],"M":{{"a":null,"z":"last"}},"Ns":[1,{big}],"Nul":null,"Ss":["a","b"],"Tiny":-1.5E-130}}"#
            )
        );
        let cells: Vec<String> = names.iter().map(|n| cell(row.get(n))).collect();
        assert_eq!(
            cells,
            [
                "3.5",
                "AQID",
                big,
                "[\"/w==\"]",
                "1",
                "[true,1.10]",
                "{\"a\":null,\"z\":\"last\"}",
                &format!("[1,{big}]"),
                "",
                "[\"a\",\"b\"]",
                "-1.5E-130"
            ]
        );
        assert_eq!(cell(row.get("gone")), "", "a missing attribute is an empty cell");
        // A number DynamoDB would never send is a string, never broken JSON.
        assert_eq!(serde_json::to_string(&Attr(&AttributeValue::N("1 2".into()))).expect("json"), r#""1 2""#);
        assert_eq!(serde_json::to_string(&Attr(&AttributeValue::N("true".into()))).expect("json"), r#""true""#);
    }

    /// Stopped short (an error, Ctrl-C), JSON output is closed to one document; others add nothing.
    #[test]
    fn a_cut_output_stays_one_document() {
        let order = event_columns(Schema::tweets());
        for format in [Output::Json, Output::Table, Output::Csv, Output::Jsonl] {
            let mut buf = Vec::new();
            let mut w = ItemWriter::new(&mut buf, format, &order);
            let items = items();
            let rows = rows(&items, &order);
            w.page(&rows[..1]).expect("page");
            w.cut().expect("cut");
            let text = String::from_utf8(buf).expect("utf8");
            match format {
                Output::Json => {
                    assert!(text.starts_with("[\n"), "{text}");
                    let arr: Vec<serde_json::Value> = serde_json::from_str(&text).expect("one document");
                    assert_eq!(arr.len(), 1);
                }
                _ => assert_eq!(text, render_items(format, &items[..1]), "{format:?}: nothing added"),
            }
        }
        let mut buf = Vec::new();
        ItemWriter::new(&mut buf, Output::Json, &order).cut().expect("cut");
        assert_eq!(buf, b"[]\n", "nothing read: an empty array");
    }
}
