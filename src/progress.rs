//! What people see while commands run, on stderr (stdout carries data only): status lines, stack
//! events in colour, a live line redrawn in place, and yes/no prompts. Colour goes through anstream,
//! which drops it for NO_COLOR, CLICOLOR=0 and anything that is not a terminal. No AWS in here.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Green: done.
pub const GOOD: Style = AnsiColor::Green.on_default();
/// Yellow: under way, or a change in place.
pub const BUSY: Style = AnsiColor::Yellow.on_default();
/// Red: failed, or something is replaced or removed.
pub const BAD: Style = AnsiColor::Red.on_default();

/// `text` in `style`; shown plain wherever colour is off (anstream strips it).
pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Prints one status line to stderr (colour kept only where it is wanted).
pub fn status(line: impl AsRef<str>) {
    anstream::eprintln!("{}", line.as_ref());
}

/// Prints text to stderr as it is, without a newline (colour kept only where it is wanted).
pub fn status_block(text: impl AsRef<str>) {
    anstream::eprint!("{}", text.as_ref());
}

/// True when stderr is a terminal (live lines).
pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// True when a person can answer a prompt.
pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks a yes/no question on the terminal; anything but y/yes is no.
pub fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// One stack event as a line: time, status (coloured by outcome), resource type, logical id, reason.
pub fn stack_event_line(time: &str, status: &str, resource_type: &str, logical_id: &str, reason: &str) -> String {
    let style = if status.ends_with("FAILED") || status.contains("ROLLBACK") {
        BAD
    } else if status.ends_with("COMPLETE") {
        GOOD
    } else {
        BUSY
    };
    let pad = 28usize.saturating_sub(status.len());
    let mut line = format!("  {time}  {}{:pad$}  {resource_type:<34} {logical_id}", paint(style, status), "");
    if !reason.is_empty() {
        line.push_str("  ");
        line.push_str(reason);
    }
    line
}

/// A line on a terminal's stderr, redrawn in place while a command runs (`produce`, `local`).
/// Nothing is drawn when stderr is not a terminal: logs and pipes get the summary only.
pub struct LiveLine {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LiveLine {
    /// Redraws `render()` every `every` until `finish`.
    pub fn start(every: Duration, render: impl Fn() -> String + Send + 'static) -> LiveLine {
        if !stderr_is_tty() {
            return LiveLine { task: None };
        }
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                // Carriage return and erase-line are cursor control, not colour: NO_COLOR keeps them.
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K{}", render());
                let _ = err.flush();
            }
        });
        LiveLine { task: Some(task) }
    }

    /// Stops redrawing and ends the line, so the summary starts on a line of its own.
    pub fn finish(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            eprintln!();
        }
    }
}

impl Drop for LiveLine {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Logs for the CLI on stderr: warnings by default, debug with -vv; RUST_LOG overrides.
pub fn init_cli_logs(verbose: u8) {
    let default = match verbose {
        0 | 1 => "stream=warn",
        _ => "stream=debug,info",
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never)
        .with_target(false)
        .finish()
        .with(log_filter(default))
        .try_init();
}

/// Which events are logged: RUST_LOG's targets and levels (`info`, `stream=debug,aws=warn`), else
/// `default`. (Span and field filters, which would need a regex engine in the binary, are not read.)
pub fn log_filter(default: &str) -> tracing_subscriber::filter::Targets {
    std::env::var("RUST_LOG").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| default.parse().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_line_names_status_type_and_resource() {
        let line = stack_event_line("12:00:00", "CREATE_FAILED", "AWS::Kinesis::Stream", "Stream", "limit exceeded");
        let plain = anstream::adapter::strip_str(&line).to_string();
        assert!(plain.contains("CREATE_FAILED"));
        assert!(plain.contains("AWS::Kinesis::Stream"));
        assert!(plain.ends_with("Stream  limit exceeded"));
        assert!(line.contains(&paint(BAD, "CREATE_FAILED")), "failures are red");
        let done = stack_event_line("12:00:01", "CREATE_COMPLETE", "AWS::Kinesis::Stream", "Stream", "");
        assert!(done.contains(&paint(GOOD, "CREATE_COMPLETE")));
    }
}
