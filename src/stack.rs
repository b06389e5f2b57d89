//! Everything about a deployed stack, in one place: finding it (one DescribeStacks), telling a
//! stack `stream` made from others (one `NotManaged` error), what its status allows (one
//! classification, `Phase`), its parameters, and the resource names from its outputs — never
//! re-derived by formatting strings. Also the function and mapping the stack holds, the event
//! schema its function runs, and the console URL of its CloudWatch dashboard.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudformation::types::Stack;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::aws::Clients;
use crate::error::Error;
use crate::schema::{self, Loaded, Schema};
use crate::template::{EventTable, MANAGED_TAG, output, param};

/// Checks a stack name before any call. CloudFormation allows `[A-Za-z][A-Za-z0-9-]*` up to 128
/// characters; the function's name (the template's `<stack>-DDBEventProcessor`) must fit Lambda's
/// 64, so 46 here.
pub fn validate_name(name: &str) -> Result<(), Error> {
    const LAMBDA_NAME_MAX: usize = 64;
    let suffix = crate::template::physical_name("Function", "").map_or(0, |n| n.len());
    let max = LAMBDA_NAME_MAX - suffix;
    let hint = format!("use 1-{max} letters, digits and hyphens, starting with a letter (e.g. --stack stream-dev)");
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let starts_with_letter = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
    if name.is_empty() || !ok_chars || !starts_with_letter || name.ends_with('-') {
        return Err(Error::usage(format!("invalid stack name \"{name}\""), hint));
    }
    if name.len() > max {
        return Err(Error::usage(format!("stack name \"{name}\" is {} characters, over {max}", name.len()), hint));
    }
    Ok(())
}

/// The resources of a deployed stack, from its outputs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outputs {
    /// Kinesis stream name.
    pub stream_name: String,
    /// Kinesis stream ARN.
    pub stream_arn: String,
    /// DynamoDB table name.
    pub table_name: String,
    /// Lambda function name.
    pub function_name: String,
    /// Region.
    pub region: String,
    /// Producer IAM user.
    pub producer_user: String,
    /// Quarantine table.
    pub rejected_table: String,
}

/// A stack's outputs by key.
fn output_map(stack: &Stack) -> HashMap<&str, &str> {
    stack.outputs().iter().filter_map(|o| Some((o.output_key()?, o.output_value()?))).collect()
}

impl Outputs {
    /// Reads the outputs of `stack`; a missing output means the stack was not made by this version.
    pub fn from_stack(stack: &Stack) -> Result<Self, Error> {
        let name = stack.stack_name().unwrap_or_default();
        let map = output_map(stack);
        let get = |key: &str| {
            map.get(key).map(|v| v.to_string()).ok_or_else(|| {
                Error::failed(
                    format!("stack \"{name}\" has no output {key}: it was not deployed by this version of stream"),
                    format!("run `stream deploy --stack {name}` to update it"),
                )
            })
        };
        Ok(Outputs {
            stream_name: get(output::STREAM_NAME)?,
            stream_arn: get(output::STREAM_ARN)?,
            table_name: get(output::TABLE_NAME)?,
            function_name: get(output::FUNCTION_NAME)?,
            region: get(output::REGION)?,
            producer_user: get(output::PRODUCER_USER)?,
            rejected_table: get(output::REJECTED_TABLE)?,
        })
    }
}

/// The stack's CloudWatch dashboard: its name and where the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dashboard {
    /// Dashboard name (the DashboardName output).
    pub name: String,
    /// The dashboard in the CloudWatch console.
    pub url: String,
}

impl Dashboard {
    /// The dashboard of `stack`, whose resources are `outputs`. `None` for a stack deployed before
    /// the template had one: it is optional (unlike `Outputs`) so such stacks still load, and it
    /// comes with their next `stream deploy`.
    pub fn from_stack(stack: &Stack, outputs: &Outputs) -> Option<Dashboard> {
        let name = output_map(stack).get(output::DASHBOARD_NAME)?.to_string();
        Some(Dashboard { url: Dashboard::url(&outputs.region, &name), name })
    }

    /// The console URL of dashboard `name` in `region` (the aws partition's console). The template
    /// names it after the stack, `[A-Za-z][A-Za-z0-9-]*`: nothing in it needs escaping.
    pub fn url(region: &str, name: &str) -> String {
        format!("https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}")
    }
}

/// The function's configuration (GetFunctionConfiguration).
pub async fn function_configuration(
    clients: &Clients,
    function: &str,
) -> Result<aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput, Error> {
    clients
        .lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .map_err(|e| Error::aws("GetFunctionConfiguration", function, e))
}

/// The stack's event source mapping: the function's mapping on the stack's stream, if it has one.
pub async fn mapping(
    clients: &Clients,
    outputs: &Outputs,
) -> Result<Option<aws_sdk_lambda::types::EventSourceMappingConfiguration>, Error> {
    let out = clients
        .lambda
        .list_event_source_mappings()
        .function_name(&outputs.function_name)
        .send()
        .await
        .map_err(|e| Error::aws("ListEventSourceMappings", &outputs.function_name, e))?;
    Ok(out
        .event_source_mappings
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.event_source_arn() == Some(outputs.stream_arn.as_str())))
}

/// The stack, or `None` when it does not exist (one DescribeStacks).
pub async fn find(clients: &Clients, stack: &str) -> Result<Option<Stack>, Error> {
    match clients.cfn.describe_stacks().stack_name(stack).send().await {
        Ok(out) => Ok(out.stacks.unwrap_or_default().into_iter().next()),
        Err(e) => {
            let missing = e.as_service_error().is_some_and(|s| is_missing_stack(s.message(), s.code()));
            if missing { Ok(None) } else { Err(Error::aws("DescribeStacks", stack, e)) }
        }
    }
}

/// CloudFormation reports a missing stack as an unmodelled `ValidationError` "Stack with id X does not exist".
pub fn is_missing_stack(message: Option<&str>, code: Option<&str>) -> bool {
    code == Some("ValidationError") && message.is_some_and(|m| m.contains("does not exist"))
}

/// A stack made by `stream deploy` whose resources can be used, with its outputs read.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The stack as DescribeStacks gave it.
    pub stack: Stack,
    /// Its resources.
    pub outputs: Outputs,
    /// Its CloudWatch dashboard, when it has one.
    pub dashboard: Option<Dashboard>,
}

impl Deployed {
    /// Reads the outputs of `stack` (see `Outputs::from_stack`) and its dashboard.
    pub fn from_stack(stack: Stack) -> Result<Deployed, Error> {
        let outputs = Outputs::from_stack(&stack)?;
        let dashboard = Dashboard::from_stack(&stack, &outputs);
        Ok(Deployed { stack, outputs, dashboard })
    }

    /// The stack's status, as CloudFormation spells it.
    pub fn status(&self) -> &str {
        status_of(&self.stack)
    }

    /// Where the function's code is: (bucket, key), the CodeBucket and CodeKey parameters.
    pub fn code(&self) -> Result<(&str, &str), Error> {
        match (self.parameter(param::CODE_BUCKET), self.parameter(param::CODE_KEY)) {
            (Some(bucket), Some(key)) => Ok((bucket, key)),
            _ => {
                let name = self.stack.stack_name().unwrap_or_default();
                Err(Error::failed(
                    format!("stack \"{name}\" does not say where its code is"),
                    format!("run `stream deploy --stack {name}` to update it"),
                ))
            }
        }
    }

    /// The current value of a parameter.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        parameter(&self.stack, name)
    }

    /// Whether anyone may run the function here (`stream local`, `redrive --local`): its role
    /// must trust a principal besides Lambda (LocalPrincipals). Refused with the flag that grants
    /// it when it trusts none; a stack from before the parameter trusted its account, and is let be.
    pub fn local_run(&self) -> Result<(), Error> {
        match self.parameter(param::LOCAL_PRINCIPALS) {
            Some("") => {
                let name = self.stack.stack_name().unwrap_or_default();
                Err(Error::config(
                    format!("stack \"{name}\" lets no one run its function here: its role trusts only Lambda"),
                    format!(
                        "run `stream deploy --stack {name} --local-principal me` (you may then assume the function's role), then this again"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Every parameter and its value.
    pub fn parameters(&self) -> BTreeMap<String, String> {
        self.stack
            .parameters()
            .iter()
            .filter_map(|p| Some((p.parameter_key()?.to_string(), p.parameter_value()?.to_string())))
            .collect()
    }
}

/// The event schema the stack's function runs: the file `deploy` kept in the artifact bucket
/// (CodeBucket, SchemaKey), or the built-in tweets schema for a stack deployed before schemas.
pub async fn schema(clients: &Clients, stack: &Stack) -> Result<Loaded, Error> {
    let name = stack.stack_name().unwrap_or_default();
    let key = parameter(stack, param::SCHEMA_KEY).filter(|k| !k.is_empty());
    let (Some(key), Some(bucket)) = (key, parameter(stack, param::CODE_BUCKET)) else {
        // A stack without SchemaKey was deployed before schemas existed: its function runs tweets.
        return schema::built_in(schema::DEFAULT)
            .ok_or_else(|| Error::failed("no built-in tweets schema", "report this as a bug"));
    };
    let object = clients.s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
        let gone = e.as_service_error().is_some_and(|s| s.is_no_such_key());
        match gone {
            true => Error::failed(
                format!("the schema of stack \"{name}\" (s3://{bucket}/{key}) is gone"),
                format!("run `stream deploy --stack {name} --schema FILE` to put it back"),
            ),
            false => Error::aws("GetObject", format!("s3://{bucket}/{key}"), e),
        }
    })?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| Error::failed(format!("reading s3://{bucket}/{key}: {e}"), "run the command again"))?;
    let text = String::from_utf8(bytes.into_bytes().to_vec()).map_err(|_| {
        Error::failed(format!("s3://{bucket}/{key} is not UTF-8 text"), "deploy again with --schema FILE")
    })?;
    schema::from_text(&text, !key.ends_with(".json"), &format!("s3://{bucket}/{key}"))
}

/// The event table a schema shapes: its keys and TTL attribute.
pub fn event_table(schema: &Schema) -> EventTable {
    let (pk, pk_type) = schema.partition_key();
    EventTable {
        partition: (pk.to_string(), pk_type.as_str().to_string()),
        sort: schema.sort_key().map(|(n, t)| (n.to_string(), t.as_str().to_string())),
        ttl: schema.ttl_attribute().map(str::to_string),
    }
}

/// The current value of a stack's parameter.
pub fn parameter<'a>(stack: &'a Stack, name: &str) -> Option<&'a str> {
    stack.parameters().iter().find(|p| p.parameter_key() == Some(name)).and_then(|p| p.parameter_value())
}

/// The status of a stack, as CloudFormation spells it.
pub fn status_of(stack: &Stack) -> &str {
    stack.stack_status().map(|s| s.as_str()).unwrap_or_default()
}

/// The stack `stream` made, ready for use: it exists, it is ours, its resources are usable.
pub async fn load(clients: &Clients, name: &str) -> Result<Deployed, Error> {
    let stack = find(clients, name).await?.ok_or_else(|| Error::StackNotFound { stack: name.into() })?;
    ensure_managed(&stack, name)?;
    let status = status_of(&stack);
    if !Phase::of(status).resources_usable(status) {
        return Err(state_error(name, status, "used"));
    }
    Deployed::from_stack(stack)
}

/// The tag `stream deploy` puts on its stacks (and on their change sets).
pub fn managed_tag() -> aws_sdk_cloudformation::types::Tag {
    aws_sdk_cloudformation::types::Tag::builder().key(MANAGED_TAG.0).value(MANAGED_TAG.1).build()
}

/// `NotManaged` unless the stack carries the tag `stream deploy` puts on its stacks.
pub fn ensure_managed(stack: &Stack, name: &str) -> Result<(), Error> {
    let managed = stack.tags().iter().any(|t| t.key() == Some(MANAGED_TAG.0) && t.value() == Some(MANAGED_TAG.1));
    if managed { Ok(()) } else { Err(Error::NotManaged { stack: name.into() }) }
}

/// What a stack's status allows: the one reading of CloudFormation's statuses.
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_Stack.html>
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Created or updated (or an update rolled back): usable, and ready for the next operation.
    Ready,
    /// An update failed with rollback disabled: usable, and may be updated again.
    UpdateFailed,
    /// An operation is running; nothing new can start until it ends.
    InProgress,
    /// Creation failed, or a deletion did: nothing of it is worth keeping; delete and create again.
    NeedsRecreate,
    /// An update failed and so did its rollback: CloudFormation needs ContinueUpdateRollback.
    RollbackFailed,
    /// Deleted.
    Deleted,
}

impl Phase {
    /// Reads a stack status. A status this version does not know counts as in progress: it is
    /// neither used nor updated, and following an operation waits for the waiter to decide.
    pub fn of(status: &str) -> Phase {
        match status {
            "CREATE_COMPLETE"
            | "UPDATE_COMPLETE"
            | "UPDATE_ROLLBACK_COMPLETE"
            | "IMPORT_COMPLETE"
            | "IMPORT_ROLLBACK_COMPLETE" => Phase::Ready,
            // An update that failed with rollback disabled can be updated again; CloudFormation may
            // still roll it back, so it does not end an operation being followed.
            "UPDATE_FAILED" => Phase::UpdateFailed,
            "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" | "DELETE_FAILED" => Phase::NeedsRecreate,
            "UPDATE_ROLLBACK_FAILED" | "IMPORT_ROLLBACK_FAILED" => Phase::RollbackFailed,
            "DELETE_COMPLETE" => Phase::Deleted,
            _ => Phase::InProgress,
        }
    }

    /// True once an operation is over, one way or the other.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Phase::InProgress | Phase::UpdateFailed)
    }

    /// True when a new update may start.
    pub fn can_update(self) -> bool {
        matches!(self, Phase::Ready | Phase::UpdateFailed)
    }

    /// True when the stack's resources exist and can be used: created, or being updated (an update
    /// or its rollback leaves the resources in place).
    pub fn resources_usable(self, status: &str) -> bool {
        match self {
            Phase::Ready | Phase::UpdateFailed | Phase::RollbackFailed => true,
            Phase::InProgress => status.starts_with("UPDATE_"),
            Phase::NeedsRecreate | Phase::Deleted => false,
        }
    }
}

/// The error for a stack whose `status` does not allow `action`, with the hint its phase calls for.
pub fn state_error(name: &str, status: &str, action: &'static str) -> Error {
    let hint = match Phase::of(status) {
        Phase::NeedsRecreate => format!("run `stream deploy --stack {name} --recreate` to delete and create it again"),
        Phase::RollbackFailed => format!(
            "fix the resource named in its events, run `aws cloudformation continue-update-rollback --stack-name {name}`, then deploy again"
        ),
        Phase::Deleted => format!("run `stream deploy --stack {name}` to create it again"),
        Phase::InProgress | Phase::Ready | Phase::UpdateFailed => {
            format!("wait until stack \"{name}\" finishes its current operation, then run the command again")
        }
    };
    Error::StackState { stack: name.into(), status: status.into(), action, hint }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::Output;

    #[test]
    fn stack_names_are_validated() {
        for ok in ["stream-dev", "a", "S1", &"a".repeat(46)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "-abc", "abc-", "a_b", "a b", "ünï", &"a".repeat(47)] {
            let err = validate_name(bad).expect_err(bad);
            assert_eq!(err.exit_code(), 2);
            assert!(err.hint().contains("letters"));
        }
    }

    #[test]
    fn statuses_are_read_once() {
        for (status, phase, usable) in [
            ("CREATE_COMPLETE", Phase::Ready, true),
            ("UPDATE_COMPLETE", Phase::Ready, true),
            ("UPDATE_ROLLBACK_COMPLETE", Phase::Ready, true),
            ("IMPORT_COMPLETE", Phase::Ready, true),
            ("CREATE_IN_PROGRESS", Phase::InProgress, false),
            ("UPDATE_IN_PROGRESS", Phase::InProgress, true),
            ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", Phase::InProgress, true),
            ("DELETE_IN_PROGRESS", Phase::InProgress, false),
            ("ROLLBACK_COMPLETE", Phase::NeedsRecreate, false),
            ("ROLLBACK_FAILED", Phase::NeedsRecreate, false),
            ("DELETE_FAILED", Phase::NeedsRecreate, false),
            ("UPDATE_ROLLBACK_FAILED", Phase::RollbackFailed, true),
            ("DELETE_COMPLETE", Phase::Deleted, false),
            ("UPDATE_FAILED", Phase::UpdateFailed, true),
            ("SOME_NEW_STATUS", Phase::InProgress, false),
        ] {
            assert_eq!(Phase::of(status), phase, "{status}");
            assert_eq!(phase.resources_usable(status), usable, "{status}");
            let terminal =
                !status.ends_with("_IN_PROGRESS") && status != "UPDATE_FAILED" && status != "SOME_NEW_STATUS";
            assert_eq!(phase.is_terminal(), terminal, "{status}");
        }
        assert!(Phase::UpdateFailed.can_update() && Phase::Ready.can_update() && !Phase::RollbackFailed.can_update());
    }

    #[test]
    fn each_phase_gets_its_own_hint() {
        let e = state_error("s1", "ROLLBACK_COMPLETE", "updated");
        assert_eq!(e.to_string(), "stack \"s1\" is in ROLLBACK_COMPLETE and cannot be updated");
        assert!(e.hint().contains("stream deploy --stack s1 --recreate"), "{}", e.hint());
        assert!(state_error("s1", "UPDATE_IN_PROGRESS", "used").hint().contains("wait until"));
        assert!(state_error("s1", "UPDATE_ROLLBACK_FAILED", "updated").hint().contains("continue-update-rollback"));
    }

    #[test]
    fn only_stacks_with_our_tag_are_ours() {
        use aws_sdk_cloudformation::types::Tag;
        let ours = Stack::builder().tags(Tag::builder().key(MANAGED_TAG.0).value(MANAGED_TAG.1).build()).build();
        assert!(ensure_managed(&ours, "s").is_ok());
        let theirs = Stack::builder().tags(Tag::builder().key(MANAGED_TAG.0).value("cdk").build()).build();
        assert!(matches!(ensure_managed(&theirs, "s"), Err(Error::NotManaged { .. })));
    }

    #[test]
    fn missing_stack_is_recognised_by_code_and_message() {
        assert!(is_missing_stack(Some("Stack with id s does not exist"), Some("ValidationError")));
        assert!(!is_missing_stack(Some("No updates are to be performed."), Some("ValidationError")));
        assert!(!is_missing_stack(Some("does not exist"), Some("AccessDenied")));
    }

    /// A stack with these outputs.
    fn stack_with(outputs: &[(&str, &str)]) -> Stack {
        let mut b = Stack::builder().stack_name("s");
        for (k, v) in outputs {
            b = b.outputs(Output::builder().output_key(*k).output_value(*v).build());
        }
        b.build()
    }

    /// The outputs every stack of ours has: what a stack deployed before the dashboard holds.
    const REQUIRED: [(&str, &str); 7] = [
        (output::STREAM_NAME, "s-Stream"),
        (output::STREAM_ARN, "arn:x"),
        (output::TABLE_NAME, "s-EventData"),
        (output::FUNCTION_NAME, "s-DDBEventProcessor"),
        (output::REGION, "eu-west-1"),
        (output::PRODUCER_USER, "s-ProducerUser-X"),
        (output::REJECTED_TABLE, "s-Rejected"),
    ];

    #[test]
    fn outputs_are_read_by_name() {
        let outputs = Outputs::from_stack(&stack_with(&REQUIRED)).expect("all outputs");
        assert_eq!(outputs.table_name, "s-EventData");
        assert_eq!(outputs.region, "eu-west-1");
        let partial = Stack::builder().stack_name("s").build();
        assert!(Outputs::from_stack(&partial).is_err());
    }

    /// A stack deployed before the dashboard still loads, without one; a newer one has its URL.
    #[test]
    fn the_dashboard_is_optional_and_read_with_its_url() {
        let old = Deployed::from_stack(stack_with(&REQUIRED)).expect("an older stack loads");
        assert_eq!(old.dashboard, None);
        assert_eq!(old.outputs.function_name, "s-DDBEventProcessor");
        let mut outputs = REQUIRED.to_vec();
        outputs.push((output::DASHBOARD_NAME, "s"));
        let new = Deployed::from_stack(stack_with(&outputs)).expect("loads");
        let url = "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards/dashboard/s";
        assert_eq!(new.dashboard, Some(Dashboard { name: "s".into(), url: url.into() }));
        assert_eq!(
            Dashboard::url("us-east-1", "stream-dev"),
            "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/stream-dev"
        );
    }
}
