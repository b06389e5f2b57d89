//! JSON numbers as DynamoDB's number type takes them: at most 38 significant digits, magnitudes from
//! 1E-130 to below 1E+126 (and 0). The text is kept exactly as the event wrote it; `canonical` is the
//! form DynamoDB stores (and keys compare by), and `compare` orders versions by value.
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html>

use std::cmp::Ordering;

/// Significant digits DynamoDB keeps.
pub const MAX_DIGITS: usize = 38;
/// Smallest decimal exponent of a non-zero number (1E-130).
pub const MIN_EXPONENT: i64 = -130;
/// Largest decimal exponent (9.99…E+125).
pub const MAX_EXPONENT: i64 = 125;

/// Why a number cannot be a DynamoDB number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// More significant digits than DynamoDB keeps.
    Digits(usize),
    /// Its magnitude is outside 1E-130 to 9.99…E+125.
    Range,
    /// Not a number at all.
    NotANumber,
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::Digits(n) => write!(f, "has {n} significant digits, over DynamoDB's {MAX_DIGITS}"),
            Unfit::Range => f.write_str("is outside DynamoDB's number range (1E-130 to 9.99E+125)"),
            Unfit::NotANumber => f.write_str("is not a number"),
        }
    }
}

/// A decimal read from JSON text: sign, significant digits (no leading or trailing zeros) and the
/// position of the decimal point relative to them (value = 0.DIGITS × 10^point).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    point: i64,
}

/// Reads JSON number text (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; other text is refused).
fn read(text: &str) -> Option<Decimal> {
    let b = text.as_bytes();
    let (negative, rest) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    let int_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if int_len == 0 || (int_len > 1 && rest[0] == b'0') {
        return None;
    }
    let (int, mut rest) = rest.split_at(int_len);
    let mut frac: &[u8] = &[];
    if let Some(r) = rest.strip_prefix(b".") {
        let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        (frac, rest) = r.split_at(n);
    }
    let mut exponent: i64 = 0;
    if let Some(r) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let (sign, r) = match r.first() {
            Some(b'-') => (-1, &r[1..]),
            Some(b'+') => (1, &r[1..]),
            _ => (1, r),
        };
        if r.is_empty() || !r.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // Saturates: an exponent this large is out of range whatever its digits.
        exponent = sign * r.iter().fold(0i64, |n, d| n.saturating_mul(10).saturating_add(i64::from(d - b'0')));
        rest = &[];
    }
    if !rest.is_empty() {
        return None;
    }
    let all: Vec<u8> = int.iter().chain(frac).map(|d| d - b'0').collect();
    let leading = all.iter().take_while(|d| **d == 0).count();
    let mut digits = all[leading..].to_vec();
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let point = (int.len() as i64 - leading as i64).saturating_add(exponent);
    if digits.is_empty() {
        return Some(Decimal { negative: false, digits, point: 0 });
    }
    Some(Decimal { negative, digits, point })
}

/// Checks that JSON number `text` fits DynamoDB's number type.
pub fn check(text: &str) -> Result<(), Unfit> {
    let d = read(text).ok_or(Unfit::NotANumber)?;
    if d.digits.is_empty() {
        return Ok(());
    }
    if d.digits.len() > MAX_DIGITS {
        return Err(Unfit::Digits(d.digits.len()));
    }
    // Scientific exponent of 0.DIGITS × 10^point is point − 1.
    let exponent = d.point - 1;
    if !(MIN_EXPONENT..=MAX_EXPONENT).contains(&exponent) {
        return Err(Unfit::Range);
    }
    Ok(())
}

/// The number as DynamoDB stores it: plain decimal, no exponent, no leading or trailing zeros
/// ("1.50e2" → "150", "-0.0" → "0"). `None` for text that is not a JSON number or does not fit.
pub fn canonical(text: &str) -> Option<String> {
    check(text).ok()?;
    let d = read(text)?;
    if d.digits.is_empty() {
        return Some("0".into());
    }
    let digits: String = d.digits.iter().map(|x| char::from(b'0' + x)).collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if d.negative {
        out.push('-');
    }
    let len = digits.len() as i64;
    if d.point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-d.point) as usize));
        out.push_str(&digits);
    } else if d.point >= len {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (d.point - len) as usize));
    } else {
        let (a, b) = digits.split_at(d.point as usize);
        out.push_str(a);
        out.push('.');
        out.push_str(b);
    }
    Some(out)
}

/// Orders two JSON numbers by value (`None` when either is not a number).
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (read(a)?, read(b)?);
    let sign = |d: &Decimal| {
        if d.digits.is_empty() {
            0
        } else if d.negative {
            -1
        } else {
            1
        }
    };
    let by_sign = sign(&a).cmp(&sign(&b));
    if by_sign != Ordering::Equal || sign(&a) == 0 {
        return Some(by_sign);
    }
    let magnitude = a.point.cmp(&b.point).then_with(|| a.digits.cmp(&b.digits));
    Some(if a.negative { magnitude.reverse() } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked_against_dynamodbs_limits() {
        for ok in
            ["0", "-0", "0.0", "1", "-1.5", "1e125", "9.9999999999999999999999999999999999999e125", "1e-130", "-1E-130"]
        {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        assert_eq!(check("1e126"), Err(Unfit::Range));
        assert_eq!(check("1e-131"), Err(Unfit::Range));
        assert_eq!(check("1e99999999999999999999999"), Err(Unfit::Range));
        assert_eq!(check("12345678901234567890123456789012345678"), Ok(()));
        assert_eq!(check("123456789012345678901234567890123456789"), Err(Unfit::Digits(39)));
        // Trailing zeros are not significant.
        assert_eq!(check("12345678901234567890123456789012345678000000"), Ok(()));
        for bad in ["", "-", "01", "1.", ".5", "1e", "1e+", "+1", "0x10", "NaN", "1 "] {
            assert_eq!(check(bad), Err(Unfit::NotANumber), "{bad:?}");
        }
    }

    #[test]
    fn canonical_text_is_plain_decimal() {
        for (text, want) in [
            ("150", "150"),
            ("1.50e2", "150"),
            ("-0.0", "0"),
            ("0e5", "0"),
            ("1.5", "1.5"),
            ("0.001", "0.001"),
            ("1e-3", "0.001"),
            ("-12.300", "-12.3"),
            ("1E+3", "1000"),
            ("123.456e1", "1234.56"),
        ] {
            assert_eq!(canonical(text).as_deref(), Some(want), "{text}");
        }
        assert_eq!(canonical("1e200"), None);
    }

    #[test]
    fn compare_orders_by_value() {
        use Ordering::*;
        for (a, b, want) in [
            ("1", "2", Less),
            ("10", "9", Greater),
            ("1.50", "1.5", Equal),
            ("1e2", "100", Equal),
            ("-1", "0", Less),
            ("-2", "-1", Less),
            ("-0", "0", Equal),
            ("0.1", "0.09", Greater),
            ("1700000000000", "1699999999999", Greater),
        ] {
            assert_eq!(compare(a, b), Some(want), "{a} vs {b}");
        }
        assert_eq!(compare("x", "1"), None);
    }
}
