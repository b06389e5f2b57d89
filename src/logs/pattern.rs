//! CloudWatch Logs filter patterns for unstructured text, matched here for `stream logs --local`
//! as CloudWatch Logs matches them: terms that must all appear (`ERROR quarantined`), "quoted
//! phrases", `?term`s of which one must appear, `-term`s that must not; case-sensitive. JSON
//! (`{ $.level = … }`) and space-delimited (`[…]`) patterns are refused here: only the service
//! matches those. <https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html>

/// A parsed pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pattern {
    all: Vec<String>,
    any: Vec<String>,
    none: Vec<String>,
}

/// Parses `text`; the reason it cannot be matched here otherwise.
pub fn parse(text: &str) -> Result<Pattern, String> {
    let t = text.trim();
    if t.starts_with('{') || t.starts_with('[') {
        return Err("is a JSON or space-delimited pattern, which only CloudWatch Logs matches".into());
    }
    let mut p = Pattern::default();
    let mut rest = t;
    while !rest.is_empty() {
        let (sign, body) = match rest.as_bytes()[0] {
            b'?' => ('?', &rest[1..]),
            b'-' => ('-', &rest[1..]),
            _ => (' ', rest),
        };
        let (term, after) = if let Some(quoted) = body.strip_prefix('"') {
            let end = quoted.find('"').ok_or("has a quote that is not closed")?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = body.find(char::is_whitespace).unwrap_or(body.len());
            (&body[..end], &body[end..])
        };
        if term.is_empty() {
            return Err(format!("has an empty term after {sign:?}"));
        }
        match sign {
            '?' => p.any.push(term.to_string()),
            '-' => p.none.push(term.to_string()),
            _ => p.all.push(term.to_string()),
        }
        rest = after.trim_start();
    }
    Ok(p)
}

impl Pattern {
    /// True when `message` matches.
    pub fn matches(&self, message: &str) -> bool {
        self.all.iter().all(|t| message.contains(t.as_str()))
            && !self.none.iter().any(|t| message.contains(t.as_str()))
            && (self.any.is_empty() || self.any.iter().any(|t| message.contains(t.as_str())))
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
}
