//! What a person sees on a terminal, through the real binary on a pseudo-terminal (`script` from
//! util-linux) of a given width: the live line is cut to the terminal's width, and lines printed
//! while it is up (warnings, status lines) start on lines of their own. No AWS: the hidden
//! `live-line-check` command shows a live line, a warning and a status line.

use std::process::Command;

use crate::common;

/// The text of each line the terminal shows: the output split at carriage returns and newlines,
/// with escape sequences (colour, erase-line) removed.
fn screen_lines(raw: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters, then one final byte in @..~.
            if chars.next_if_eq(&'[').is_some() {
                while chars.next().is_some_and(|f| !('@'..='~').contains(&f)) {}
            }
            continue;
        }
        plain.push(c);
    }
    plain.split(['\r', '\n']).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// At 40 columns no live line drawn is wider than the terminal (a wrapped live line leaves stale
/// lines behind, since `\r` and erase-line only clear the last one), and a warning or status line
/// printed while the live line is up starts on its own line instead of after the live line.
#[test]
fn the_live_line_fits_a_narrow_terminal_and_warnings_start_their_own_line() {
    let command = format!("stty cols 40 rows 24; exec {} live-line-check", common::bin());
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .output()
        .expect("script runs");
    let raw = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{raw}");
    let lines = screen_lines(&raw);
    let width = |l: &str| unicode_width::UnicodeWidthStr::width(l);
    let live: Vec<&String> = lines.iter().filter(|l| l.starts_with("live line")).collect();
    assert!(live.len() >= 3, "the live line was redrawn: {lines:?}");
    // Lines that end with a newline may wrap; a live line redrawn in place must not.
    for l in live {
        assert!(width(l) <= 40, "a live line of {} columns on a 40-column terminal: {l:?}", width(l));
    }
    for what in ["a warning while the live line is up", "a status line while the live line is up"] {
        let line = lines.iter().find(|l| l.contains(what)).unwrap_or_else(|| panic!("{what}: {lines:?}"));
        assert!(!line.starts_with("live line") && !line.contains("records/s"), "{what} on a line of its own: {line:?}");
    }
    assert!(lines.last().is_some_and(|l| l == "live line check done"), "{lines:?}");
}
