//! A deployed stack as the other commands see it: its status, and the resource names from its
//! outputs, read in one place. Names are never re-derived by string formatting.

use std::collections::HashMap;

use aws_sdk_cloudformation::types::Stack;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::aws::Clients;
use crate::error::Error;
use crate::template::{MANAGED_TAG, output};

/// Checks a stack name before any call. CloudFormation allows `[A-Za-z][A-Za-z0-9-]*` up to 128
/// characters; the function name `<stack>-DDBEventProcessor` must fit Lambda's 64, so 46 here.
pub fn validate_name(name: &str) -> Result<(), Error> {
    const MAX: usize = 64 - "-DDBEventProcessor".len();
    let hint = format!("use 1-{MAX} letters, digits and hyphens, starting with a letter (e.g. --stack stream-dev)");
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let starts_with_letter = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
    if name.is_empty() || !ok_chars || !starts_with_letter || name.ends_with('-') {
        return Err(Error::usage(format!("invalid stack name \"{name}\""), hint));
    }
    if name.len() > MAX {
        return Err(Error::usage(format!("stack name \"{name}\" is {} characters, over {MAX}", name.len()), hint));
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

impl Outputs {
    /// Reads the outputs of `stack`; a missing output means the stack was not made by this version.
    pub fn from_stack(stack: &Stack) -> Result<Self, Error> {
        let name = stack.stack_name().unwrap_or_default();
        let map: HashMap<&str, &str> =
            stack.outputs().iter().filter_map(|o| Some((o.output_key()?, o.output_value()?))).collect();
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

/// The stack, or `None` when it does not exist.
pub async fn describe(clients: &Clients, stack: &str) -> Result<Option<Stack>, Error> {
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

/// The outputs of an existing stack made by `stream`, ready for use.
pub async fn load(clients: &Clients, stack: &str) -> Result<Outputs, Error> {
    let found = describe(clients, stack).await?.ok_or_else(|| Error::StackNotFound { stack: stack.into() })?;
    let status = found.stack_status().map(|s| s.as_str().to_string()).unwrap_or_default();
    if !is_managed(&found) {
        return Err(Error::failed(
            format!("stack \"{stack}\" was not created by stream"),
            "pass --stack with the name of a stack made by `stream deploy`",
        ));
    }
    if !is_usable(&status) {
        return Err(Error::StackState { stack: stack.into(), status, action: "used" });
    }
    Outputs::from_stack(&found)
}

/// Statuses in which the stack's resources exist and can be used: created, or being updated
/// (an update or its rollback leaves the resources in place).
pub fn is_usable(status: &str) -> bool {
    matches!(status, "CREATE_COMPLETE" | "IMPORT_COMPLETE" | "IMPORT_ROLLBACK_COMPLETE")
        || status.starts_with("UPDATE_")
}

/// True when the stack carries the tag `stream deploy` puts on its stacks.
pub fn is_managed(stack: &Stack) -> bool {
    stack.tags().iter().any(|t| t.key() == Some(MANAGED_TAG.0) && t.value() == Some(MANAGED_TAG.1))
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
    fn missing_stack_is_recognised_by_code_and_message() {
        assert!(is_missing_stack(Some("Stack with id s does not exist"), Some("ValidationError")));
        assert!(!is_missing_stack(Some("No updates are to be performed."), Some("ValidationError")));
        assert!(!is_missing_stack(Some("does not exist"), Some("AccessDenied")));
    }

    #[test]
    fn outputs_are_read_by_name() {
        let mut b = Stack::builder().stack_name("s");
        for (k, v) in [
            (output::STREAM_NAME, "s-Stream"),
            (output::STREAM_ARN, "arn:x"),
            (output::TABLE_NAME, "s-EventData"),
            (output::FUNCTION_NAME, "s-DDBEventProcessor"),
            (output::REGION, "eu-west-1"),
            (output::PRODUCER_USER, "s-ProducerUser-X"),
            (output::REJECTED_TABLE, "s-Rejected"),
        ] {
            b = b.outputs(Output::builder().output_key(k).output_value(v).build());
        }
        let outputs = Outputs::from_stack(&b.build()).expect("all outputs");
        assert_eq!(outputs.table_name, "s-EventData");
        assert_eq!(outputs.region, "eu-west-1");
        let partial = Stack::builder().stack_name("s").build();
        assert!(Outputs::from_stack(&partial).is_err());
    }
}
