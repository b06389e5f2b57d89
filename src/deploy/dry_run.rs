//! `stream deploy --dry-run` (sam deploy's `--no-execute-changeset`): CloudFormation computes the
//! change set of the deploy — an update's, or a create's for a new stack — the plan is shown, and
//! the change set is deleted (with the empty REVIEW_IN_PROGRESS stack a create's leaves). Nothing is
//! uploaded, no bucket is made, no key handed out; the summary says what a deploy would do.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use aws_sdk_cloudformation::client::Waiters as _;
use aws_sdk_cloudformation::types::{ChangeSetType, Stack};
use serde::Serialize;

use super::DeployArgs;
use super::flow::{self, Code};
use super::{params, plan};
use crate::aws::Clients;
use crate::error::Error;
use crate::progress;
use crate::stack;
use crate::template::EventTable;

/// What a deploy would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlannedAction {
    /// Create the stack.
    WouldCreate,
    /// Update it.
    WouldUpdate,
    /// Nothing to change.
    UpToDate,
}

/// The result of `stream deploy --dry-run`.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// Stack name.
    pub stack: String,
    /// What a deploy would do.
    pub action: PlannedAction,
    /// Where the code would be uploaded (it is not).
    pub artifact: String,
    /// The event schema the function would run.
    pub schema: String,
    /// The plan: resources, parameters, tags, notes.
    pub plan: plan::Plan,
    /// The stack's tags after such a deploy (stream's own left out).
    pub tags: BTreeMap<String, String>,
    /// True once the change set was deleted (it always is; false only when deleting it failed).
    pub change_set_deleted: bool,
}

impl fmt::Display for Planned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.action {
            PlannedAction::WouldCreate => "would be created",
            PlannedAction::WouldUpdate => "would be updated",
            PlannedAction::UpToDate => "up to date: nothing to change",
        };
        writeln!(f, "stack {}: {what} (dry run: nothing was changed)", self.stack)?;
        write!(f, "{}", self.plan)?;
        write!(f, "  code: {} (not uploaded), schema {}", self.artifact, self.schema)?;
        if !self.change_set_deleted {
            write!(f, "\n  note: the change set could not be deleted; CloudFormation lists it until you do")?;
        }
        Ok(())
    }
}

/// How long a new stack's empty shell may take to go after its change set.
const SHELL_DELETE_WAIT: Duration = Duration::from_secs(120);

/// The dry run of a deploy of `code` to `existing` (`None`: a new stack).
pub(super) async fn run(
    clients: &Clients,
    stack_name: &str,
    args: &DeployArgs,
    existing: Option<&Stack>,
    code: &Code<'_>,
    was: Option<EventTable>,
) -> Result<Planned, Error> {
    let req = flow::request(clients, args, existing, code).await?;
    let kind = if existing.is_some() { ChangeSetType::Update } else { ChangeSetType::Create };
    let request = plan::ChangeSetRequest {
        stack_name,
        template: &req.doc.to_string(),
        parameters: req.parameters,
        tags: params::tag_list(&req.tags),
        role_arn: args.role_arn.clone(),
        kind: kind.clone(),
        max_wait: Duration::from_secs(args.wait),
    };
    progress::status(format!("planning the deploy of stack {stack_name} (change set; dry run)"));
    let made = plan::create_change_set(clients, request).await;
    let deleted = match &made {
        Ok(Some(cs)) => plan::delete(clients, &cs.id).await,
        _ => true,
    };
    if kind == ChangeSetType::Create {
        delete_shell(clients, stack_name).await;
    }
    let (action, mut plan) = match made? {
        Some(cs) if existing.is_none() => (PlannedAction::WouldCreate, cs.plan),
        Some(cs) => (PlannedAction::WouldUpdate, cs.plan),
        None if req.tag_changes.is_empty() => (PlannedAction::UpToDate, plan::Plan::default()),
        None => (PlannedAction::WouldUpdate, plan::Plan::default()),
    };
    plan.parameters = req.parameter_changes;
    plan.tags = req.tag_changes;
    if let Some(was) = was.filter(|w| w.logical_id() != code.table().logical_id()) {
        plan.mark_table_replaced(&was, &code.table());
    }
    Ok(Planned {
        stack: stack_name.to_string(),
        action,
        artifact: format!("s3://{}/{}", code.bucket, code.key),
        schema: format!("{} ({})", code.schema.schema.name(), code.schema.origin),
        plan,
        tags: req.tags,
        change_set_deleted: deleted,
    })
}

/// Deletes the empty stack a create change set leaves in REVIEW_IN_PROGRESS, and waits for it to
/// go, so that the name is free again. Any other stack of that name is left alone.
async fn delete_shell(clients: &Clients, stack_name: &str) {
    let Ok(Some(shell)) = stack::find(clients, stack_name).await else { return };
    if stack::status_of(&shell) != "REVIEW_IN_PROGRESS" {
        return;
    }
    let id = shell.stack_id().unwrap_or(stack_name).to_string();
    if let Err(e) = clients.cfn.delete_stack().stack_name(&id).send().await {
        progress::status(format!("warning: the empty stack of the dry run could not be deleted: {e}"));
        return;
    }
    let _ = clients.cfn.wait_until_stack_delete_complete().stack_name(&id).wait(SHELL_DELETE_WAIT).await;
}
