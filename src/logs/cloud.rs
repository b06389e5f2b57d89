//! `stream logs` against CloudWatch Logs: the function's log group (its LoggingConfig's, else
//! /aws/lambda/NAME), the events since a time with FilterLogEvents, then with `--follow` the new
//! ones: through a Live Tail session (StartLiveTail, under a second behind), or, where the
//! endpoint offers none (an emulator, a denied permission), FilterLogEvents once a second.
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/CloudWatchLogs_LiveTail.html>

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::types::StartLiveTailResponseStream;

use super::{Event, LogsSummary, Printer};
use crate::aws::Clients;
use crate::error::Error;
use crate::progress;
use crate::shutdown::Shutdown;
use crate::stack;

/// How often the log is read again when there is no Live Tail.
const POLL: Duration = Duration::from_secs(1);

/// The function's log group, and its ARN (for Live Tail).
struct Group {
    name: String,
    arn: String,
}

/// Prints the events since `since_ms`, then follows them with `follow`.
pub async fn run(
    clients: &Clients,
    stack_name: &str,
    since_ms: i64,
    filter: Option<&str>,
    follow: bool,
    printer: &mut Printer,
    shutdown: &Shutdown,
) -> Result<LogsSummary, Error> {
    let group = log_group(clients, stack_name).await?;
    let source = format!("log group {}", group.name);
    if !follow {
        if !history(clients, &group, since_ms, None, filter, printer, &mut Seen::default()).await? {
            no_group_yet(&group);
        }
        return Ok(LogsSummary { source, followed: None, printed: 0 });
    }
    let followed = match live_tail(clients, &group, since_ms, filter, printer, shutdown).await? {
        Some(how) => how,
        None => {
            poll(clients, &group, since_ms, filter, printer, shutdown).await?;
            "polling every second".to_string()
        }
    };
    Ok(LogsSummary { source, followed: Some(followed), printed: 0 })
}

/// The function's log group: where its LoggingConfig sends it, else Lambda's default.
async fn log_group(clients: &Clients, stack_name: &str) -> Result<Group, Error> {
    let outputs = stack::load(clients, stack_name).await?.outputs;
    let function = stack::function_configuration(clients, &outputs.function_name).await?;
    let name = function
        .logging_config()
        .and_then(|l| l.log_group())
        .map(str::to_string)
        .unwrap_or_else(|| format!("/aws/lambda/{}", outputs.function_name));
    // arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME → the log group's ARN in the same place.
    let parts: Vec<&str> = function.function_arn().unwrap_or_default().split(':').collect();
    let (partition, account) = (parts.get(1).copied().unwrap_or("aws"), parts.get(4).copied().unwrap_or_default());
    let arn = format!("arn:{partition}:logs:{}:{account}:log-group:{name}", clients.region);
    Ok(Group { name, arn })
}

/// Events already printed at the newest timestamp seen (FilterLogEvents' start time includes it).
#[derive(Default)]
struct Seen {
    newest_ms: i64,
    at_newest: HashSet<String>,
}

impl Seen {
    /// True the first time an event is seen.
    fn first(&mut self, timestamp_ms: i64, id: &str) -> bool {
        if timestamp_ms > self.newest_ms {
            self.newest_ms = timestamp_ms;
            self.at_newest.clear();
        }
        timestamp_ms < self.newest_ms || self.at_newest.insert(id.to_string())
    }
}

/// Says that the function has not logged yet.
fn no_group_yet(group: &Group) {
    progress::status(format!("stream logs: log group {} does not exist yet: the function has not run", group.name));
}

/// Prints the events from `since_ms` (to `until_ms`) with FilterLogEvents; false when the log
/// group does not exist yet (the function has not run).
async fn history(
    clients: &Clients,
    group: &Group,
    since_ms: i64,
    until_ms: Option<i64>,
    filter: Option<&str>,
    printer: &mut Printer,
    seen: &mut Seen,
) -> Result<bool, Error> {
    let mut pages = clients
        .logs
        .filter_log_events()
        .log_group_name(&group.name)
        .start_time(since_ms)
        .set_end_time(until_ms)
        .set_filter_pattern(filter.map(str::to_string))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                let err = Error::aws("FilterLogEvents", &group.name, e);
                return if err.code() == Some("ResourceNotFoundException") { Ok(false) } else { Err(err) };
            }
        };
        for e in page.events() {
            let (ts, id) = (e.timestamp().unwrap_or_default(), e.event_id().unwrap_or_default());
            if seen.first(ts, id) {
                printer.print(&Event { timestamp_ms: ts, message: e.message().unwrap_or_default().to_string() })?;
            }
        }
    }
    Ok(true)
}

/// FilterLogEvents once a second from the newest event seen, until Ctrl-C.
async fn poll(
    clients: &Clients,
    group: &Group,
    since_ms: i64,
    filter: Option<&str>,
    printer: &mut Printer,
    shutdown: &Shutdown,
) -> Result<(), Error> {
    let (mut seen, mut said) = (Seen::default(), false);
    loop {
        let from = since_ms.max(seen.newest_ms);
        if !history(clients, group, from, None, filter, printer, &mut seen).await? && !said {
            no_group_yet(group);
            said = true;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = shutdown.wait() => return Ok(()),
        }
    }
}

/// Follows the log through Live Tail: the session starts first, then the events before it are
/// printed, then the session's until Ctrl-C (a session that ends, after three hours, is started
/// again). None when no session can start here, with why on stderr: the caller polls instead.
async fn live_tail(
    clients: &Clients,
    group: &Group,
    since_ms: i64,
    filter: Option<&str>,
    printer: &mut Printer,
    shutdown: &Shutdown,
) -> Result<Option<String>, Error> {
    // Live Tail's host is the endpoint's with a prefix ("stream-logs…"): an address cannot take one.
    if let Some(url) = clients.endpoint("CloudWatch Logs").filter(|u| host_is_address(u)) {
        progress::status(format!("stream logs: no Live Tail at {url}: following by polling every second"));
        return Ok(None);
    }
    let mut first = true;
    loop {
        let started_ms = now_ms();
        let request = clients
            .logs
            .start_live_tail()
            .log_group_identifiers(&group.arn)
            .set_log_event_filter_pattern(filter.map(str::to_string));
        let mut session = match request.send().await {
            Ok(out) => out.response_stream,
            Err(e) if first => {
                let err = Error::aws("StartLiveTail", &group.name, e);
                progress::status(format!("stream logs: no Live Tail ({err}): following by polling every second"));
                return Ok(None);
            }
            Err(e) => return Err(Error::aws("StartLiveTail", &group.name, e)),
        };
        if first {
            if !history(clients, group, since_ms, Some(started_ms - 1), filter, printer, &mut Seen::default()).await? {
                no_group_yet(group);
            }
            first = false;
        }
        loop {
            let update = tokio::select! {
                update = session.recv() => update,
                () = shutdown.wait() => return Ok(Some("Live Tail".into())),
            };
            match update {
                Ok(Some(StartLiveTailResponseStream::SessionUpdate(u))) => {
                    for e in u.session_results() {
                        let message = e.message().unwrap_or_default().to_string();
                        printer.print(&Event { timestamp_ms: e.timestamp().unwrap_or_default(), message })?;
                    }
                }
                Ok(Some(_)) => {}
                // The session ended (its three hours, or the service's own end): start another.
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// True when the URL's host is an IP address (or localhost), which no host prefix fits.
fn host_is_address(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_no_host_prefix() {
        for url in ["http://127.0.0.1:4566", "http://localhost:5000/", "http://[::1]:80", "https://10.0.0.1"] {
            assert!(host_is_address(url), "{url}");
        }
        for url in ["https://logs.eu-west-1.amazonaws.com", "https://vpce-1.logs.eu-west-1.vpce.amazonaws.com:443"] {
            assert!(!host_is_address(url), "{url}");
        }
    }

    #[test]
    fn an_event_at_the_newest_time_is_printed_once() {
        let mut seen = Seen::default();
        assert!(seen.first(10, "a") && seen.first(10, "b") && !seen.first(10, "a"));
        assert!(seen.first(11, "c") && !seen.first(11, "c"));
        assert!(seen.first(5, "old"), "older events are not tracked: the next read starts at the newest");
    }
}
