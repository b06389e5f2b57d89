//! What people see while commands run, on stderr (stdout carries data only): status lines, stack
//! events in colour, a live line redrawn in place, and yes/no prompts. Colour goes through anstream,
//! which drops it for NO_COLOR, CLICOLOR=0 and anything that is not a terminal. No AWS in here.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

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

/// Prints one status line to stderr (colour kept only where it is wanted), above the live line.
pub fn status(line: impl AsRef<str>) {
    above_live_line(|| anstream::eprintln!("{}", line.as_ref()));
}

/// Prints text to stderr as it is, without a newline (colour kept only where it is wanted).
pub fn status_block(text: impl AsRef<str>) {
    above_live_line(|| anstream::eprint!("{}", text.as_ref()));
}

/// The live line as last drawn, while one is up. Whatever else goes to stderr (status lines,
/// warnings) erases it first and draws it again below, so nothing lands in the middle of it.
static LIVE: Mutex<Option<String>> = Mutex::new(None);

/// Runs `print` (which writes whole lines to stderr) with the live line, if one is up, erased
/// before and drawn again after.
fn above_live_line(print: impl FnOnce()) {
    let live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(line) = live.as_deref() else {
        print();
        return;
    };
    // Carriage return and erase-line are cursor control, not colour: NO_COLOR keeps them.
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K");
    print();
    let _ = write!(err, "{line}");
    let _ = err.flush();
}

/// The terminal's width for the live line: COLUMNS when set, else the width of the terminal on
/// stderr (asked at each redraw: the window may be resized), else 80.
fn terminal_width() -> usize {
    let columns = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|&c| c > 0);
    columns
        .or_else(|| terminal_size::terminal_size_of(std::io::stderr()).map(|(w, _)| usize::from(w.0)))
        .filter(|&c| c > 0)
        .unwrap_or(80)
}

/// `line` cut to fit in `width` columns, with `…` where it was cut. The last column stays free:
/// a line that fills it makes some terminals wrap, and `\r` then erase-line clears only the last
/// row, leaving the rest of the old line on screen.
pub fn fit(line: &str, width: usize) -> String {
    let room = width.saturating_sub(1);
    if UnicodeWidthStr::width(line) <= room {
        return line.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in line.chars() {
        let w = UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > room {
            break;
        }
        out.push(c);
        used += w;
    }
    if room > 0 {
        out.push('…');
    }
    out
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

/// A line on a terminal's stderr, redrawn in place while a command runs (`produce`, `local`), cut
/// to the terminal's width. Nothing is drawn when stderr is not a terminal: logs and pipes get the
/// summary only.
pub struct LiveLine {
    task: Option<tokio::task::JoinHandle<()>>,
    stopped: Arc<AtomicBool>,
}

impl LiveLine {
    /// Redraws `render()` every `every` until `finish`.
    pub fn start(every: Duration, render: impl Fn() -> String + Send + 'static) -> LiveLine {
        let stopped = Arc::new(AtomicBool::new(false));
        if !stderr_is_tty() {
            return LiveLine { task: None, stopped };
        }
        let stop = stopped.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let line = fit(&render(), terminal_width());
                let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
                // Checked under the lock `finish` takes: no redraw once the line has ended.
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K{line}");
                let _ = err.flush();
                *live = Some(line);
            }
        });
        LiveLine { task: Some(task), stopped }
    }

    /// Stops redrawing and ends the line, so the summary starts on a line of its own.
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for LiveLine {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else { return };
        let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        self.stopped.store(true, Ordering::SeqCst);
        task.abort();
        if live.take().is_some() {
            eprintln!();
        }
    }
}

/// `stream live-line-check` (hidden): a live line wider than most terminals, redrawn quickly, with
/// a warning logged and a status line printed while it is up. Tests run it on a pseudo-terminal.
pub async fn live_line_check() {
    let started = std::time::Instant::now();
    let line = LiveLine::start(Duration::from_millis(20), move || {
        format!("live line {} ms: {}", started.elapsed().as_millis(), "12 records/s 日本 🦀 ".repeat(6))
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    tracing::warn!("a warning while the live line is up");
    status("a status line while the live line is up");
    tokio::time::sleep(Duration::from_millis(150)).await;
    line.finish();
    status("live line check done");
}

/// Logs for the CLI on stderr: warnings by default, debug with -vv; RUST_LOG overrides.
pub fn init_cli_logs(verbose: u8) {
    let default = match verbose {
        0 | 1 => "stream=warn",
        _ => "stream=debug,info",
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(LogLine::default)
        .with_ansi(anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never)
        .with_target(false)
        .finish()
        .with(log_filter(default))
        .try_init();
}

/// One log event's bytes, written to stderr in one piece, above the live line, when dropped
/// (tracing's writer for an event lives as long as that event).
#[derive(Default)]
struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            above_live_line(|| {
                let _ = std::io::stderr().write_all(&self.0);
            });
        }
    }
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

    #[test]
    fn long_lines_are_cut_to_the_width_with_the_last_column_free() {
        assert_eq!(fit("sent 5", 40), "sent 5");
        assert_eq!(fit("0123456789", 10), "01234567…");
        // Wide characters count two columns; one that would not fit is left out whole.
        let cut = fit("ab日本語", 6);
        assert_eq!((cut.as_str(), UnicodeWidthStr::width(cut.as_str())), ("ab日…", 5));
        assert_eq!(fit("abc", 1), "");
    }
}
