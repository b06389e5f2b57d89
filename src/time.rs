//! Times as the pipeline reads and writes them: event times in the formats schemas name (Twitter's
//! `created_at`, RFC 3339, epoch seconds or milliseconds), always stored as ISO-8601 UTC with
//! milliseconds; Kinesis arrival times; and Twitter's format for the producers. Pure: no AWS here.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};

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
        Format::Twitter => match twitter_naive(text) {
            Some(t) => t.and_utc(),
            None => DateTime::parse_from_str(text, TWITTER_TIME_FORMAT).ok()?.with_timezone(&Utc),
        },
        Format::Rfc3339 => DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc),
        Format::EpochSeconds => return from_millis(epoch_millis(text, 1000.0)?),
        Format::EpochMillis => return from_millis(epoch_millis(text, 1.0)?),
    };
    let millis = t.timestamp_millis();
    // A leap second (":60") has no millisecond of its own: chrono's text keeps it, as it always has.
    let iso = if t.timestamp_subsec_nanos() >= 1_000_000_000 {
        t.format(ISO_MILLIS_FORMAT).to_string()
    } else {
        iso_from_millis(millis)?
    };
    Some(EventTime { millis, iso })
}

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

/// Milliseconds since the epoch as ISO-8601 UTC with milliseconds, without chrono's format
/// interpreter (it cost a third of a record in the handler); the text is chrono's `%Y-%m-%dT%H:%M:%S%.3fZ`
/// (years past 9999 or before 0 carry a sign: those few are left to chrono's formatter). `None` outside
/// chrono's range.
pub fn iso_from_millis(millis: i64) -> Option<String> {
    let t = DateTime::from_timestamp_millis(millis)?.naive_utc();
    let (d, c) = (t.date(), t.time());
    if !(0..=9999).contains(&d.year()) {
        return Some(t.and_utc().format(ISO_MILLIS_FORMAT).to_string());
    }
    // Written byte by byte into a buffer of the text's shape: `format!` with six fields was most of
    // a record's time check, and pushing chars one by one still showed in the producer's profile.
    let mut out = *b"0000-00-00T00:00:00.000Z";
    for (at, value, width) in [
        (0, d.year() as u32, 4),
        (5, d.month(), 2),
        (8, d.day(), 2),
        (11, c.hour(), 2),
        (14, c.minute(), 2),
        (17, c.second(), 2),
        (20, millis.rem_euclid(1000) as u32, 3),
    ] {
        let mut v = value;
        for b in out[at..at + width].iter_mut().rev() {
            *b = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    String::from_utf8(out.to_vec()).ok()
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

/// `iso_timestamp` by chrono's parser and formatter alone: what the fast path is held to.
#[cfg(test)]
fn chrono_iso(created_at: &str) -> Option<String> {
    let t = DateTime::parse_from_str(created_at, TWITTER_TIME_FORMAT)
        .or_else(|_| DateTime::parse_from_rfc3339(created_at))
        .ok()?;
    Some(t.with_timezone(&Utc).format(ISO_MILLIS_FORMAT).to_string())
}

/// The common case of a Twitter time without chrono's format interpreter: exactly
/// "Www Mmm DD HH:MM:SS ±hhmm YYYY" with a weekday that matches the date, as chrono checks. Anything
/// else is left to chrono (`None`).
fn twitter_naive(s: &str) -> Option<NaiveDateTime> {
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
    let date = NaiveDate::from_ymd_opt(num(26, 4)? as i32, month, num(8, 2)?)?;
    if DAYS[date.weekday().num_days_from_monday() as usize][..] != b[0..3] {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let sign = match b[20] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (num(21, 2)?, num(23, 2)?);
    if om > 59 || oh > 23 {
        return None;
    }
    let local = date.and_hms_opt(hour, minute, second)?;
    Some(local - Duration::minutes(sign * i64::from(oh * 60 + om)))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path by itself, as `iso_timestamp` used it: ISO text of a Twitter time.
    fn twitter_time_to_iso(s: &str) -> Option<String> {
        iso_from_millis(twitter_naive(s)?.and_utc().timestamp_millis())
    }

    proptest::proptest! {
        // Shrunk failures are kept in tests/, beside the integration tests' (the top level is the
        // design's).
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
                "tests/proptest-regressions/time.txt",
            ))),
            ..proptest::test_runner::Config::default()
        })]
        /// The fast path answers exactly as chrono does, for valid times and for near misses
        /// (day 0 or 32, hour 24, second 60, a wrong weekday, odd offsets, years off four digits).
        #[test]
        fn the_fast_timestamp_path_agrees_with_chrono(
            weekday in 0usize..7, month in 0usize..12, day in 0u32..33, hour in 0u32..26, minute in 0u32..61,
            second in 0u32..62, sign in proptest::sample::select(vec!['+', '-', ' ']), oh in 0u32..26,
            om in 0u32..61, year in proptest::sample::select(vec![999, 1000, 1970, 2018, 2024, 2100, 9999, 10000]),
        ) {
            const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            let s = format!(
                "{} {} {day:02} {hour:02}:{minute:02}:{second:02} {sign}{oh:02}{om:02} {year:04}",
                DAYS[weekday], MONTHS[month]
            );
            proptest::prop_assert_eq!(iso_timestamp(&s), chrono_iso(&s), "{}", s);
        }

        /// The digit-by-digit ISO text is chrono's `%Y-%m-%dT%H:%M:%S%.3fZ`, across chrono's whole
        /// range (signed five-digit years included) and around the four-digit years' edges.
        #[test]
        fn iso_text_is_chronos(
            millis in proptest::prop_oneof![
                -8_210_266_876_800_000i64..8_210_298_412_799_999,
                -62_167_219_300_000i64..-62_167_219_100_000,
                253_402_300_700_000i64..253_402_300_900_000,
            ]
        ) {
            let chrono = DateTime::from_timestamp_millis(millis).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
            proptest::prop_assert_eq!(iso_from_millis(millis), chrono);
        }
    }

    #[test]
    fn the_fast_timestamp_path_takes_real_tweets_and_leaves_the_rest_to_chrono() {
        let t = "Wed Oct 10 20:19:24 +0000 2018";
        assert_eq!(twitter_time_to_iso(t).as_deref(), Some("2018-10-10T20:19:24.000Z"));
        assert_eq!(twitter_time_to_iso("Thu Oct 11 01:19:24 +0500 2018").as_deref(), Some("2018-10-10T20:19:24.000Z"));
        assert_eq!(twitter_time_to_iso("Wed Oct 10 20:19:24 -0130 2018").as_deref(), Some("2018-10-10T21:49:24.000Z"));
        for other in ["Thu Oct 10 20:19:24 +0000 2018", "2018-10-10T20:19:24Z", "Wed Oct 10 20:19:24 +0000 2018 "] {
            assert_eq!(twitter_time_to_iso(other), None, "{other}");
        }
        assert_eq!(iso_timestamp("2018-10-10T22:19:24.5+02:00").as_deref(), Some("2018-10-10T20:19:24.500Z"));
    }

    proptest::proptest! {
        // Shrunk failures are kept in tests/, beside the integration tests' (the top level is the
        // design's).
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
                "tests/proptest-regressions/time.txt",
            ))),
            ..proptest::test_runner::Config::default()
        })]
        /// RFC 3339 through `parse` gives chrono's own ISO text, for any instant of years 1000-9999
        /// and any offset, sub-millisecond digits included.
        #[test]
        fn rfc3339_times_read_as_chrono_reads_them(secs in -30_000_000_000i64..250_000_000_000, nanos in 0u32..1_000_000_000, minutes in -1439i32..1440) {
            let utc = DateTime::from_timestamp(secs, nanos).expect("in range");
            // RFC 3339 offsets are whole minutes.
            let zone = chrono::FixedOffset::east_opt(minutes * 60).expect("offset");
            let text = utc.with_timezone(&zone).to_rfc3339();
            let want = Some(utc.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
            proptest::prop_assert_eq!(parse(&text, &[Format::Rfc3339]).map(|t| t.iso), want, "{}", text);
        }
    }

    #[test]
    fn epoch_times_in_seconds_and_milliseconds() {
        let at = |t: &str, f: Format| parse(t, &[f]).map(|t| (t.millis, t.iso));
        assert_eq!(
            at("1539202764", Format::EpochSeconds),
            Some((1_539_202_764_000, "2018-10-10T20:19:24.000Z".into()))
        );
        assert_eq!(at("1539202764.5", Format::EpochSeconds).map(|t| t.0), Some(1_539_202_764_500));
        assert_eq!(at("1539202764123", Format::EpochMillis).map(|t| t.1), Some("2018-10-10T20:19:24.123Z".into()));
        assert_eq!(at("1.539202764123e12", Format::EpochMillis).map(|t| t.0), Some(1_539_202_764_123));
        assert_eq!(at("-1", Format::EpochMillis).map(|t| t.1), Some("1969-12-31T23:59:59.999Z".into()));
        assert_eq!(at("253402300800", Format::EpochSeconds).map(|t| t.1), Some("+10000-01-01T00:00:00.000Z".into()));
        for bad in ["", "soon", "1e300", "0x10", "1e13"] {
            assert_eq!(at(bad, Format::EpochSeconds), None, "{bad}");
        }
        assert_eq!(at("2018-10-10T20:19:24Z", Format::EpochSeconds), None);
        // The first format that takes the text wins.
        assert_eq!(
            parse("1539202764", &[Format::Rfc3339, Format::EpochSeconds]).map(|t| t.millis),
            Some(1_539_202_764_000)
        );
    }

    #[test]
    fn durations_are_a_number_and_a_unit() {
        assert_eq!(parse_duration("90s"), Some(std::time::Duration::from_secs(90)));
        assert_eq!(parse_duration("30d"), Some(std::time::Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("2w"), Some(std::time::Duration::from_secs(2 * 604_800)));
        for bad in ["", "d", "30", "30 d", "0s", "-5m", "1.5h", "3y"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
