//! `stream destroy`: the producer's keys first (so the user can be deleted), then the stack
//! (showing its events; with `--keep-data` after setting DataRetention=Retain, so that the tables
//! stay), the local profile, and every version of the stack's artifacts (the bucket too once
//! nothing else is in it). Safe to run twice.

use std::fmt;
use std::time::Duration;

use aws_sdk_cloudformation::types::{Capability, Parameter, Stack};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use super::events::{self, Op};
use super::{DestroyArgs, bucket, params, plan, producer_key};
use crate::aws::Clients;
use crate::credentials;
use crate::dynamo;
use crate::error::Error;
use crate::progress;
use crate::stack::{self, Outputs};
use crate::template::{self, Retention, param};

/// The result of `stream destroy`.
#[derive(Debug, Clone, Serialize)]
pub struct DestroyOutput {
    /// Stack name.
    pub stack: String,
    /// False when there was no stack to delete.
    pub deleted_stack: bool,
    /// Producer access keys deleted.
    pub deleted_keys: usize,
    /// Artifacts deleted.
    pub deleted_artifacts: usize,
    /// True when the artifact bucket was empty afterwards and was deleted.
    pub deleted_bucket: bool,
    /// Tables left in place with their items (`--keep-data`, or a stack whose DataRetention is Retain).
    pub kept_tables: Vec<String>,
}

impl fmt::Display for DestroyOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.deleted_stack {
            write!(f, "stack {} deleted", self.stack)?;
        } else {
            write!(f, "stack {} does not exist; nothing to delete", self.stack)?;
        }
        write!(f, " ({} producer key(s), {} artifact(s) removed", self.deleted_keys, self.deleted_artifacts)?;
        if self.deleted_bucket {
            write!(f, ", empty artifact bucket removed")?;
        }
        write!(f, ")")?;
        if !self.kept_tables.is_empty() {
            write!(f, "\nkept with their items: {}", self.kept_tables.join(", "))?;
        }
        Ok(())
    }
}

/// `stream destroy`.
pub async fn run(args: &DestroyArgs, stack_name: &str, clients: &Clients) -> Result<DestroyOutput, Error> {
    let existing = stack::find(clients, stack_name).await?;
    if let Some(s) = &existing {
        stack::ensure_managed(s, stack_name)?;
        confirm(args, stack_name)?;
    }
    let mut out = DestroyOutput {
        stack: stack_name.to_string(),
        deleted_stack: false,
        deleted_keys: 0,
        deleted_artifacts: 0,
        deleted_bucket: false,
        kept_tables: Vec::new(),
    };
    if let Some(s) = &existing {
        delete(clients, args, stack_name, s, &mut out).await?;
    }
    credentials::remove_profile(&credentials::credentials_path()?, stack_name)?;
    // The stack's code bucket (a bucket of the user's with `deploy --s3-bucket`), else the managed
    // one; only the managed one is removed once empty.
    let managed = bucket::bucket_name(&bucket::account_id(&clients.sts).await?, &clients.region);
    let bucket = existing
        .as_ref()
        .and_then(|s| stack::parameter(s, param::CODE_BUCKET))
        .filter(|b| !b.is_empty())
        .map_or(managed.clone(), str::to_string);
    let (zips, schemas) = (format!("{stack_name}/"), bucket::schema_prefix(stack_name));
    let (deleted, bucket_gone) =
        bucket::delete_artifacts(&clients.s3, &bucket, &[&zips, &schemas], bucket == managed).await?;
    out.deleted_artifacts = deleted[0];
    out.deleted_bucket = bucket_gone;
    Ok(out)
}

/// `--yes` goes ahead; a terminal asks; anything else is refused.
fn confirm(args: &DestroyArgs, stack_name: &str) -> Result<(), Error> {
    if args.yes {
        return Ok(());
    }
    if !progress::stdin_is_tty() {
        return Err(Error::usage(
            format!("refusing to delete stack \"{stack_name}\" without confirmation"),
            "pass --yes to delete without asking",
        ));
    }
    let what =
        if args.keep_data { "its stream and function (keeping the tables)" } else { "its stream, tables and function" };
    if progress::confirm(&format!("Delete stack {stack_name}, {what}?")) {
        Ok(())
    } else {
        Err(Error::failed("destroy cancelled", "nothing was deleted"))
    }
}

/// Deletes the producer's keys and the stack; with `--keep-data` (or DataRetention=Retain) checks
/// that the tables are still there afterwards.
async fn delete(
    clients: &Clients,
    args: &DestroyArgs,
    stack_name: &str,
    s: &Stack,
    out: &mut DestroyOutput,
) -> Result<(), Error> {
    let outputs = Outputs::from_stack(s).ok();
    if let Some(outputs) = &outputs {
        for key in producer_key::list_keys(clients, &outputs.producer_user).await? {
            producer_key::delete_key(clients, &outputs.producer_user, &key).await?;
            out.deleted_keys += 1;
        }
    }
    let max_wait = Duration::from_secs(args.wait);
    let current = Retention::from_param(stack::parameter(s, param::DATA_RETENTION));
    if args.keep_data && current != Retention::Retain {
        retain_tables(clients, stack_name, s, max_wait).await?;
    }
    events::delete_stack(clients, stack_name, s, &format!("deleting stack {stack_name}"), max_wait).await?;
    out.deleted_stack = true;
    if args.keep_data || current == Retention::Retain {
        let tables = outputs.map(|o| vec![o.table_name, o.rejected_table]).unwrap_or_default();
        for table in tables {
            if !dynamo::table_exists(&clients.dynamodb, &table).await? {
                return Err(Error::failed(
                    format!("table {table} was deleted with the stack although its DeletionPolicy was Retain"),
                    "restore it from a point-in-time backup (PITR was on); report this if the service is AWS itself",
                ));
            }
            out.kept_tables.push(table);
        }
    }
    Ok(())
}

/// Sets DataRetention to Retain (the tables' DeletionPolicy) with an update that changes nothing
/// else, so that deleting the stack leaves the tables and their items.
async fn retain_tables(clients: &Clients, stack_name: &str, stack: &Stack, max_wait: Duration) -> Result<(), Error> {
    let id = stack.stack_id().unwrap_or(stack_name).to_string();
    let mut parameters: Vec<Parameter> = stack
        .parameters()
        .iter()
        .filter_map(|p| p.parameter_key())
        .filter(|k| *k != param::DATA_RETENTION)
        .map(|k| params::parameter(k, None))
        .collect();
    parameters.push(params::parameter(param::DATA_RETENTION, Some(Retention::Retain.as_str().into())));
    // The tables as they are: the event table's keys and TTL are the stack's schema's.
    let table = stack::event_table(&stack::schema(clients, stack).await?.schema);
    let seen = events::recent_event_ids(clients, &id).await?;
    progress::status(format!("setting DataRetention=Retain on stack {stack_name} so that its tables stay"));
    let result = clients
        .cfn
        .update_stack()
        .stack_name(&id)
        .template_body(template::body_for(Retention::Retain, &params::filters(&parameters, Some(stack)), &table))
        .set_parameters(Some(parameters))
        .capabilities(Capability::CapabilityIam)
        // The stack's tags as they are (tags given replace them all).
        .set_tags(Some(params::tag_list(&params::user_tags(stack))))
        .send()
        .await;
    match result {
        Ok(_) => events::follow(clients, stack_name, &id, seen, Op::Update, max_wait).await,
        Err(e) if e.as_service_error().is_some_and(|s| plan::is_no_update(s.code(), s.message())) => Ok(()),
        Err(e) => Err(Error::aws("UpdateStack", stack_name, e)),
    }
}
