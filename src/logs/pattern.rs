//! CloudWatch Logs filter patterns for unstructured text, matched here for `stream logs --local`
//! as CloudWatch Logs matches them: terms that must all appear (`ERROR quarantined`), "quoted
//! phrases", `?term`s of which one must appear, `-term`s that must not, and `%regex%` terms in the
//! service's regex subset (regex-lite); case-sensitive. JSON (`{ $.level = … }`) and
//! space-delimited (`[…]`) patterns are refused here: only the service matches those.
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html>

use regex_lite::Regex;

/// A parsed pattern.
#[derive(Debug, Clone, Default)]
pub struct Pattern {
    all: Vec<Term>,
    any: Vec<Term>,
    none: Vec<Term>,
}

/// One term: text that must appear as it is, or a `%regex%` that must match somewhere.
#[derive(Debug, Clone)]
enum Term {
    Text(String),
    Regex(Regex),
}

impl Term {
    fn found_in(&self, message: &str) -> bool {
        match self {
            Term::Text(t) => message.contains(t.as_str()),
            Term::Regex(r) => r.is_match(message),
        }
    }
}

/// What CloudWatch Logs lets a `%regex%` hold besides letters and digits: these symbols, and the
/// operators `^ $ ? [ ] { } | \ * + .`; no parentheses, no multi-byte characters. It also takes at
/// most 2 regex terms in a pattern when filtering log events or in Live Tail.
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/regex-expressions.html>
const REGEX_SYMBOLS: &str = ":_#=@/;,-^$?[]{}|\\*+.";
const MAX_REGEX_TERMS: usize = 2;

/// A `%regex%` term's body checked against CloudWatch Logs' subset, then compiled.
fn regex(body: &str) -> Result<Regex, String> {
    if body.is_empty() {
        return Err("has an empty regex (%%)".into());
    }
    if !body.is_ascii() {
        return Err(format!("has multi-byte characters in %{body}%, which CloudWatch Logs refuses in a regex"));
    }
    if body.contains(['(', ')']) {
        return Err(format!("uses parentheses in %{body}%, which CloudWatch Logs' regex does not support"));
    }
    if let Some(c) = body.chars().find(|c| !c.is_ascii_alphanumeric() && !REGEX_SYMBOLS.contains(*c)) {
        return Err(format!("has '{c}' in %{body}%, which CloudWatch Logs' regex does not allow"));
    }
    Regex::new(body).map_err(|e| {
        let why = e.to_string();
        format!("has %{body}%, which is not a regular expression ({})", why.lines().last().unwrap_or_default().trim())
    })
}

/// Parses `text`; the reason it cannot be matched here otherwise.
pub fn parse(text: &str) -> Result<Pattern, String> {
    let t = text.trim();
    if t.starts_with('{') || t.starts_with('[') {
        return Err("is a JSON or space-delimited pattern, which only CloudWatch Logs matches".into());
    }
    let mut p = Pattern::default();
    let mut regexes = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let (sign, body) = match rest.as_bytes()[0] {
            b'?' => ('?', &rest[1..]),
            b'-' => ('-', &rest[1..]),
            _ => (' ', rest),
        };
        let (term, after) = if let Some(inner) = body.strip_prefix('%') {
            // A regex holds no `%` (nor spaces): it ends at the next one.
            let end = inner.find('%').ok_or("has a % that is not closed")?;
            regexes += 1;
            (Term::Regex(regex(&inner[..end])?), &inner[end + 1..])
        } else if let Some(quoted) = body.strip_prefix('"') {
            let end = quoted.find('"').ok_or("has a quote that is not closed")?;
            (Term::Text(quoted[..end].to_string()), &quoted[end + 1..])
        } else {
            let end = body.find(char::is_whitespace).unwrap_or(body.len());
            (Term::Text(body[..end].to_string()), &body[end..])
        };
        if matches!(&term, Term::Text(t) if t.is_empty()) {
            return Err(format!("has an empty term after {sign:?}"));
        }
        match sign {
            '?' => p.any.push(term),
            '-' => p.none.push(term),
            _ => p.all.push(term),
        }
        rest = after.trim_start();
    }
    if regexes > MAX_REGEX_TERMS {
        return Err(format!("has {regexes} %regex% terms, more than {MAX_REGEX_TERMS} (CloudWatch Logs' limit)"));
    }
    Ok(p)
}

impl Pattern {
    /// True when `message` matches.
    pub fn matches(&self, message: &str) -> bool {
        self.all.iter().all(|t| t.found_in(message))
            && !self.none.iter().any(|t| t.found_in(message))
            && (self.any.is_empty() || self.any.iter().any(|t| t.found_in(message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_phrases_options_and_exclusions_match_as_cloudwatch_does() {
        let m = |p: &str, msg: &str| parse(p).expect(p).matches(msg);
        assert!(m("", "anything"));
        assert!(m("batch done", "INFO batch done records=1"));
        assert!(m("done batch", "INFO batch done"), "terms in any order");
        assert!(!m("batch failed", "INFO batch done"));
        assert!(m("\"batch done\"", "INFO batch done") && !m("\"done batch\"", "INFO batch done"));
        assert!(m("?WARN ?ERROR", "x WARN y") && m("?WARN ?ERROR", "ERROR") && !m("?WARN ?ERROR", "INFO"));
        assert!(m("batch -quarantined", "batch done") && !m("batch -quarantined", "batch quarantined"));
        assert!(!m("error", "ERROR"), "case-sensitive");
    }

    #[test]
    fn patterns_only_the_service_matches_are_refused() {
        for (p, why) in [
            ("{ $.level = \"WARN\" }", "JSON or space-delimited"),
            ("[ip, user]", "JSON or space-delimited"),
            ("\"open", "not closed"),
            ("a ? b", "empty term"),
        ] {
            assert!(parse(p).expect_err(p).contains(why), "{p}");
        }
    }

    /// `%regex%` terms match as CloudWatch Logs' regex subset does, not as literal text.
    #[test]
    fn regex_terms_match_as_cloudwatch_does() {
        let m = |p: &str, msg: &str| parse(p).expect(p).matches(msg);
        assert!(m("%AUTHORIZED%", "[ERROR 401] UNAUTHORIZED REQUEST"), "a regex matches anywhere");
        let ip = r"%\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}%";
        assert!(m(ip, "from 10.0.12.7 port 22") && !m(ip, "from 10.0.x.7"));
        let either = "%[Ee]rror|[Ff]ail%";
        assert!(m(either, "a fail here") && m(either, "Error") && !m(either, "ok"));
        assert!(m("%^[hc]at%", "cat on a mat") && !m("%^[hc]at%", "a cat"));
        assert!(m("%[hc]at$%", "a hat") && !m("%[hc]at$%", "hats"));
        assert!(m("%colou?r%", "color") && m("%colou?r%", "colour"));
        assert!(m("%a{3,5}%", "baaab") && !m("%a{3,5}%", "baab"));
        assert!(m("%ab*c%", "ac") && m("%ab+c%", "abbc") && !m("%ab+c%", "ac") && m("%a.c%", "abc"));
        assert!(!m("%error%", "ERROR"), "case-sensitive");
        assert!(m(r"batch %records=\d+%", "batch done records=3") && !m(r"batch %records=\d+%", "batch done"));
        assert!(m("-%quarantined=[1-9]%", "quarantined=0") && !m("-%quarantined=[1-9]%", "quarantined=2"));
    }

    /// What CloudWatch Logs refuses in a regex is refused here, naming why.
    #[test]
    fn regex_terms_outside_cloudwatch_s_subset_are_refused() {
        for (p, why) in [
            ("%(a|b)c%", "parentheses"),
            ("%something!%", "'!'"),
            ("%caf\u{e9}%", "multi-byte"),
            ("%[a-%", "not a regular expression"),
            ("%%", "empty"),
            ("%a% %b% %c%", "more than 2"),
        ] {
            let err = parse(p).expect_err(p);
            assert!(err.contains(why), "{p}: {err}");
        }
    }
}
