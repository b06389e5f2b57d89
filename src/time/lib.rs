//! `stream-time`: event times as the pipeline reads and writes them — the formats schemas name
//! (Twitter's `created_at`, RFC 3339, epoch seconds or milliseconds), always stored as ISO-8601 UTC
//! with milliseconds; Kinesis arrival times; and Twitter's format for the producers. Pure: no AWS
//! here. A package of its own so that it is compiled at opt-level 3 (every record the producer
//! checks and the function stores reads its time here; see Cargo.toml); `stream`'s `time` module
//! re-exports it and holds its tests.

#![forbid(unsafe_code)]

use chrono::{DateTime, Utc};

/// Twitter v1.1's `created_at` format: "Wed Oct 10 20:19:24 +0000 2018".
pub const TWITTER_TIME_FORMAT: &str = "%a %b %d %H:%M:%S %z %Y";

/// The stored time's text, in chrono's terms: ISO-8601 UTC with milliseconds.
pub const ISO_MILLIS_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// A format an event time can come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Twitter's `created_at`: "Wed Oct 10 20:19:24 +0000 2018" (a JSON string).
    Twitter,
    /// RFC 3339: "2018-10-10T20:19:24.123Z", "2018-10-10T22:19:24+02:00" (a JSON string).
    Rfc3339,
    /// Seconds since the epoch, fractions allowed (a JSON number, or a string of one).
    EpochSeconds,
    /// Milliseconds since the epoch (a JSON number, or a string of one).
    EpochMillis,
}

impl Format {
    /// Every format, by the name schemas give it.
    pub const ALL: [(&'static str, Format); 4] = [
        ("twitter", Format::Twitter),
        ("rfc3339", Format::Rfc3339),
        ("epoch_seconds", Format::EpochSeconds),
        ("epoch_millis", Format::EpochMillis),
    ];

    /// The name a schema gives it.
    pub fn name(self) -> &'static str {
        Format::ALL.iter().find(|(_, f)| *f == self).map_or("", |(n, _)| n)
    }

    /// How reasons name it: "Twitter", "RFC 3339", "epoch seconds", "epoch milliseconds".
    pub fn label(self) -> &'static str {
        match self {
            Format::Twitter => "Twitter",
            Format::Rfc3339 => "RFC 3339",
            Format::EpochSeconds => "epoch seconds",
            Format::EpochMillis => "epoch milliseconds",
        }
    }

    /// True for the formats written as JSON numbers (or strings of digits).
    pub fn is_epoch(self) -> bool {
        matches!(self, Format::EpochSeconds | Format::EpochMillis)
    }
}

/// An event time: milliseconds since the epoch, and the ISO-8601 text stored for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTime {
    /// Milliseconds since the epoch (what TTLs and time versions are computed from).
    pub millis: i64,
    /// ISO-8601 UTC with milliseconds: "2018-10-10T20:19:24.000Z".
    pub iso: String,
}

/// Reads `text` (a JSON string's content, or a JSON number's text) in the first of `formats` that
/// takes it.
pub fn parse(text: &str, formats: &[Format]) -> Option<EventTime> {
    formats.iter().find_map(|f| parse_one(text, *f))
}

fn parse_one(text: &str, format: Format) -> Option<EventTime> {
    let t = match format {
        Format::Twitter => match twitter_millis(text) {
            Some(millis) => return from_millis(millis),
            None => DateTime::parse_from_str(text, TWITTER_TIME_FORMAT).ok()?.with_timezone(&Utc),
        },
        Format::Rfc3339 => DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc),
        Format::EpochSeconds => return from_millis(epoch_millis(text, 1000.0)?),
        Format::EpochMillis => return from_millis(epoch_millis(text, 1.0)?),
    };
    Some(EventTime { millis: t.timestamp_millis(), iso: iso_text(t) })
}

/// `t` as the stored text, ISO-8601 UTC with milliseconds (`iso_from_millis`'s text). A leap second
/// (":60") has no millisecond of its own: chrono's text keeps it, as it always has.
pub fn iso_text(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_nanos() >= 1_000_000_000 {
        return t.format(ISO_MILLIS_FORMAT).to_string();
    }
    // Every DateTime is within chrono's range, which is iso_from_millis's.
    iso_from_millis(t.timestamp_millis()).unwrap_or_else(|| t.format(ISO_MILLIS_FORMAT).to_string())
}

/// The common case of `parse`, without its ISO text: `Some(millis)` only when `parse` reads
/// `text` (`number`: a JSON number, which the epoch formats alone read) as that time in years 0
/// to 9999, whose ISO text is then `ISO_TEXT_BYTES` long. It tries the formats in order as
/// `parse` does, passing over those that surely refuse the text (RFC 3339, the epoch ones);
/// a Twitter time only by `twitter_millis`. `None` says nothing: ask `parse`. For producers,
/// which check a record's time and never store it.
pub fn quick_millis(text: &str, formats: &[Format], number: bool) -> Option<i64> {
    for format in formats.iter().filter(|f| !number || f.is_epoch()) {
        let millis = match format {
            Format::Twitter => twitter_millis(text)?,
            Format::Rfc3339 => match DateTime::parse_from_rfc3339(text) {
                // A leap second's text is 24 bytes too ("23:59:60.000Z").
                Ok(t) => t.timestamp_millis(),
                Err(_) => continue,
            },
            Format::EpochSeconds | Format::EpochMillis => {
                let unit = if *format == Format::EpochSeconds { 1000.0 } else { 1.0 };
                match epoch_millis(text, unit) {
                    Some(m) => m,
                    None => continue,
                }
            }
        };
        return (0..=9999).contains(&civil_from_days(millis.div_euclid(MS_PER_DAY)).0).then_some(millis);
    }
    None
}

/// The length of `iso_from_millis`'s text for years 0 to 9999: "2018-10-10T20:19:24.000Z".
pub const ISO_TEXT_BYTES: usize = 24;

fn from_millis(millis: i64) -> Option<EventTime> {
    Some(EventTime { millis, iso: iso_from_millis(millis)? })
}

/// A decimal number of `unit` milliseconds as whole milliseconds (fractions of a millisecond
/// dropped toward the past, as chrono's millisecond formatting does).
fn epoch_millis(text: &str, unit: f64) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')) {
        return None;
    }
    let value: f64 = t.parse().ok()?;
    let millis = (value * unit).floor();
    // Within chrono's range (about ±262,000 years); `iso_from_millis` refuses the rest.
    (millis.is_finite() && millis.abs() < 8e15).then_some(millis as i64)
}

/// Milliseconds in a day.
const MS_PER_DAY: i64 = 86_400_000;

/// Milliseconds since the epoch as ISO-8601 UTC with milliseconds, without chrono's calendar or
/// format interpreter (they were most of a record's time check); the text is chrono's
/// `%Y-%m-%dT%H:%M:%S%.3fZ` (years past 9999 or before 0 carry a sign: those few are left to
/// chrono's formatter). `None` outside chrono's range.
pub fn iso_from_millis(millis: i64) -> Option<String> {
    let (days, ms) = (millis.div_euclid(MS_PER_DAY), millis.rem_euclid(MS_PER_DAY));
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return DateTime::from_timestamp_millis(millis).map(|t| t.format(ISO_MILLIS_FORMAT).to_string());
    }
    let secs = (ms / 1000) as u32;
    // Written byte by byte into a buffer of the text's shape.
    let mut out = *b"0000-00-00T00:00:00.000Z";
    for (at, value, width) in [
        (0, year as u32, 4),
        (5, month, 2),
        (8, day, 2),
        (11, secs / 3600, 2),
        (14, secs / 60 % 60, 2),
        (17, secs % 60, 2),
        (20, (ms % 1000) as u32, 3),
    ] {
        let mut v = value;
        for b in out[at..at + width].iter_mut().rev() {
            *b = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    String::from_utf8(out.to_vec()).ok()
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (the calendar chrono
/// counts in; `month` 1-12, `day` already checked against the month). Howard Hinnant's
/// `days_from_civil`: years counted from March, in 400-year eras of 146,097 days.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = i64::from((153 * ((month + 9) % 12) + 2) / 5 + day - 1);
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (year, month 1-12, day) `days` after 1970-01-01: the inverse of `days_from_civil`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * from_march + 2) / 5 + 1) as u32;
    let month = if from_march < 10 { from_march + 3 } else { from_march - 9 } as u32;
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// Seconds since the epoch (Kinesis arrival times) as ISO-8601 UTC with milliseconds.
pub fn iso_millis(epoch_secs: f64) -> String {
    // Outside chrono's range, the epoch itself (chrono's default time), as before.
    iso_from_millis((epoch_secs * 1000.0).round() as i64).or_else(|| iso_from_millis(0)).unwrap_or_default()
}

/// `created_at` (Twitter's format, or RFC 3339) as ISO-8601 UTC with milliseconds:
/// "Wed Oct 10 20:19:24 +0000 2018" → "2018-10-10T20:19:24.000Z".
pub fn iso_timestamp(created_at: &str) -> Option<String> {
    parse(created_at, &[Format::Twitter, Format::Rfc3339]).map(|t| t.iso)
}

/// The common case of a Twitter time, as milliseconds since the epoch, without chrono's format
/// interpreter: exactly "Www Mmm DD HH:MM:SS ±hhmm YYYY" with a date that exists, a weekday that
/// matches it and a time of day without a leap second, as chrono checks. Anything else is left to
/// chrono (`None`). Public for `stream`'s tests, which hold it to chrono.
pub fn twitter_millis(s: &str) -> Option<i64> {
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    const DAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    let b = s.as_bytes();
    if b.len() != 30 || [3, 7, 10, 19, 25].iter().any(|&i| b[i] != b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<u32> {
        b[from..from + len].iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let month = MONTHS.iter().position(|m| m[..] == b[4..7])? as u32 + 1;
    let (year, day) = (num(26, 4)?, num(8, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 => 28 + u32::from(leap),
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day == 0 || day > days_in_month {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    // 1970-01-01 was a Thursday.
    if DAYS[(days + 3).rem_euclid(7) as usize][..] != b[0..3] {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let sign = match b[20] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (num(21, 2)?, num(23, 2)?);
    if om > 59 || oh > 23 {
        return None;
    }
    let local = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some((local - sign * i64::from(oh * 3600 + om * 60)) * 1000)
}

/// A time in Twitter's `created_at` format.
pub fn twitter_time(t: DateTime<Utc>) -> String {
    t.format("%a %b %d %H:%M:%S +0000 %Y").to_string()
}

/// A duration as schemas write it: a whole number and a unit, `90s`, `15m`, `12h`, `30d`, `2w`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(secs).filter(|s| *s > 0).map(std::time::Duration::from_secs)
}
