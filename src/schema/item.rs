//! A table item as a schema makes it, held compactly until the call that sends it: `Val` is a
//! DynamoDB value (S, N, B, BOOL, NULL, L, M) in 24 bytes, names of the schema's own attributes
//! are not repeated per item, and `size` counts as DynamoDB counts toward its 400 KB.
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

/// One DynamoDB value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Val {
    /// String.
    S(Box<str>),
    /// Number, as decimal text.
    N(Box<str>),
    /// Binary.
    B(Box<[u8]>),
    /// Boolean.
    Bool(bool),
    /// Null.
    Null,
    /// List.
    L(Box<[Val]>),
    /// Map, in the event's order.
    M(Box<[(Box<str>, Val)]>),
}

impl Val {
    /// The value's size as DynamoDB counts it: strings and binary by their bytes, a number by one
    /// byte per two significant digits plus one, booleans and null one byte, lists and maps three
    /// bytes plus one per element and the elements (and, for maps, their names).
    pub fn size(&self) -> usize {
        match self {
            Val::S(s) => s.len(),
            Val::N(n) => Val::number_size(n),
            Val::B(b) => b.len(),
            Val::Bool(_) | Val::Null => 1,
            Val::L(items) => 3 + items.iter().map(|v| v.size() + 1).sum::<usize>(),
            Val::M(entries) => 3 + entries.iter().map(|(k, v)| k.len() + v.size() + 1).sum::<usize>(),
        }
    }

    /// The size DynamoDB counts for a number of this text: its digits, two a byte, and one byte.
    pub fn number_size(text: &str) -> usize {
        Val::digits_size(text.bytes().filter(u8::is_ascii_digit).count())
    }

    /// The size DynamoDB counts for a number of this many digits.
    pub fn digits_size(digits: usize) -> usize {
        digits.div_ceil(2) + 1
    }

    /// The value as the SDK sends it (a copy; `String::from`, as `to_string` on a `Box<str>`
    /// goes through its `Display` and the formatter).
    pub fn to_attribute(&self) -> AttributeValue {
        match self {
            Val::S(s) => AttributeValue::S(String::from(&**s)),
            Val::N(n) => AttributeValue::N(String::from(&**n)),
            Val::B(b) => AttributeValue::B(Blob::new(b.to_vec())),
            Val::Bool(b) => AttributeValue::Bool(*b),
            Val::Null => AttributeValue::Null(true),
            Val::L(items) => AttributeValue::L(items.iter().map(Val::to_attribute).collect()),
            Val::M(entries) => {
                AttributeValue::M(entries.iter().map(|(k, v)| (String::from(&**k), v.to_attribute())).collect())
            }
        }
    }

    /// The text of a key value, as `scan-table` and `MemoryStore` name it: a string as it is, a
    /// number's canonical text, binary in base64.
    pub fn key_text(&self) -> String {
        match self {
            Val::S(s) | Val::N(s) => s.to_string(),
            Val::B(b) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(b)
            }
            other => format!("{other:?}"),
        }
    }
}

/// A table item: the schema's own attributes (keys, time, TTL, version, projected ones: in the
/// order of `Schema::attribute_names`, absent ones `None`), then the event's fields (document mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub(super) fixed: Box<[Option<Val>]>,
    pub(super) rest: Box<[(Box<str>, Val)]>,
}

impl Item {
    /// The partition key's value.
    pub fn partition_key(&self) -> &Val {
        // Every item is built with its partition key first; `Schema::item` refuses records without one.
        self.fixed[0].as_ref().expect("an item always has its partition key")
    }

    /// The value of the schema's attribute number `index`, if the item has it.
    pub fn fixed(&self, index: usize) -> Option<&Val> {
        self.fixed.get(index).and_then(Option::as_ref)
    }

    /// The item's attributes as the SDK sends them, named by `names` (the schema's).
    pub fn attributes(&self, names: &[Box<str>]) -> HashMap<String, AttributeValue> {
        let mut out = HashMap::with_capacity(self.fixed.len() + self.rest.len());
        for (name, value) in self.rest.iter() {
            out.insert(String::from(&**name), value.to_attribute());
        }
        for (name, value) in names.iter().zip(self.fixed.iter()) {
            if let Some(v) = value {
                out.insert(String::from(&**name), v.to_attribute());
            }
        }
        out
    }

    /// The item's size as DynamoDB counts it (names included).
    pub fn size(&self, names: &[Box<str>]) -> usize {
        let fixed: usize =
            names.iter().zip(self.fixed.iter()).filter_map(|(n, v)| v.as_ref().map(|v| n.len() + v.size())).sum();
        fixed + self.rest.iter().map(|(n, v)| n.len() + v.size()).sum::<usize>()
    }

    /// The item as JSON, the way `schema check` shows it: each attribute with its DynamoDB type
    /// (`{"S": "…"}`, `{"N": "…"}`, `{"M": {…}}`), in the schema's order, then the event's.
    pub fn to_json(&self, names: &[Box<str>]) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (name, value) in names.iter().zip(self.fixed.iter()) {
            if let Some(v) = value {
                map.insert(name.to_string(), typed_json(v));
            }
        }
        for (name, value) in self.rest.iter() {
            map.entry(name.to_string()).or_insert_with(|| typed_json(value));
        }
        serde_json::Value::Object(map)
    }
}

/// A value in DynamoDB's JSON form: `{"S": "x"}`, `{"N": "1"}`, `{"L": [...]}`, ….
fn typed_json(v: &Val) -> serde_json::Value {
    use serde_json::{Value, json};
    match v {
        Val::S(s) => json!({ "S": s.as_ref() }),
        Val::N(n) => json!({ "N": n.as_ref() }),
        Val::B(_) => json!({ "B": v.key_text() }),
        Val::Bool(b) => json!({ "BOOL": b }),
        Val::Null => json!({ "NULL": true }),
        Val::L(items) => json!({ "L": items.iter().map(typed_json).collect::<Vec<Value>>() }),
        Val::M(entries) => {
            let map: serde_json::Map<String, Value> =
                entries.iter().map(|(k, v)| (k.to_string(), typed_json(v))).collect();
            json!({ "M": map })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_as_dynamodb_counts() {
        assert_eq!(Val::S("héllo".into()).size(), 6);
        assert_eq!(Val::N("12345".into()).size(), 4, "three bytes of digits, one more");
        assert_eq!(Val::N("-1.5".into()).size(), 2);
        assert_eq!(Val::Bool(true).size(), 1);
        assert_eq!(Val::Null.size(), 1);
        assert_eq!(Val::L(vec![Val::S("ab".into()), Val::Null].into()).size(), 3 + 3 + 2);
        assert_eq!(Val::M(vec![("k".into(), Val::S("v".into()))].into()).size(), 3 + 1 + 1 + 1);
        let names: Vec<Box<str>> = vec!["Id".into(), "Gone".into()];
        let item = Item {
            fixed: vec![Some(Val::S("1".into())), None].into(),
            rest: vec![("x".into(), Val::Bool(false))].into(),
        };
        assert_eq!(item.size(&names), 2 + 1 + 1 + 1);
        let attrs = item.attributes(&names);
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs["Id"], AttributeValue::S("1".into()));
        assert_eq!(attrs["x"], AttributeValue::Bool(false));
    }
}
