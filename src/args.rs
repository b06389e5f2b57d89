//! Value parsers for the commands' clap flags: numbers within AWS's ranges, and values of a
//! given form. A refused value comes back as `BadValue` — what is wrong and what to give instead,
//! with `{flag}` standing for the flag's name — so that `cli` prints our two lines.

use std::fmt;

use clap::builder::TypedValueParser;

/// A flag value that is refused: `{flag} {value} {what}`, then the hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue {
    /// The value as given.
    pub value: String,
    /// What is wrong with it ("is out of range").
    pub what: String,
    /// What to give instead; `{flag}` is replaced by the flag's name.
    pub hint: String,
}

impl BadValue {
    /// The two lines for `flag` (as `--name`).
    pub fn lines(&self, flag: &str) -> (String, String) {
        (format!("{flag} {} {}", self.value, self.what), self.hint.replace("{flag}", flag))
    }
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.value, self.what)
    }
}

impl std::error::Error for BadValue {}

/// A parser for whole numbers from `min` to `max`, as the flag's type `T`.
pub fn range<T>(min: u64, max: u64) -> impl TypedValueParser<Value = T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    numbers(min, max, format!("give {{flag}} a value from {min} to {max}"))
}

/// `range`, with the limit's source named in the hint ("PutRecords' limit").
pub fn range_of<T>(min: u64, max: u64, limit: &'static str) -> impl TypedValueParser<Value = T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    numbers(min, max, format!("give {{flag}} a value from {min} to {max} ({limit})"))
}

/// A parser for whole numbers of at least `min`, as the flag's type `T` (`--rate`, `--limit`).
pub fn at_least<T>(min: u64) -> impl TypedValueParser<Value = T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    numbers(min, u64::MAX, format!("give {{flag}} a whole number of at least {min}, or leave it out"))
}

fn numbers<T>(min: u64, max: u64, hint: String) -> impl TypedValueParser<Value = T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    clap::builder::StringValueParser::new().try_map(move |s: String| {
        let refuse = |value: String, what: &str| BadValue { value, what: what.into(), hint: hint.clone() };
        match s.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => T::try_from(n).map_err(|_| {
                // Past what the flag's type holds (an API's Integer): name that bound.
                let top = largest::<T>(min, n);
                BadValue {
                    value: s.clone(),
                    what: "is out of range".into(),
                    hint: format!("give {{flag}} a whole number from {min} to {top}"),
                }
            }),
            Ok(_) => Err(refuse(s, "is out of range")),
            Err(_) => Err(refuse(format!("{s:?}"), "is not a whole number")),
        }
    })
}

/// The largest number from `low` to `high` that `T` holds (`low` is held), by halving the gap.
fn largest<T: TryFrom<u64>>(mut low: u64, mut high: u64) -> u64 {
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if T::try_from(mid).is_ok() {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    low
}

/// A parser for an email address (`x@y.z`), or the empty string (none).
pub fn email_or_empty(s: &str) -> Result<String, BadValue> {
    let plausible = s.is_empty() || s.split_once('@').is_some_and(|(u, d)| !u.is_empty() && d.contains('.'));
    if plausible {
        Ok(s.to_string())
    } else {
        Err(BadValue {
            value: format!("{s:?}"),
            what: "is not an email address".into(),
            hint: "give an address like ops@example.com, or {flag} '' to remove it".into(),
        })
    }
}

/// A parser for a point in time, as seconds since the epoch: an RFC 3339 time
/// (`2026-11-26T09:30:00Z`, any offset) or a time ago (`90s`, `15m`, `2h`, `7d`).
pub fn point_in_time(s: &str) -> Result<f64, BadValue> {
    let refuse = |what: &str| BadValue {
        value: format!("{s:?}"),
        what: what.into(),
        hint: "give {flag} a time like 2026-11-26T09:30:00Z, or a time ago like 90s, 15m, 2h or 7d".into(),
    };
    let t = s.trim();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let unit = match t.chars().last() {
        Some('s') => Some(1.0),
        Some('m') => Some(60.0),
        Some('h') => Some(3600.0),
        Some('d') => Some(86_400.0),
        _ => None,
    };
    if let Some(unit) = unit
        && let Ok(n) = t[..t.len() - 1].parse::<u32>()
    {
        return Ok(now - f64::from(n) * unit);
    }
    let at = chrono::DateTime::parse_from_rfc3339(t).map_err(|_| refuse("is not a time"))?;
    let secs = at.timestamp() as f64 + f64::from(at.timestamp_subsec_millis()) / 1000.0;
    if secs > now + 60.0 {
        return Err(refuse("is in the future"));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Flags {
        #[arg(long, value_parser = range::<u32>(1, 500))]
        shards: Option<u32>,
        #[arg(long, value_parser = email_or_empty)]
        email: Option<String>,
        #[arg(long, value_parser = at_least::<u64>(1))]
        limit: Option<u64>,
        #[arg(long, value_parser = at_least::<i32>(1))]
        page_size: Option<i32>,
    }

    fn refused(args: &[&str]) -> BadValue {
        let err = Flags::try_parse_from(args).expect_err("refused");
        std::error::Error::source(&err).and_then(|s| s.downcast_ref::<BadValue>()).expect("our error").clone()
    }

    #[test]
    fn points_in_time_are_absolute_or_ago() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
        assert_eq!(point_in_time("2026-11-20T09:30:00.250Z"), Ok(1_795_167_000.25));
        assert_eq!(point_in_time("2026-11-20T10:30:00+01:00"), Ok(1_795_167_000.0));
        for (ago, secs) in [("90s", 90.0), ("15m", 900.0), ("2h", 7200.0), ("7d", 604_800.0)] {
            let t = point_in_time(ago).expect(ago);
            assert!((now - secs - t).abs() < 5.0, "{ago}: {t}");
        }
        for bad in ["yesterday", "15", "m", "-5m", "2026-13-01T00:00:00Z", "2999-01-01T00:00:00Z"] {
            let lines = point_in_time(bad).expect_err(bad).lines("--since");
            assert!(lines.0.starts_with(&format!("--since {bad:?} is ")), "{lines:?}");
            assert!(lines.1.contains("give --since a time like"), "{lines:?}");
        }
    }

    #[test]
    fn numbers_inside_the_range_parse_and_others_are_named() {
        assert_eq!(Flags::try_parse_from(["x", "--shards", "500"]).expect("ok").shards, Some(500));
        assert_eq!(Flags::try_parse_from(["x", "--shards", "1"]).expect("ok").shards, Some(1));
        for bad in ["0", "501"] {
            let lines = refused(&["x", "--shards", bad]).lines("--shards");
            assert_eq!(
                lines,
                (format!("--shards {bad} is out of range"), "give --shards a value from 1 to 500".into())
            );
        }
        for bad in ["-1", "many", "1.5"] {
            let lines = refused(&["x", &format!("--shards={bad}")]).lines("--shards");
            assert_eq!(lines.0, format!("--shards \"{bad}\" is not a whole number"));
            assert_eq!(lines.1, "give --shards a value from 1 to 500");
        }
    }

    #[test]
    fn lower_bounds_alone_say_so() {
        assert_eq!(Flags::try_parse_from(["x", "--limit", "18446744073709551615"]).expect("ok").limit, Some(u64::MAX));
        let lines = refused(&["x", "--limit", "0"]).lines("--limit");
        assert_eq!(
            lines,
            ("--limit 0 is out of range".into(), "give --limit a whole number of at least 1, or leave it out".into())
        );
        // Past the flag's type (an API's Integer): the hint names its top.
        assert_eq!(Flags::try_parse_from(["x", "--page-size", "2147483647"]).expect("ok").page_size, Some(i32::MAX));
        assert_eq!(
            refused(&["x", "--page-size", "2147483648"]).lines("--page-size"),
            (
                "--page-size 2147483648 is out of range".into(),
                "give --page-size a whole number from 1 to 2147483647".into()
            )
        );
    }

    #[test]
    fn emails_are_checked_by_form() {
        assert_eq!(
            Flags::try_parse_from(["x", "--email", "ops@example.com"]).expect("ok").email.as_deref(),
            Some("ops@example.com")
        );
        assert_eq!(Flags::try_parse_from(["x", "--email", ""]).expect("ok").email.as_deref(), Some(""));
        let lines = refused(&["x", "--email", "nobody"]).lines("--email");
        assert_eq!(lines.0, "--email \"nobody\" is not an email address");
        assert!(lines.1.contains("--email ''"));
    }
}
