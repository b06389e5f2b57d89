//! Following a stack operation: the events CloudFormation records for it, shown as they happen;
//! the end of the operation, from the stack's own terminal event or the generated waiter; and,
//! when it fails, the first failed resource and its reason. Also deleting a stack that way.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_cloudformation::client::Waiters;
use aws_sdk_cloudformation::types::{Stack, StackEvent};
use aws_smithy_runtime_api::client::waiters::error::WaiterError;

use crate::aws::Clients;
use crate::error::Error;
use crate::progress;
use crate::stack;

/// How often stack events are fetched while an operation runs.
const EVENT_POLL: Duration = Duration::from_secs(2);

/// Which stack operation is being followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// CreateStack.
    Create,
    /// UpdateStack or ExecuteChangeSet.
    Update,
    /// DeleteStack.
    Delete,
}

impl Op {
    fn success(self) -> &'static str {
        match self {
            Op::Create => "CREATE_COMPLETE",
            Op::Update => "UPDATE_COMPLETE",
            Op::Delete => "DELETE_COMPLETE",
        }
    }
}

/// Ids of the events the stack already has, so that only this operation's events are shown.
pub async fn recent_event_ids(clients: &Clients, stack_id: &str) -> Result<HashSet<String>, Error> {
    let out = clients
        .cfn
        .describe_stack_events()
        .stack_name(stack_id)
        .send()
        .await
        .map_err(|e| Error::aws("DescribeStackEvents", stack_id, e))?;
    Ok(out.stack_events().iter().filter_map(|e| e.event_id().map(str::to_string)).collect())
}

/// Shows the operation's events as they happen and waits for its end: the stack's own terminal
/// event ends the wait at once; the generated waiter bounds it (and is the fallback).
/// On failure names the first failed resource and its reason.
pub async fn follow(
    clients: &Clients,
    stack_name: &str,
    stack_id: &str,
    mut seen: HashSet<String>,
    op: Op,
    max_wait: Duration,
) -> Result<(), Error> {
    let mut failures: Vec<StackEvent> = Vec::new();
    let events = watch_events(clients, stack_name, stack_id, &mut seen, &mut failures);
    let waiter = async {
        let cfn = &clients.cfn;
        match op {
            Op::Create => cfn
                .wait_until_stack_create_complete()
                .stack_name(stack_id)
                .wait(max_wait)
                .await
                .map(|_| ())
                .map_err(waiter_error),
            Op::Update => cfn
                .wait_until_stack_update_complete()
                .stack_name(stack_id)
                .wait(max_wait)
                .await
                .map(|_| ())
                .map_err(waiter_error),
            Op::Delete => cfn
                .wait_until_stack_delete_complete()
                .stack_name(stack_id)
                .wait(max_wait)
                .await
                .map(|_| ())
                .map_err(waiter_error),
        }
    };
    let outcome = tokio::select! {
        status = events => status,
        waited = waiter => waited.map(|()| None),
    };
    if let Err(WaitFailure::Timeout) = outcome {
        return Err(Error::failed(
            format!("stack \"{stack_name}\" did not finish within {} s", max_wait.as_secs()),
            "see the stack's events in the CloudFormation console, or deploy with a longer --wait",
        ));
    }
    // Show what arrived since the last poll, then read the final status.
    let _ = poll_events(clients, stack_name, stack_id, &mut seen, &mut failures).await;
    let status = match stack::find(clients, stack_id).await? {
        Some(s) => stack::status_of(&s).to_string(),
        None if op == Op::Delete => "DELETE_COMPLETE".to_string(),
        None => "DOES_NOT_EXIST".to_string(),
    };
    if status == op.success() {
        return Ok(());
    }
    let first = failures.iter().find(|e| e.logical_resource_id() != Some(stack_name));
    let what = match first {
        Some(e) => format!(
            "stack \"{stack_name}\" ended in {status}: {} ({}) failed: {}",
            e.logical_resource_id().unwrap_or("?"),
            e.resource_type().unwrap_or("?"),
            e.resource_status_reason().unwrap_or("no reason given")
        ),
        None => format!("stack \"{stack_name}\" ended in {status}"),
    };
    // A creation that failed left a stack that can only be deleted and created again.
    let hint = if op == Op::Create && stack::Phase::of(&status) == stack::Phase::NeedsRecreate {
        format!("fix the cause, then run `stream deploy --stack {stack_name} --recreate`")
    } else {
        "fix the cause above and run the command again".to_string()
    };
    Err(Error::StackFailed { what, hint })
}

enum WaitFailure {
    Timeout,
    Other,
}

fn waiter_error<O, E>(e: WaiterError<O, E>) -> WaitFailure {
    match e {
        WaiterError::ExceededMaxWait(_) => WaitFailure::Timeout,
        _ => WaitFailure::Other,
    }
}

/// Polls events until the stack itself reaches a terminal status; returns that status.
async fn watch_events(
    clients: &Clients,
    stack_name: &str,
    stack_id: &str,
    seen: &mut HashSet<String>,
    failures: &mut Vec<StackEvent>,
) -> Result<Option<String>, WaitFailure> {
    loop {
        if let Some(status) = poll_events(clients, stack_name, stack_id, seen, failures).await? {
            return Ok(Some(status));
        }
        tokio::time::sleep(EVENT_POLL).await;
    }
}

/// Prints events not seen before, oldest first; returns the stack's terminal status if one arrived.
async fn poll_events(
    clients: &Clients,
    stack_name: &str,
    stack_id: &str,
    seen: &mut HashSet<String>,
    failures: &mut Vec<StackEvent>,
) -> Result<Option<String>, WaitFailure> {
    let out = match clients.cfn.describe_stack_events().stack_name(stack_id).send().await {
        Ok(out) => out,
        // A deleted stack's events may be gone already: the waiter decides then.
        Err(_) => return Ok(None),
    };
    // Newest first: take events up to the first one already shown.
    let mut fresh: Vec<StackEvent> = out
        .stack_events
        .unwrap_or_default()
        .into_iter()
        .take_while(|e| e.event_id().is_none_or(|id| !seen.contains(id)))
        .collect();
    fresh.reverse();
    let mut terminal = None;
    for e in fresh {
        if let Some(id) = e.event_id() {
            seen.insert(id.to_string());
        }
        let status = e.resource_status().map(|s| s.as_str()).unwrap_or_default().to_string();
        let time = e
            .timestamp()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0))
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default();
        progress::status(progress::stack_event_line(
            &time,
            &status,
            e.resource_type().unwrap_or_default(),
            e.logical_resource_id().unwrap_or_default(),
            e.resource_status_reason().unwrap_or_default(),
        ));
        let is_stack =
            e.resource_type() == Some("AWS::CloudFormation::Stack") && e.logical_resource_id() == Some(stack_name);
        if status.ends_with("_FAILED") && e.resource_status_reason().is_some() {
            failures.push(e.clone());
        }
        if is_stack && stack::Phase::of(&status).is_terminal() {
            terminal = Some(status);
        }
    }
    Ok(terminal)
}

/// Deletes `stack` (by its id, which stays valid once the name is gone), showing its events, and
/// waits until it is gone.
pub async fn delete_stack(
    clients: &Clients,
    stack_name: &str,
    stack: &Stack,
    why: &str,
    max_wait: Duration,
) -> Result<(), Error> {
    let id = stack.stack_id().unwrap_or(stack_name).to_string();
    let seen = recent_event_ids(clients, &id).await?;
    progress::status(why);
    clients.cfn.delete_stack().stack_name(&id).send().await.map_err(|e| Error::aws("DeleteStack", stack_name, e))?;
    follow(clients, stack_name, &id, seen, Op::Delete, max_wait).await
}
