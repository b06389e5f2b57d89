//! The plan of a stack operation, shown before anything changes: for an update, a CloudFormation
//! change set read back resource by resource (add / modify / replace / remove, replacement marked);
//! for a creation, the template's resources. Whether to go on is `approval`'s decision: a terminal
//! asks, `--yes` never asks, and without a terminal only a plan that replaces or removes nothing
//! goes ahead.

use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{
    Capability, ChangeAction, ChangeSetStatus, ChangeSetType, Parameter, Replacement as CfnReplacement, Tag,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use crate::aws::Clients;
use crate::error::Error;
use crate::progress::{self, BAD, BUSY, GOOD, paint};
use crate::template;

/// How often a change set's status is read while CloudFormation computes it.
const CHANGE_SET_POLL: Duration = Duration::from_secs(2);

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Created.
    Add,
    /// Updated in place.
    Modify,
    /// Updated; CloudFormation may have to replace it, depending on values known only while it runs.
    MaybeReplace,
    /// Deleted and created again: a new physical resource (a table would lose its items).
    Replace,
    /// Deleted.
    Remove,
    /// Anything else CloudFormation reports (Import, Dynamic).
    Other,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Modify => "modify",
            Action::MaybeReplace => "may replace",
            Action::Replace => "replace",
            Action::Remove => "remove",
            Action::Other => "other",
        }
    }

    fn sign(self) -> &'static str {
        match self {
            Action::Add => "+",
            Action::Modify => "~",
            Action::MaybeReplace | Action::Replace => "±",
            Action::Remove => "-",
            Action::Other => "?",
        }
    }

    /// True when data or identity can be lost: the resource is removed or (maybe) replaced.
    pub fn is_destructive(self) -> bool {
        matches!(self, Action::Replace | Action::MaybeReplace | Action::Remove)
    }
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What happens.
    pub action: Action,
    /// The resource's logical id in the template.
    pub logical_id: String,
    /// Its CloudFormation type.
    pub resource_type: String,
}

/// A parameter (or a tag) whose value changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParameterChange {
    /// Parameter name.
    pub name: String,
    /// Current value (empty for a parameter the stack does not have yet).
    pub from: String,
    /// New value.
    pub to: String,
}

/// What an operation will do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Resource changes, in CloudFormation's order.
    pub changes: Vec<Change>,
    /// Parameter changes.
    pub parameters: Vec<ParameterChange>,
    /// Stack tag changes (CloudFormation puts the stack's tags on its resources).
    pub tags: Vec<ParameterChange>,
    /// What the changes mean, in a sentence each (a table replaced by a new key schema).
    pub notes: Vec<String>,
}

impl Plan {
    /// The event table `was` gives way to `now` (a new key schema: DynamoDB fixes a table's keys
    /// when it is made). CloudFormation lists the new table as added and the old one as removed;
    /// the plan shows one replacement, with the keys before and after.
    pub fn mark_table_replaced(&mut self, was: &template::EventTable, now: &template::EventTable) {
        let (old, new) = (was.logical_id(), now.logical_id());
        self.changes.retain(|c| c.logical_id != old && c.logical_id != new);
        self.changes.insert(
            0,
            Change {
                action: Action::Replace,
                logical_id: format!("{old} → {new}"),
                resource_type: "AWS::DynamoDB::Table".into(),
            },
        );
        let keys = |t: &template::EventTable| {
            let mut k = format!("{} ({})", t.partition.0, t.partition.1);
            if let Some((n, ty)) = &t.sort {
                k.push_str(&format!(", {n} ({ty})"));
            }
            k
        };
        self.notes.push(format!(
            "the event table is replaced: keys {} → {}; the new table starts empty, and the old one goes with its items unless DataRetention is Retain",
            keys(was),
            keys(now)
        ));
    }

    /// True when some resource is removed or (maybe) replaced.
    pub fn is_destructive(&self) -> bool {
        self.changes.iter().any(|c| c.action.is_destructive())
    }

    /// The destructive changes, as "Name (replace)" for messages.
    pub fn destructive_summary(&self) -> String {
        self.changes
            .iter()
            .filter(|c| c.action.is_destructive())
            .map(|c| format!("{} ({})", c.logical_id, c.action.word()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The plan as lines, coloured (anstream shows the colour only where it is wanted).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let style = match c.action {
                Action::Add => GOOD,
                Action::Modify | Action::Other => BUSY,
                _ => BAD,
            };
            let head = paint(style, &format!("{} {:<11}", c.action.sign(), c.action.word()));
            out.push_str(&format!(
                "  {head} {:<22} {}{}\n",
                c.logical_id,
                c.resource_type,
                if c.action == Action::Replace { "  (replacement: new physical resource)" } else { "" }
            ));
        }
        if self.changes.is_empty() {
            out.push_str("  (no resource changes listed)\n");
        }
        for p in &self.parameters {
            let from = if p.from.is_empty() { "\"\"" } else { &p.from };
            let to = if p.to.is_empty() { "\"\"" } else { &p.to };
            out.push_str(&format!("  parameter {}: {from} → {to}\n", p.name));
        }
        for t in &self.tags {
            let from = if t.from.is_empty() { "(none)" } else { &t.from };
            out.push_str(&format!("  tag {}: {from} → {}\n", t.name, t.to));
        }
        for n in &self.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        out
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&anstream::adapter::strip_str(&self.render()).to_string())
    }
}

/// Maps CloudFormation's action and replacement to ours.
pub fn action_of(action: Option<&ChangeAction>, replacement: Option<&CfnReplacement>) -> Action {
    match action {
        Some(ChangeAction::Add) => Action::Add,
        Some(ChangeAction::Remove) => Action::Remove,
        Some(ChangeAction::Modify) => match replacement {
            Some(CfnReplacement::True) => Action::Replace,
            Some(CfnReplacement::Conditional) => Action::MaybeReplace,
            _ => Action::Modify,
        },
        _ => Action::Other,
    }
}

/// What to do with a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// Go ahead without asking.
    Proceed,
    /// Ask the person at the terminal.
    Ask,
    /// Stop: the plan destroys something and nobody can confirm it.
    Refuse,
}

/// `--yes` never asks; a terminal always asks; without one, only a plan that replaces or removes
/// nothing goes ahead (as CI without `--yes` must never lose a table by surprise).
pub fn approval(destructive: bool, yes: bool, terminal: bool) -> Approval {
    match (yes, terminal, destructive) {
        (true, _, _) => Approval::Proceed,
        (false, true, _) => Approval::Ask,
        (false, false, true) => Approval::Refuse,
        (false, false, false) => Approval::Proceed,
    }
}

/// The resources a new stack gets: those of the template as sent (`doc`), each under a condition
/// only when the condition holds for these parameter values (a condition only CloudFormation can
/// evaluate keeps its resource in the plan).
pub fn creation_plan(doc: &serde_json::Value, params: &[(String, String)]) -> Plan {
    let changes = template::resources_in(doc)
        .into_iter()
        .filter(|r| r.condition.as_deref().is_none_or(|c| template::condition(c, params).unwrap_or(true)))
        .map(|r| Change { action: Action::Add, logical_id: r.logical_id, resource_type: r.resource_type })
        .collect();
    Plan { changes, ..Plan::default() }
}

/// Shows `plan` and asks, goes ahead or refuses, as `approval` decides.
pub fn approve(plan: &Plan, stack_name: &str, yes: bool, verb: &str) -> Result<(), Error> {
    progress::status_block(plan.render());
    match approval(plan.is_destructive(), yes, progress::stdin_is_tty()) {
        Approval::Proceed => Ok(()),
        Approval::Refuse => Err(Error::usage(
            format!(
                "the plan for stack \"{stack_name}\" replaces or removes {} and there is no terminal to confirm it",
                plan.destructive_summary()
            ),
            "review the plan above, then deploy again with --yes to apply it",
        )),
        Approval::Ask => {
            if progress::confirm(&format!("{verb} stack {stack_name}?")) {
                Ok(())
            } else {
                Err(Error::failed("deploy cancelled", "nothing was changed"))
            }
        }
    }
}

/// A change set waiting to be executed.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    /// Its ARN.
    pub id: String,
    /// What it does.
    pub plan: Plan,
}

/// What a change set is made of.
pub struct ChangeSetRequest<'a> {
    /// Stack name.
    pub stack_name: &'a str,
    /// Template body.
    pub template: &'a str,
    /// Parameters (values or UsePreviousValue).
    pub parameters: Vec<Parameter>,
    /// The stack's tags, ours included.
    pub tags: Vec<Tag>,
    /// The service role CloudFormation assumes (`None`: the stack's, or the caller's).
    pub role_arn: Option<String>,
    /// Update (the stack exists) or Create (a dry run of a new stack: CloudFormation holds an
    /// empty stack in REVIEW_IN_PROGRESS for it).
    pub kind: ChangeSetType,
    /// How long CloudFormation may take to compute it.
    pub max_wait: Duration,
}

/// Makes a change set and reads its plan; `None` when it holds no change (the change set is
/// deleted then). A change set that fails for another reason is an error naming that reason.
pub async fn create_change_set(clients: &Clients, req: ChangeSetRequest<'_>) -> Result<Option<ChangeSet>, Error> {
    let name = format!("stream-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S-%3f"));
    let out = clients
        .cfn
        .create_change_set()
        // By name: some implementations (moto) look change-set stacks up by name only.
        .stack_name(req.stack_name)
        .change_set_name(&name)
        .change_set_type(req.kind)
        .template_body(req.template)
        .set_parameters(Some(req.parameters))
        .capabilities(Capability::CapabilityIam)
        .set_tags(Some(req.tags))
        .set_role_arn(req.role_arn)
        .description("made by stream deploy")
        .send()
        .await;
    let out = match out {
        Ok(out) => out,
        // Some implementations refuse an empty update at once instead of failing the change set.
        Err(e) if e.as_service_error().is_some_and(|s| is_empty_change_set(s.message().unwrap_or_default())) => {
            return Ok(None);
        }
        Err(e) => return Err(Error::aws("CreateChangeSet", req.stack_name, e)),
    };
    let id = out.id.unwrap_or(name);

    let started = Instant::now();
    loop {
        let (status, reason) = change_set_status(clients, &id, req.stack_name).await?;
        match status {
            Some(ChangeSetStatus::CreateComplete) => break,
            Some(ChangeSetStatus::Failed) => {
                delete(clients, &id).await;
                if is_empty_change_set(&reason) {
                    return Ok(None);
                }
                return Err(Error::failed(
                    format!("CloudFormation could not plan the update of stack \"{}\": {reason}", req.stack_name),
                    "fix the cause above and deploy again",
                ));
            }
            _ if started.elapsed() > req.max_wait => {
                delete(clients, &id).await;
                return Err(Error::failed(
                    format!(
                        "the change set of stack \"{}\" was not ready within {} s",
                        req.stack_name,
                        req.max_wait.as_secs()
                    ),
                    "deploy again, or with a longer --wait",
                ));
            }
            _ => tokio::time::sleep(CHANGE_SET_POLL).await,
        }
    }
    let changes = read_changes(clients, &id, req.stack_name).await?;
    Ok(Some(ChangeSet { id, plan: Plan { changes, ..Plan::default() } }))
}

/// CloudFormation answers an UpdateStack that changes nothing with an unmodelled `ValidationError`.
pub fn is_no_update(code: Option<&str>, message: Option<&str>) -> bool {
    code == Some("ValidationError") && message.is_some_and(is_empty_change_set)
}

/// True for the reasons CloudFormation gives a change set (or an update) that changes nothing.
pub fn is_empty_change_set(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

async fn change_set_status(
    clients: &Clients,
    id: &str,
    stack_name: &str,
) -> Result<(Option<ChangeSetStatus>, String), Error> {
    let out = clients
        .cfn
        .describe_change_set()
        .change_set_name(id)
        .send()
        .await
        .map_err(|e| Error::aws("DescribeChangeSet", stack_name, e))?;
    Ok((out.status, out.status_reason.unwrap_or_default()))
}

/// Every resource change of the change set, all pages.
async fn read_changes(clients: &Clients, id: &str, stack_name: &str) -> Result<Vec<Change>, Error> {
    let mut changes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = clients
            .cfn
            .describe_change_set()
            .change_set_name(id)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| Error::aws("DescribeChangeSet", stack_name, e))?;
        for c in out.changes() {
            if let Some(rc) = c.resource_change() {
                changes.push(Change {
                    action: action_of(rc.action(), rc.replacement()),
                    logical_id: rc.logical_resource_id().unwrap_or("?").to_string(),
                    resource_type: rc.resource_type().unwrap_or_default().to_string(),
                });
            }
        }
        match out.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(changes),
        }
    }
}

/// Runs the change set.
pub async fn execute(clients: &Clients, id: &str, stack_name: &str) -> Result<(), Error> {
    clients
        .cfn
        .execute_change_set()
        .change_set_name(id)
        .send()
        .await
        .map_err(|e| Error::aws("ExecuteChangeSet", stack_name, e))?;
    Ok(())
}

/// Deletes a change set that will not run; a failure leaves only a harmless change set behind.
/// Returns whether it is gone.
pub async fn delete(clients: &Clients, id: &str) -> bool {
    match clients.cfn.delete_change_set().change_set_name(id).send().await {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(error = %e.code().unwrap_or("?"), "could not delete change set {id}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_is_marked() {
        let m = Some(&ChangeAction::Modify);
        assert_eq!(action_of(m, Some(&CfnReplacement::True)), Action::Replace);
        assert_eq!(action_of(m, Some(&CfnReplacement::Conditional)), Action::MaybeReplace);
        assert_eq!(action_of(m, Some(&CfnReplacement::False)), Action::Modify);
        assert_eq!(action_of(m, None), Action::Modify);
        assert_eq!(action_of(Some(&ChangeAction::Add), None), Action::Add);
        assert_eq!(action_of(Some(&ChangeAction::Remove), None), Action::Remove);
        assert_eq!(action_of(Some(&ChangeAction::Dynamic), None), Action::Other);
    }

    fn change(action: Action, id: &str) -> Change {
        Change { action, logical_id: id.into(), resource_type: "AWS::DynamoDB::Table".into() }
    }

    #[test]
    fn plan_lines_name_action_resource_and_replacement() {
        let plan = Plan {
            changes: vec![
                change(Action::Add, "AlarmTopic"),
                change(Action::Modify, "EventSourceMapping"),
                change(Action::Replace, "EventDataTable"),
                change(Action::Remove, "Old"),
            ],
            parameters: vec![ParameterChange { name: "BatchSize".into(), from: "100".into(), to: "50".into() }],
            tags: vec![
                ParameterChange { name: "team".into(), from: "".into(), to: "data".into() },
                ParameterChange { name: "env".into(), from: "dev".into(), to: "prod".into() },
            ],
            notes: vec![],
        };
        let text = plan.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("  + add") && lines[0].contains("AlarmTopic"), "{text}");
        assert!(lines[1].starts_with("  ~ modify") && lines[1].contains("EventSourceMapping"), "{text}");
        assert!(lines[2].starts_with("  ± replace") && lines[2].ends_with("(replacement: new physical resource)"));
        assert!(lines[3].starts_with("  - remove") && lines[3].contains("Old"));
        assert_eq!(lines[4], "  parameter BatchSize: 100 → 50");
        assert_eq!(lines[5..7], ["  tag team: (none) → data", "  tag env: dev → prod"]);
        assert!(plan.is_destructive());
        assert_eq!(plan.destructive_summary(), "EventDataTable (replace), Old (remove)");
        assert!(plan.render().contains(&paint(BAD, "± replace    ")), "replacements in red");
        assert!(plan.render().contains(&paint(GOOD, "+ add        ")), "additions in green");
        assert_eq!(anstream::adapter::strip_str(&plan.render()).to_string(), text);
        let calm = Plan { changes: vec![change(Action::Modify, "Function")], ..Plan::default() };
        assert!(!calm.is_destructive());
    }

    /// A new key schema: CloudFormation lists the old table removed and the new one added; the
    /// plan shows one replacement with the keys before and after, and asks.
    #[test]
    fn a_new_key_schema_is_shown_as_the_tables_replacement() {
        let was = template::EventTable::in_template();
        let now = template::EventTable {
            partition: ("SessionId".into(), "S".into()),
            sort: Some(("EventId".into(), "S".into())),
            ttl: None,
        };
        let mut plan = Plan {
            changes: vec![
                change(Action::Remove, "EventDataTable"),
                change(Action::Modify, "Function"),
                change(Action::Add, &now.logical_id()),
            ],
            ..Plan::default()
        };
        plan.mark_table_replaced(&was, &now);
        let text = plan.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(plan.changes.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("  ± replace") && lines[0].contains(&format!("EventDataTable → {}", now.logical_id())),
            "{text}"
        );
        assert!(lines[1].contains("Function"), "{text}");
        assert_eq!(
            lines[2],
            "  note: the event table is replaced: keys Username (S), Id (S) → SessionId (S), EventId (S); the new table starts empty, and the old one goes with its items unless DataRetention is Retain"
        );
        assert!(plan.is_destructive(), "a replaced table is asked about");
    }

    #[test]
    fn only_a_terminal_or_yes_lets_a_destructive_plan_through() {
        assert_eq!(approval(true, true, false), Approval::Proceed);
        assert_eq!(approval(false, true, true), Approval::Proceed);
        assert_eq!(approval(true, false, true), Approval::Ask);
        assert_eq!(approval(false, false, true), Approval::Ask);
        assert_eq!(approval(true, false, false), Approval::Refuse);
        assert_eq!(approval(false, false, false), Approval::Proceed);
    }

    #[test]
    fn creation_plan_lists_the_template_resources() {
        let plan = creation_plan(template::document(), &[]);
        let ids: Vec<&str> = plan.changes.iter().map(|c| c.logical_id.as_str()).collect();
        assert!(ids.contains(&"Stream") && ids.contains(&"EventDataTable") && ids.contains(&"ProducerUser"));
        assert!(!ids.contains(&"AlarmTopic"), "conditional on an alarm address");
        assert!(plan.changes.iter().all(|c| c.action == Action::Add && c.resource_type.starts_with("AWS::")));
        let with_alarm = creation_plan(template::document(), &[("AlarmEmail".into(), "ops@example.com".into())]);
        assert_eq!(with_alarm.changes.len(), plan.changes.len() + 1);
        assert!(!plan.is_destructive());
    }

    #[test]
    fn empty_update_is_recognised() {
        assert!(is_no_update(Some("ValidationError"), Some("No updates are to be performed.")));
        assert!(!is_no_update(Some("ValidationError"), Some("Template format error")));
        assert!(!is_no_update(Some("Throttling"), Some("No updates are to be performed.")));
    }

    #[test]
    fn empty_change_sets_are_recognised() {
        assert!(is_empty_change_set(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(is_empty_change_set("No updates are to be performed."));
        assert!(!is_empty_change_set("Template format error"));
    }
}
