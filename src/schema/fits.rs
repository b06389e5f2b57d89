//! `Schema::surely_fits`: whether a record makes an item, told without making it (producers).

use super::*;

impl Schema {
    /// True only when `build` would make an item of `caps` (no document members), told without
    /// making it: the producer checks every record and keeps none of the item, whose values cost
    /// an allocation each. It takes the common case only (string keys, a time `quick_millis`
    /// reads, a TTL after the event time, no version, plain projected values, sizes counted as
    /// `Item::size` counts them); anything else, and every refusal, is `false`, and `build` says.
    pub(super) fn surely_fits(&self, caps: &[Option<Found<'_>>]) -> bool {
        // A string key's value and its size, when `key` would take it.
        let string_key = |k: &KeyPlan| -> Option<usize> {
            if k.key_type != KeyType::S {
                return None;
            }
            let value = k.sources.slots.iter().find_map(|&s| match caps[s].as_ref()? {
                Found::Str(s) if !s.is_empty() => Some(s.len()),
                Found::Num(n) => Some(n.len()),
                _ => None,
            })?;
            (value <= k.max_bytes).then_some(value)
        };
        let mut bytes = 0;
        let mut add = |at: usize, value: usize| bytes += self.names[at].len() + value;
        let Some(partition) = string_key(&self.partition) else { return false };
        add(0, partition);
        if let Some(sort) = &self.sort {
            let Some(value) = string_key(sort) else { return false };
            add(1, value);
        }
        let mut millis = None;
        if let Some((sources, formats, required)) = &self.time {
            match first(caps, &sources.slots) {
                Some(found @ (Found::Str(_) | Found::Num(_))) => {
                    let number = matches!(found, Found::Num(_));
                    match time::quick_millis(found.text().unwrap_or_default(), formats, number) {
                        Some(m) => {
                            millis = Some(m);
                            add(self.at.time, time::ISO_TEXT_BYTES);
                        }
                        None => return false,
                    }
                }
                Some(_) => return false,
                None if *required => return false,
                None => {}
            }
        }
        match (&self.ttl, millis) {
            (None, _) | (Some(TtlPlan::After(_)), None) => {}
            (Some(TtlPlan::After(after)), Some(m)) => {
                let seconds = m.div_euclid(1000).saturating_add(*after);
                add(
                    self.at.ttl,
                    Val::digits_size(seconds.unsigned_abs().checked_ilog10().map_or(1, |d| d as usize + 1)),
                );
            }
            (Some(TtlPlan::Field(..)), _) => return false,
        }
        if self.version.is_some() {
            return false;
        }
        for (i, p) in self.projected.iter().enumerate() {
            let size = match first(caps, &p.sources.slots) {
                None if p.required && p.default.is_none() => return false,
                None => p.default.as_ref().map(Val::size),
                Some(Found::Str(s)) => Some(s.len()),
                Some(Found::Bool(_)) => Some(1),
                Some(Found::Num(n)) if number::check(n).is_ok() => Some(Val::number_size(n)),
                Some(_) => return false,
            };
            if let Some(size) = size {
                add(self.at.projected + i, size);
            }
        }
        if self.required.iter().any(|r| first(caps, &r.slots).is_none()) {
            return false;
        }
        bytes <= MAX_ITEM_BYTES
    }
}
