//! The event read without serde, for events as Lambda writes them: every value a string without
//! escapes, but the `kinesis` object, the `Records` list and the arrival time's number. Anything
//! else — an escape, a value of another kind where a string was expected, a field given twice, a
//! field that must be there and is not, bad JSON — gives up (`None`), and `parse` hands the text to
//! serde_json, so that every event reads as serde_json reads it and every error is in its words.
//! Why: most of an event is the records' base64 data, which serde_json's parser scans a word at a
//! time (13 % of the handler's CPU on a 6 MB event of full-size tweets), and this reader 16 bytes a
//! step in vector registers (`crate::scan`).

use std::borrow::Cow;

use super::{Batch, BatchRecord, KinesisRef};

/// `text` as a `Batch`, or `None` to let serde_json read it.
pub fn batch(text: &str) -> Option<Batch<'_>> {
    let mut r = Reader { text, pos: 0 };
    r.ws();
    let mut records = None;
    r.object(|r, key| match key {
        "Records" if records.is_none() => {
            records = Some(r.records()?);
            Some(())
        }
        "Records" => None,
        _ => r.string().map(drop),
    })?;
    r.ws();
    (r.pos == text.len()).then(|| Batch { records: records.unwrap_or_default() })
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Past `b` (and the whitespace after it) if it is next.
    fn eat(&mut self, b: u8) -> bool {
        let next = self.peek() == Some(b);
        if next {
            self.pos += 1;
            self.ws();
        }
        next
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        (self.peek()? == b'"').then_some(())?;
        let start = self.pos + 1;
        let end = crate::scan::special(self.text.as_bytes(), start)?;
        (self.text.as_bytes()[end] == b'"').then_some(())?;
        self.pos = end + 1;
        self.ws();
        self.text.get(start..end)
    }

    /// An object: `member` reads each member's value (the cursor on it) by its key.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{').then_some(())?;
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':').then_some(())?;
            member(self, key)?;
            if self.eat(b'}') {
                return Some(());
            }
            self.eat(b',').then_some(())?;
        }
    }

    fn records(&mut self) -> Option<Vec<BatchRecord<'a>>> {
        self.eat(b'[').then_some(())?;
        let mut records = Vec::new();
        if self.eat(b']') {
            return Some(records);
        }
        loop {
            records.push(self.record()?);
            if self.eat(b']') {
                return Some(records);
            }
            self.eat(b',').then_some(())?;
        }
    }

    fn record(&mut self) -> Option<BatchRecord<'a>> {
        let (mut kinesis, mut event_id, mut arn) = (None, None, None);
        self.object(|r, key| match key {
            "kinesis" => once(&mut kinesis, r.kinesis()?),
            "eventID" => once(&mut event_id, r.string()?),
            "eventSourceARN" => once(&mut arn, r.string()?),
            _ => r.string().map(drop),
        })?;
        Some(BatchRecord {
            kinesis: kinesis?,
            event_id: Cow::Borrowed(event_id.unwrap_or_default()),
            event_source_arn: Cow::Borrowed(arn.unwrap_or_default()),
        })
    }

    fn kinesis(&mut self) -> Option<KinesisRef<'a>> {
        let (mut key, mut sequence, mut data, mut arrival) = (None, None, None, None);
        self.object(|r, name| match name {
            "partitionKey" => once(&mut key, r.string()?),
            "sequenceNumber" => once(&mut sequence, r.string()?),
            "data" => once(&mut data, r.string()?),
            "approximateArrivalTimestamp" => once(&mut arrival, r.arrival()?),
            _ => r.string().map(drop),
        })?;
        Some(KinesisRef {
            partition_key: Cow::Borrowed(key.unwrap_or_default()),
            sequence_number: Cow::Borrowed(sequence?),
            data: Cow::Borrowed(data.unwrap_or_default()),
            approximate_arrival_timestamp: arrival.unwrap_or_default(),
        })
    }

    /// The arrival time: a number, read by serde_json as `number_or_string` reads it, or a string,
    /// read as it reads one.
    fn arrival(&mut self) -> Option<f64> {
        if self.peek()? == b'"' {
            return self.string()?.parse().ok();
        }
        let start = self.pos;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
            self.pos += 1;
        }
        let n = serde_json::from_str(&self.text[start..self.pos]).ok()?;
        self.ws();
        Some(n)
    }
}

/// Sets a field read once; `None` (serde's "duplicate field") the second time.
fn once<T>(field: &mut Option<T>, value: T) -> Option<()> {
    field.is_none().then(|| *field = Some(value))
}
