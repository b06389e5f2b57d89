//! `--output table` of a command's JSON document, boxed as the AWS CLI boxes its tables: the
//! command's name on top, then each object's scalar fields as name | value rows, a nested object as
//! a section titled by its path (`mapping.settings`), and a list of objects as columns with a
//! header row. Every value of the document is shown; none is shortened.

use serde_json::Value;
use unicode_width::UnicodeWidthStr;

/// What the document becomes, in order.
enum Block {
    /// A section's title (the path of a nested object or list).
    Title(String),
    /// Name | value rows.
    Pairs(Vec<(String, String)>),
    /// A list of objects: a header row, then one row each.
    Rows { header: Vec<String>, rows: Vec<Vec<String>> },
}

/// A scalar as a cell: strings without quotes, null empty, lists of scalars joined, anything else
/// as compact JSON; line breaks and tabs become spaces so that a row stays one line.
fn cell(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) if a.iter().all(is_scalar) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    };
    text.replace(['\n', '\r', '\t'], " ")
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

/// A list of objects (or of lists) becomes columns; a list of scalars is a cell.
fn is_rows(v: &Value) -> bool {
    matches!(v, Value::Array(a) if !a.is_empty() && (a.iter().all(Value::is_object) || a.iter().all(Value::is_array)))
}

fn collect(path: &str, v: &Value, out: &mut Vec<Block>) {
    match v {
        Value::Object(map) => {
            let pairs: Vec<(String, String)> =
                map.iter().filter(|(_, v)| !v.is_object() && !is_rows(v)).map(|(k, v)| (k.clone(), cell(v))).collect();
            if !path.is_empty() {
                out.push(Block::Title(path.to_string()));
            }
            if !pairs.is_empty() {
                out.push(Block::Pairs(pairs));
            }
            for (k, v) in map.iter().filter(|(_, v)| v.is_object() || is_rows(v)) {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                collect(&child, v, out);
            }
        }
        Value::Array(items) if items.iter().all(Value::is_array) && !items.is_empty() => {
            // Lists of lists (name/value pairs, say): rows without a header.
            let rows: Vec<Vec<String>> =
                items.iter().map(|r| r.as_array().into_iter().flatten().map(cell).collect()).collect();
            let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
            let rows = rows.into_iter().map(|mut r| {
                r.resize(columns, String::new());
                r
            });
            out.push(Block::Title(path.to_string()));
            out.push(Block::Rows { header: Vec::new(), rows: rows.collect() });
        }
        Value::Array(items) if is_rows(v) => {
            let mut header: Vec<String> = Vec::new();
            for item in items.iter().filter_map(Value::as_object) {
                for k in item.keys() {
                    if !header.contains(k) {
                        header.push(k.clone());
                    }
                }
            }
            let rows = items.iter().map(|item| header.iter().map(|h| cell(&item[h.as_str()])).collect()).collect();
            out.push(Block::Title(path.to_string()));
            out.push(Block::Rows { header, rows });
        }
        scalar => out.push(Block::Pairs(vec![(path.to_string(), cell(scalar))])),
    }
}

/// `text` padded with spaces to `width` display columns.
fn pad(text: &str, width: usize) -> String {
    format!("{text}{}", " ".repeat(width.saturating_sub(text.width())))
}

/// The columns' widths of a Rows block.
fn column_widths(header: &[String], rows: &[Vec<String>]) -> Vec<usize> {
    let columns = rows.first().map_or(header.len(), Vec::len);
    (0..columns)
        .map(|i| rows.iter().map(|r| r[i].width()).chain(header.get(i).map(|h| h.width())).max().unwrap_or(0))
        .collect()
}

/// The document boxed under `title`.
pub fn render(title: &str, doc: &Value) -> String {
    let mut blocks = Vec::new();
    collect("", doc, &mut blocks);
    let names = blocks.iter().flat_map(|b| match b {
        Block::Pairs(p) => p.iter().map(|(k, _)| k.width()).max(),
        _ => None,
    });
    let key_width = names.max().unwrap_or(0);
    // The inside width: the widest title, name | value row or row of columns.
    let mut inner = title.width();
    for b in &blocks {
        let need = match b {
            Block::Title(t) => t.width(),
            Block::Pairs(p) => p.iter().map(|(_, v)| key_width + 3 + v.width()).max().unwrap_or(0),
            Block::Rows { header, rows } => {
                let w = column_widths(header, rows);
                w.iter().sum::<usize>() + 3 * w.len().saturating_sub(1)
            }
        };
        inner = inner.max(need);
    }
    let rule = format!("+{}+", "-".repeat(inner + 2));
    let line = |text: String| format!("| {} |", pad(&text, inner));
    let mut out = vec![rule.clone(), line(format!("{}{title}", " ".repeat((inner - title.width()) / 2))), rule.clone()];
    for b in &blocks {
        match b {
            Block::Title(t) => {
                out.push(line(t.clone()));
                out.push(rule.clone());
            }
            Block::Pairs(pairs) => {
                out.extend(pairs.iter().map(|(k, v)| line(format!("{} | {v}", pad(k, key_width)))));
                out.push(rule.clone());
            }
            Block::Rows { header, rows } => {
                let widths = column_widths(header, rows);
                let row = |cells: &[String]| {
                    let last = cells.len().saturating_sub(1);
                    let padded: Vec<String> = cells
                        .iter()
                        .enumerate()
                        .map(|(i, c)| if i == last { c.clone() } else { pad(c, widths[i]) })
                        .collect();
                    line(padded.join(" | "))
                };
                if !header.is_empty() {
                    out.push(row(header));
                    out.push(rule.clone());
                }
                out.extend(rows.iter().map(|r| row(r)));
                out.push(rule.clone());
            }
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_value_is_boxed_in_aligned_rows() {
        let doc = json!({
            "stack": "demo",
            "zip_bytes": 4358340,
            "uploaded": true,
            "outputs": {"stream_name": "demo-Stream", "table_name": "demo-EventData", "tags": ["a", "b"]},
            "shards": [{"id": "shardId-0", "records": 10}, {"id": "shardId-1", "records": 2, "closed": true}],
            "summary": [["keys", "Username, Id"], ["ordering", "none"]],
            "message": "two\nlines",
        });
        let text = render("deploy", &doc);
        let lines: Vec<&str> = text.lines().collect();
        let width = lines[0].width();
        assert!(lines.iter().all(|l| l.width() == width), "one width:\n{text}");
        assert!(lines[1].contains("deploy"));
        for want in [
            "| stack       | demo ",
            "| zip_bytes   | 4358340 ",
            "| message     | two lines ",
            "| outputs ",
            "| tags        | a, b ",
            "| id        | records | closed ",
            "| shardId-1 | 2       | true ",
            "| ordering | none ",
        ] {
            assert!(lines.iter().any(|l| l.starts_with(want)), "{want:?} in\n{text}");
        }
        // Nested sections come after the top level's own values.
        let at = |s: &str| lines.iter().position(|l| l.starts_with(s)).expect(s);
        assert!(at("| stack ") < at("| outputs ") && at("| outputs ") < at("| shards "));
    }

    #[test]
    fn wide_characters_keep_the_box_straight() {
        let text = render("scan", &json!({"user": "山田太郎", "n": 1}));
        let widths: Vec<usize> = text.lines().map(UnicodeWidthStr::width).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{text}");
    }
}
