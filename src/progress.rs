//! What people see while commands run: status lines on stderr (stdout carries data only), colour
//! and prompts only when stderr/stdin are terminals. No AWS in here.

use std::io::{BufRead, IsTerminal, Write};

/// Prints one status line to stderr.
pub fn status(line: impl AsRef<str>) {
    eprintln!("{}", line.as_ref());
}

/// True when stderr is a terminal (colours, live lines).
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

/// One stack event as a line: time, status, resource type, logical id, reason.
pub fn stack_event_line(time: &str, status: &str, resource_type: &str, logical_id: &str, reason: &str) -> String {
    let colour = stderr_is_tty();
    let painted = if !colour {
        status.to_string()
    } else if status.ends_with("FAILED") || status.contains("ROLLBACK") {
        format!("\x1b[31m{status}\x1b[0m")
    } else if status.ends_with("COMPLETE") {
        format!("\x1b[32m{status}\x1b[0m")
    } else {
        format!("\x1b[33m{status}\x1b[0m")
    };
    let pad = 28usize.saturating_sub(status.len());
    let mut line = format!("  {time}  {painted}{:pad$}  {resource_type:<34} {logical_id}", "");
    if !reason.is_empty() {
        line.push_str("  ");
        line.push_str(reason);
    }
    line
}

/// Writes data to stdout with a final newline. A closed pipe (`stream … | head`) is not an error.
pub fn print_stdout(text: &str) -> Result<(), crate::error::Error> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(crate::error::Error::io("stdout", e)),
        _ => Ok(()),
    }
}

/// Logs for the CLI on stderr: warnings by default, debug with -vv; RUST_LOG overrides.
pub fn init_cli_logs(verbose: u8) {
    let default = match verbose {
        0 | 1 => "stream=warn",
        _ => "stream=debug,info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_is_tty())
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_line_names_status_type_and_resource() {
        let line = stack_event_line("12:00:00", "CREATE_FAILED", "AWS::Kinesis::Stream", "Stream", "limit exceeded");
        assert!(line.contains("CREATE_FAILED"));
        assert!(line.contains("AWS::Kinesis::Stream"));
        assert!(line.ends_with("Stream  limit exceeded"));
    }
}
