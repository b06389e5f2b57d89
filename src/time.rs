//! Times as the pipeline reads and writes them: event times in the formats schemas name (Twitter's
//! `created_at`, RFC 3339, epoch seconds or milliseconds), always stored as ISO-8601 UTC with
//! milliseconds; Kinesis arrival times; and Twitter's format for the producers. Pure: no AWS here.
//! The code is the package `stream-time` (src/time), compiled at opt-level 3 because every record
//! reads its time there; this module re-exports it and holds its tests.

pub use stream_time::*;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    /// The fast path by itself, as `parse` uses it: ISO text of a Twitter time.
    fn twitter_time_to_iso(s: &str) -> Option<String> {
        iso_from_millis(twitter_millis(s)?)
    }

    /// `iso_timestamp` by chrono's parser and formatter alone: what the fast path is held to.
    fn chrono_iso(created_at: &str) -> Option<String> {
        let t = DateTime::parse_from_str(created_at, TWITTER_TIME_FORMAT)
            .or_else(|_| DateTime::parse_from_rfc3339(created_at))
            .ok()?;
        Some(t.with_timezone(&Utc).format(ISO_MILLIS_FORMAT).to_string())
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
        /// (day 0 or 32, hour 24, second 60, a wrong weekday, odd offsets, years off four digits, every
        /// leap-year rule).
        #[test]
        fn the_fast_timestamp_path_agrees_with_chrono(
            weekday in 0usize..7, month in 0usize..12, day in 0u32..33, hour in 0u32..26, minute in 0u32..61,
            second in 0u32..62, sign in proptest::sample::select(vec!['+', '-', ' ']), oh in 0u32..26,
            om in 0u32..61, year in proptest::sample::select(vec![0, 999, 1000, 1900, 1970, 2000, 2018, 2024, 2100, 9999, 10000]),
        ) {
            const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            let s = format!(
                "{} {} {day:02} {hour:02}:{minute:02}:{second:02} {sign}{oh:02}{om:02} {year:04}",
                DAYS[weekday], MONTHS[month]
            );
            proptest::prop_assert_eq!(iso_timestamp(&s), chrono_iso(&s), "{}", s);
        }

        /// Every Twitter time chrono writes with four-digit years, at any offset, is the fast path's
        /// to read (chrono is only the fallback), to the millisecond chrono reads.
        #[test]
        fn the_fast_timestamp_path_takes_every_time_chrono_writes(
            secs in -62_167_219_200i64..253_402_300_800, minutes in -1439i32..1440,
        ) {
            let utc = DateTime::from_timestamp(secs, 0).expect("in range");
            let zone = chrono::FixedOffset::east_opt(minutes * 60).expect("offset");
            let text = utc.with_timezone(&zone).format(TWITTER_TIME_FORMAT).to_string();
            proptest::prop_assume!(text.len() == 30, "a local year of four digits: {}", text);
            proptest::prop_assert_eq!(twitter_millis(&text), Some(secs * 1000), "{}", text);
        }

        /// The digit-by-digit ISO text is chrono's `%Y-%m-%dT%H:%M:%S%.3fZ`, across chrono's whole
        /// range (signed five-digit years included) and around the four-digit years' edges.
        #[test]
        fn iso_text_is_chronos(
            millis in proptest::prop_oneof![
                -8_210_266_876_800_000i64..8_210_298_412_799_999,
                // Years 0 to 9999, the ones written without chrono.
                -62_167_219_200_000i64..253_402_300_800_000,
                -62_167_219_300_000i64..-62_167_219_100_000,
                253_402_300_700_000i64..253_402_300_900_000,
            ]
        ) {
            let chrono = DateTime::from_timestamp_millis(millis).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
            proptest::prop_assert_eq!(iso_from_millis(millis), chrono.clone());
            let t = DateTime::from_timestamp_millis(millis).expect("in range");
            proptest::prop_assert_eq!(Some(iso_text(t)), chrono);
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
        // Leap days by every rule: 2000 has one (divisible by 400), 2024 too, 1900 has none.
        assert_eq!(twitter_millis("Tue Feb 29 12:00:00 +0000 2000"), Some(951_825_600_000));
        assert_eq!(twitter_millis("Thu Feb 29 12:00:00 +0000 2024"), Some(1_709_208_000_000));
        assert_eq!(twitter_millis("Thu Feb 29 12:00:00 +0000 1900"), None);
        // A leap second keeps its ":60", as chrono writes it.
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_500))
            .expect("a leap second")
            .and_utc();
        assert_eq!(iso_text(leap), "2016-12-31T23:59:60.500Z");
    }

    /// Every day number of every month, under every weekday, in leap and common years of each
    /// rule: the fast path takes exactly the dates chrono takes, and reads them as chrono does.
    #[test]
    fn the_fast_timestamp_path_knows_the_calendar_as_chrono_does() {
        const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let mut taken = 0;
        for year in [0, 1900, 2000, 2023, 2024] {
            for month in MONTHS {
                for day in 0..=32 {
                    for weekday in DAYS {
                        let s = format!("{weekday} {month} {day:02} 12:00:00 +0000 {year:04}");
                        let chrono =
                            DateTime::parse_from_str(&s, TWITTER_TIME_FORMAT).ok().map(|t| t.timestamp_millis());
                        assert_eq!(twitter_millis(&s), chrono, "{s}");
                        taken += usize::from(chrono.is_some());
                    }
                }
            }
        }
        assert_eq!(taken, 366 * 3 + 365 * 2, "one weekday for each day of the five years");
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

    /// `quick_millis` says only what `parse` says: when it answers, `parse` reads the same
    /// milliseconds with an ISO text of `ISO_TEXT_BYTES`; and it answers the common case of each
    /// format, after formats that refuse the text. Years past 9999 or before 0, and Twitter times
    /// `twitter_millis` leaves to chrono, are left to `parse`.
    #[test]
    fn quick_millis_is_parse_without_the_text() {
        use Format::*;
        let cases: [(&str, &[Format], bool, bool); 24] = [
            ("Wed Oct 10 20:19:24 +0000 2018", &[Twitter, Rfc3339], false, true),
            ("Wed Oct 10 20:19:24 +0200 2018", &[Twitter], false, true),
            ("Thu Oct 10 20:19:24 +0000 2018", &[Twitter, Rfc3339], false, false),
            ("Wed Oct 10 20:19:24 +0000 12018", &[Twitter], false, false),
            ("2018-10-10T20:19:24Z", &[Twitter, Rfc3339], false, false),
            ("2018-10-10T20:19:24Z", &[EpochMillis, Rfc3339, Twitter], false, true),
            ("Wed Oct 10 20:19:24 +0000 2018", &[EpochSeconds, Rfc3339, Twitter], false, true),
            ("2018-10-10T20:19:24.123456+02:00", &[Rfc3339], false, true),
            ("2016-12-31T23:59:60Z", &[Rfc3339], false, true),
            ("9999-12-31T23:59:59.999Z", &[Rfc3339], false, true),
            ("0000-01-01T00:00:00Z", &[Rfc3339], false, true),
            ("soon", &[Rfc3339, Twitter], false, false),
            ("1539202764", &[EpochSeconds], true, true),
            ("1539202764.5", &[Rfc3339, EpochSeconds], true, true),
            ("1539202764123", &[EpochMillis], false, true),
            ("253402300799", &[EpochSeconds], true, true),
            ("253402300800", &[EpochSeconds], true, false),
            ("-62167219200", &[EpochSeconds], true, true),
            ("-62167219201", &[EpochSeconds], true, false),
            ("253402300800000", &[EpochMillis], true, false),
            ("-62167219200001", &[EpochMillis], true, false),
            ("1e3", &[EpochMillis], true, true),
            ("12", &[Twitter], true, false),
            ("", &[EpochSeconds], false, false),
        ];
        for (text, formats, number, quick) in cases {
            let got = quick_millis(text, formats, number);
            assert_eq!(got.is_some(), quick, "{text:?} in {formats:?}");
            let read: Vec<Format> = formats.iter().copied().filter(|f| !number || f.is_epoch()).collect();
            let parsed = parse(text, &read);
            if let Some(millis) = got {
                let parsed = parsed.unwrap_or_else(|| panic!("{text:?}: quick without parse"));
                assert_eq!((parsed.millis, parsed.iso.len()), (millis, ISO_TEXT_BYTES), "{text:?}");
            }
        }
        // Out of the years 0 to 9999 the text is longer, so these are left to `parse`.
        assert_eq!(parse("253402300800", &[EpochSeconds]).map(|t| t.iso.len()), Some(26));
        assert_eq!(parse("-62167219201", &[EpochSeconds]).map(|t| t.iso.len()), Some(25));
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
