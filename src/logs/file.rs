//! `stream logs --local`: `stream local`'s function log, a file of `TIME line` lines (see
//! `sandbox::function::log_sink`): the lines since a time that match the pattern, then, with
//! `--follow`, what is appended, read every 200 ms (a file cut short starts over).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use super::pattern::Pattern;
use super::{Event, LogsSummary, Printer};
use crate::error::Error;
use crate::shutdown::Shutdown;

/// How often a followed file is read again.
const POLL: Duration = Duration::from_millis(200);

/// A line of the file as an event: its time prefix, then the line. Lines without one (written
/// before the log had times) have no place in time and are left out.
pub fn parse_line(line: &str) -> Option<Event> {
    let (time, message) = line.split_once(' ')?;
    let at = chrono::DateTime::parse_from_rfc3339(time).ok()?;
    Some(Event { timestamp_ms: at.timestamp_millis(), message: message.to_string() })
}

/// Prints the file's events since `since_ms` that match `pattern`; follows it with `follow`.
pub async fn run(
    path: &Path,
    since_ms: i64,
    pattern: &Pattern,
    follow: bool,
    printer: &mut Printer,
    shutdown: &Shutdown,
) -> Result<LogsSummary, Error> {
    let shown = path.display().to_string();
    let mut file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::usage(
                format!("there is no function log at {shown}"),
                "run `stream local` first (it writes the log there), or give the --stack, --region and --state-dir it ran with",
            )
        } else {
            Error::io(shown.clone(), e)
        }
    })?;
    let (mut offset, mut partial) = (0u64, String::new());
    loop {
        let len = file.metadata().map_err(|e| Error::io(shown.clone(), e))?.len();
        if len < offset {
            // Cut short (a new log): read it from the start.
            (offset, partial) = (0, String::new());
        }
        let mut chunk = Vec::new();
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_to_end(&mut chunk))
            .map_err(|e| Error::io(shown.clone(), e))?;
        offset += chunk.len() as u64;
        partial.push_str(&String::from_utf8_lossy(&chunk));
        // Whole lines only: the last piece may still be being written.
        let complete = partial.rfind('\n').map_or(0, |i| i + 1);
        for line in partial[..complete].lines() {
            if let Some(event) = parse_line(line).filter(|e| e.timestamp_ms >= since_ms && pattern.matches(&e.message))
            {
                printer.print(&event)?;
            }
        }
        partial.drain(..complete);
        if !follow {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = shutdown.wait() => break,
        }
    }
    let followed = follow.then(|| "reading the file every 200 ms".to_string());
    Ok(LogsSummary { source: shown, followed, printed: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_their_time() {
        let e = parse_line("2026-11-26T09:30:00.250Z START RequestId: 1 Version: $LATEST").expect("event");
        assert_eq!(e, Event { timestamp_ms: 1_795_685_400_250, message: "START RequestId: 1 Version: $LATEST".into() });
        assert_eq!(parse_line("{\"level\":\"INFO\"}"), None, "a line from before times were written");
        assert_eq!(parse_line(""), None);
    }
}
