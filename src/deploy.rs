//! `stream deploy` and `stream destroy`: package this binary, keep it in an artifact bucket that
//! `stream` manages, create or update the stack while showing its events, hand the producer's access
//! key to a local profile; and undo all of it. Reading a stack's outputs is `stack`'s job.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use aws_sdk_cloudformation::client::Waiters;
use aws_sdk_cloudformation::types::{Capability, Parameter, Stack, StackEvent, Tag};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier, PublicAccessBlockConfiguration,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use crate::aws::Clients;
use crate::cli::{DeployArgs, DestroyArgs};
use crate::credentials::{self, AccessKey};
use crate::error::Error;
use crate::package::{self, Artifact};
use crate::plan;
use crate::progress;
use crate::stack::{self, Outputs};
use crate::template::{self, MANAGED_TAG, Retention, param};

/// How often stack events are fetched while an operation runs.
const EVENT_POLL: Duration = Duration::from_secs(2);

/// Deploy parameters after validation, as (template parameter, value); a parameter left out keeps
/// the stack's current value on update, or the template's default on create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployParams {
    /// The values given on the command line.
    pub values: Vec<(&'static str, String)>,
}

fn check_range(flag: &str, value: Option<u32>, min: u32, max: u32) -> Result<Option<u32>, Error> {
    match value {
        Some(v) if v < min || v > max => Err(Error::usage(
            format!("--{flag} {v} is out of range"),
            format!("give --{flag} a value from {min} to {max}"),
        )),
        other => Ok(other),
    }
}

impl DeployArgs {
    /// Checks every parameter against the ranges AWS accepts, before any call.
    pub fn validate(&self) -> Result<DeployParams, Error> {
        let mut values = Vec::new();
        for (flag, param, value, min, max) in [
            ("shards", param::SHARD_COUNT, self.shards, 1, 500),
            ("batch-size", param::BATCH_SIZE, self.batch_size, 1, 10_000),
            ("max-retries", param::MAX_RETRIES, self.max_retries, 0, 10_000),
            ("max-record-age", param::MAX_RECORD_AGE, self.max_record_age, 60, 604_800),
            ("retention-hours", param::RETENTION_HOURS, self.retention_hours, 24, 8_760),
            ("batching-window", param::BATCHING_WINDOW, self.batching_window, 0, 300),
            ("parallelization", param::PARALLELIZATION, self.parallelization, 1, 10),
            ("memory", param::MEMORY, self.memory, 128, 10_240),
            ("timeout", param::TIMEOUT, self.timeout, 1, 900),
        ] {
            if let Some(v) = check_range(flag, value, min, max)? {
                values.push((param, v.to_string()));
            }
        }
        if self.on_demand {
            values.push((param::STREAM_MODE, "ON_DEMAND".into()));
        } else if self.shards.is_some() {
            values.push((param::STREAM_MODE, "PROVISIONED".into()));
        }
        if let Some(email) = &self.alarm_email {
            let plausible =
                email.is_empty() || email.split_once('@').is_some_and(|(u, d)| !u.is_empty() && d.contains('.'));
            if !plausible {
                return Err(Error::usage(
                    format!("--alarm-email {email:?} is not an email address"),
                    "give an address like ops@example.com, or --alarm-email '' to remove it",
                ));
            }
            values.push((param::ALARM_EMAIL, email.clone()));
        }
        if let Some(r) = self.data_retention {
            let r = match r {
                crate::cli::DataRetention::Delete => Retention::Delete,
                crate::cli::DataRetention::Retain => Retention::Retain,
            };
            values.push((param::DATA_RETENTION, r.as_str().into()));
        }
        Ok(DeployParams { values })
    }
}

/// What happened to the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StackAction {
    /// The stack was created.
    Created,
    /// The stack was updated.
    Updated,
    /// Nothing to change.
    UpToDate,
    /// Only the function's code was replaced (--code-only).
    CodeUpdated,
}

/// The result of `stream deploy`.
#[derive(Debug, Clone, Serialize)]
pub struct DeployOutput {
    /// Stack name.
    pub stack: String,
    /// Created, updated or up to date.
    pub action: StackAction,
    /// Artifact location.
    pub artifact: String,
    /// False when the artifact was already in the bucket.
    pub uploaded: bool,
    /// Zip size in bytes.
    pub zip_bytes: usize,
    /// The stack's resources.
    pub outputs: Outputs,
    /// Credentials profile holding the producer's access key.
    pub producer_profile: String,
    /// True when a new producer key was made in this run.
    pub new_producer_key: bool,
}

impl fmt::Display for DeployOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.action {
            StackAction::Created => "created",
            StackAction::Updated => "updated",
            StackAction::UpToDate => "up to date: nothing to change",
            StackAction::CodeUpdated => "function code updated",
        };
        writeln!(f, "stack {}: {what}", self.stack)?;
        let o = &self.outputs;
        for (k, v) in [
            ("StreamName", &o.stream_name),
            ("StreamArn", &o.stream_arn),
            ("TableName", &o.table_name),
            ("FunctionName", &o.function_name),
            ("Region", &o.region),
            ("ProducerUserName", &o.producer_user),
        ] {
            writeln!(f, "  {k:<17} {v}")?;
        }
        write!(
            f,
            "producer credentials: profile \"{}\" in {} ({})",
            self.producer_profile,
            credentials::credentials_path().map(|p| p.display().to_string()).unwrap_or_default(),
            if self.new_producer_key { "new key" } else { "unchanged" }
        )
    }
}

/// `stream deploy`: package, upload when new, create or update the stack, hand out the producer key.
pub async fn deploy(
    args: &DeployArgs,
    params: &DeployParams,
    stack_name: &str,
    clients: &Clients,
) -> Result<DeployOutput, Error> {
    let artifact = package::package(args.bootstrap.as_deref())?;
    progress::status(format!(
        "packaged {} ({}, {:.1} MB → {:.1} MB zipped, sha256 {})",
        artifact.source.display(),
        artifact.arch.as_str(),
        artifact.binary_len as f64 / 1e6,
        artifact.zip.len() as f64 / 1e6,
        &artifact.sha256[..12]
    ));

    let mut existing = stack::describe(clients, stack_name).await?;
    if let Some(s) = existing.clone() {
        let status = s.stack_status().map(|s| s.as_str()).unwrap_or_default();
        if !stack::is_managed(&s) {
            return Err(Error::failed(
                format!("stack \"{stack_name}\" exists and was not created by stream"),
                "choose another --stack name; stream only updates stacks it created",
            ));
        }
        if status.ends_with("_IN_PROGRESS") {
            return Err(Error::StackState { stack: stack_name.into(), status: status.into(), action: "updated now" });
        }
        if status == "UPDATE_ROLLBACK_FAILED" {
            return Err(Error::failed(
                format!("stack \"{stack_name}\" is in UPDATE_ROLLBACK_FAILED and cannot be updated"),
                "fix the resource named in its events, run `aws cloudformation continue-update-rollback`, then deploy again",
            ));
        }
        // A stack whose creation failed holds no data yet: it can only be deleted and created again.
        if matches!(status, "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" | "DELETE_FAILED") {
            if !args.recreate {
                return Err(Error::StackState { stack: stack_name.into(), status: status.into(), action: "updated" });
            }
            let why = format!("deleting stack {stack_name} ({status}) to create it again");
            delete_stack(clients, stack_name, &s, &why, Duration::from_secs(args.wait)).await?;
            existing = None;
        }
    }

    if args.code_only && existing.is_none() {
        // --code-only never creates a stack (nor an artifact for one).
        return Err(Error::StackNotFound { stack: stack_name.into() });
    }
    if existing.is_none() {
        // Tables kept by `destroy --keep-data` still hold the names a new stack would take.
        for table in [format!("{stack_name}-EventData"), format!("{stack_name}-Rejected")] {
            if table_exists(clients, &table).await? {
                return Err(Error::failed(
                    format!("table {table} already exists (kept by an earlier `destroy --keep-data`?)"),
                    format!(
                        "deploy under another --stack name, or export and delete the table first \
                         (aws dynamodb delete-table --table-name {table})"
                    ),
                ));
            }
        }
    }
    let bucket = ensure_artifact_bucket(clients).await?;
    let key = artifact_key(stack_name, &artifact.sha256);
    let uploaded = upload_if_missing(clients, &bucket, &key, &artifact).await?;

    let code = Code { bucket: &bucket, key: &key, artifact: &artifact };
    let (action, outputs) = if args.code_only {
        let outputs = stack::load(clients, stack_name).await?;
        update_code(clients, &outputs.function_name, &code, Duration::from_secs(args.wait)).await?;
        (StackAction::CodeUpdated, outputs)
    } else {
        let action =
            create_or_update(clients, stack_name, existing.as_ref(), params, &code, args.wait, args.yes).await?;
        (action, stack::load(clients, stack_name).await?)
    };

    let (producer_profile, new_producer_key) = ensure_producer_key(clients, stack_name, &outputs.producer_user).await?;
    Ok(DeployOutput {
        stack: stack_name.to_string(),
        action,
        artifact: format!("s3://{bucket}/{key}"),
        uploaded,
        zip_bytes: artifact.zip.len(),
        outputs,
        producer_profile,
        new_producer_key,
    })
}

/// The artifact the function runs: where it was uploaded, and what it is.
struct Code<'a> {
    bucket: &'a str,
    key: &'a str,
    artifact: &'a Artifact,
}

/// Creates the stack, or updates it, following its events; returns what happened.
async fn create_or_update(
    clients: &Clients,
    stack_name: &str,
    existing: Option<&Stack>,
    params: &DeployParams,
    code: &Code<'_>,
    wait: u64,
    yes: bool,
) -> Result<StackAction, Error> {
    let mut parameters = vec![
        parameter(param::CODE_BUCKET, Some(code.bucket.to_string())),
        parameter(param::CODE_KEY, Some(code.key.to_string())),
        parameter(param::ARCHITECTURE, Some(code.artifact.arch.as_str().to_string())),
    ];
    // On update an absent flag keeps the stack's value (UsePreviousValue; a parameter added by a
    // newer template takes its default). On create every parameter is given, defaults included, so
    // that later updates can always refer to a previous value.
    let previous: Vec<String> = existing
        .as_ref()
        .map(|s| s.parameters().iter().filter_map(|p| p.parameter_key().map(str::to_string)).collect())
        .unwrap_or_default();
    let defaults = template::parameter_defaults();
    for name in param::ALL.iter().filter(|n| ![param::CODE_BUCKET, param::CODE_KEY, param::ARCHITECTURE].contains(n)) {
        let given = params.values.iter().find(|(p, _)| p == name).map(|(_, v)| v.clone());
        match (given, existing.is_some()) {
            (Some(v), _) => parameters.push(parameter(name, Some(v))),
            (None, true) if previous.iter().any(|p| p == name) => parameters.push(parameter(name, None)),
            (None, _) => {
                if let Some((_, d)) = defaults.iter().find(|(n, _)| n == name) {
                    parameters.push(parameter(name, Some(d.clone())));
                }
            }
        }
    }

    let retention = Retention::from_param(
        parameters.iter().find(|p| p.parameter_key() == Some(param::DATA_RETENTION)).and_then(|p| {
            p.parameter_value().or_else(|| {
                // UsePreviousValue: the stack's value.
                existing.and_then(|s| {
                    s.parameters().iter().find(|q| q.parameter_key() == Some(param::DATA_RETENTION))?.parameter_value()
                })
            })
        }),
    );
    let template = template::stack_yaml_for(retention);
    let max_wait = Duration::from_secs(wait);
    let action = match existing {
        None => {
            let alarm = parameters.iter().any(|p| {
                p.parameter_key() == Some(param::ALARM_EMAIL) && p.parameter_value().is_some_and(|v| !v.is_empty())
            });
            let plan = plan::creation_plan(&template, alarm);
            progress::status(format!("plan for new stack {stack_name}:"));
            eprint!("{}", plan.render(progress::stderr_is_tty()));
            approve(&plan, stack_name, yes, "Create")?;
            progress::status(format!("creating stack {stack_name}"));
            let out = clients
                .cfn
                .create_stack()
                .stack_name(stack_name)
                .template_body(template)
                .set_parameters(Some(parameters))
                .capabilities(Capability::CapabilityIam)
                .tags(Tag::builder().key(MANAGED_TAG.0).value(MANAGED_TAG.1).build())
                .send()
                .await
                .map_err(|e| Error::aws("CreateStack", stack_name, e))?;
            let id = out.stack_id.unwrap_or_else(|| stack_name.to_string());
            follow(clients, stack_name, &id, HashSet::new(), Op::Create, max_wait).await?;
            StackAction::Created
        }
        Some(s) => {
            let id = s.stack_id().unwrap_or(stack_name).to_string();
            let parameter_changes = parameter_changes(s, &parameters);
            let request = plan::UpdateRequest { stack_name, stack_id: &id, template: &template, parameters, max_wait };
            progress::status(format!("planning the update of stack {stack_name} (change set)"));
            let Some(mut change_set) = plan::create_update(clients, request).await? else {
                return Ok(StackAction::UpToDate);
            };
            change_set.plan.parameters = parameter_changes;
            progress::status(format!("plan for stack {stack_name}:"));
            eprint!("{}", change_set.plan.render(progress::stderr_is_tty()));
            if let Err(e) = approve(&change_set.plan, stack_name, yes, "Apply this plan to") {
                plan::delete(clients, &change_set.id).await;
                return Err(e);
            }
            let seen = recent_event_ids(clients, &id).await?;
            plan::execute(clients, &change_set.id, stack_name).await?;
            progress::status(format!("updating stack {stack_name}"));
            follow(clients, stack_name, &id, seen, Op::Update, max_wait).await?;
            StackAction::Updated
        }
    };
    Ok(action)
}

/// Asks, goes ahead or refuses, as `plan::approval` decides.
fn approve(plan: &plan::Plan, stack_name: &str, yes: bool, verb: &str) -> Result<(), Error> {
    match plan::approval(plan.is_destructive(), yes, progress::stdin_is_tty()) {
        plan::Approval::Proceed => Ok(()),
        plan::Approval::Refuse => Err(Error::usage(
            format!(
                "the plan for stack \"{stack_name}\" replaces or removes {} and there is no terminal to confirm it",
                plan.destructive_summary()
            ),
            "review the plan above, then deploy again with --yes to apply it",
        )),
        plan::Approval::Ask => {
            if progress::confirm(&format!("{verb} stack {stack_name}?")) {
                Ok(())
            } else {
                Err(Error::failed("deploy cancelled", "nothing was changed"))
            }
        }
    }
}

/// The parameters given a new value, compared with the stack's current ones.
fn parameter_changes(stack: &Stack, parameters: &[Parameter]) -> Vec<plan::ParameterChange> {
    parameters
        .iter()
        .filter_map(|p| {
            let name = p.parameter_key()?;
            let to = p.parameter_value()?;
            let from = stack
                .parameters()
                .iter()
                .find(|q| q.parameter_key() == Some(name))
                .and_then(|q| q.parameter_value())
                .unwrap_or_default();
            (from != to).then(|| plan::ParameterChange { name: name.into(), from: from.into(), to: to.into() })
        })
        .collect()
}

/// Replaces the function's code with the uploaded artifact and waits until Lambda reports
/// LastUpdateStatus Successful. Waits first for any update in progress: two updates at once fail
/// with ResourceConflictException ("an update is in progress").
async fn update_code(clients: &Clients, function: &str, code: &Code<'_>, max_wait: Duration) -> Result<(), Error> {
    let (bucket, key, artifact) = (code.bucket, code.key, code.artifact);
    use aws_sdk_lambda::client::Waiters as _;
    use aws_sdk_lambda::types::{Architecture, LastUpdateStatus};
    let current = stack::function_configuration(clients, function).await?;
    let arch = Architecture::from(artifact.arch.as_str());
    if !current.architectures().is_empty() && !current.architectures().contains(&arch) {
        return Err(Error::usage(
            format!(
                "{} is built for {}, the function runs {:?}",
                artifact.source.display(),
                artifact.arch.as_str(),
                current.architectures()
            ),
            "deploy without --code-only to change the function's architecture",
        ));
    }
    let wait = |phase: &'static str| async move {
        let done = clients.lambda.wait_until_function_updated_v2().function_name(function).wait(max_wait).await;
        done.map(|_| ()).map_err(|e| match e {
            aws_smithy_runtime_api::client::waiters::error::WaiterError::ExceededMaxWait(_) => Error::failed(
                format!("function {function} was still updating after {} s ({phase})", max_wait.as_secs()),
                "check the function in the Lambda console, or deploy with a longer --wait",
            ),
            other => Error::failed(
                format!("waiting for function {function} ({phase}): {other:?}"),
                "run the command again with -v",
            ),
        })
    };
    wait("before the update").await?;
    progress::status(format!("updating the code of function {function}"));
    clients
        .lambda
        .update_function_code()
        .function_name(function)
        .s3_bucket(bucket)
        .s3_key(key)
        .architectures(arch)
        .send()
        .await
        .map_err(|e| Error::aws("UpdateFunctionCode", function, e))?;
    wait("after the update").await?;
    let after = stack::function_configuration(clients, function).await?;
    match after.last_update_status() {
        None | Some(LastUpdateStatus::Successful) => Ok(()),
        Some(status) => Err(Error::failed(
            format!(
                "function {function} update ended {}: {}",
                status.as_str(),
                after.last_update_status_reason().unwrap_or("no reason given")
            ),
            "fix the cause and deploy again",
        )),
    }
}

fn parameter(name: &str, value: Option<String>) -> Parameter {
    let b = Parameter::builder().parameter_key(name);
    match value {
        Some(v) => b.parameter_value(v).build(),
        None => b.use_previous_value(true).build(),
    }
}

/// CloudFormation answers an update with nothing to change with an unmodelled `ValidationError`.
pub fn is_no_update(code: Option<&str>, message: Option<&str>) -> bool {
    code == Some("ValidationError") && message.is_some_and(|m| m.contains("No updates are to be performed"))
}

/// The artifact bucket `stream` manages: one per account and region, like SAM's managed bucket.
pub fn artifact_bucket_name(account: &str, region: &str) -> String {
    format!("stream-artifacts-{account}-{region}")
}

/// Key of a function zip: the stack as prefix (so destroy removes only its own), the zip's SHA-256 as name.
pub fn artifact_key(stack: &str, sha256: &str) -> String {
    format!("{stack}/{sha256}.zip")
}

async fn account_id(clients: &Clients) -> Result<String, Error> {
    let me = clients
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| Error::aws("GetCallerIdentity", "this account", e))?;
    me.account.ok_or_else(|| Error::failed("GetCallerIdentity returned no account", "check the credentials in use"))
}

/// Creates the artifact bucket when missing: private, public access blocked.
async fn ensure_artifact_bucket(clients: &Clients) -> Result<String, Error> {
    let bucket = artifact_bucket_name(&account_id(clients).await?, &clients.region);
    match clients.s3.head_bucket().bucket(&bucket).send().await {
        Ok(_) => return Ok(bucket),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => return Err(Error::aws("HeadBucket", &bucket, e)),
    }
    progress::status(format!("creating artifact bucket {bucket}"));
    let mut create = clients.s3.create_bucket().bucket(&bucket);
    // us-east-1 is the one region that takes no LocationConstraint.
    if clients.region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(clients.region.as_str()))
                .build(),
        );
    }
    create.send().await.map_err(|e| Error::aws("CreateBucket", &bucket, e))?;
    clients
        .s3
        .put_public_access_block()
        .bucket(&bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .block_public_policy(true)
                .ignore_public_acls(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| Error::aws("PutPublicAccessBlock", &bucket, e))?;
    Ok(bucket)
}

/// Uploads the zip unless an object with its hash is already there. Returns whether it uploaded.
async fn upload_if_missing(clients: &Clients, bucket: &str, key: &str, artifact: &Artifact) -> Result<bool, Error> {
    let location = format!("s3://{bucket}/{key}");
    match clients.s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => {
            progress::status(format!("artifact {location} already uploaded"));
            return Ok(false);
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => return Err(Error::aws("HeadObject", location, e)),
    }
    progress::status(format!("uploading {location}"));
    clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(artifact.zip.clone()))
        .content_type("application/zip")
        .send()
        .await
        .map_err(|e| Error::aws("PutObject", &location, e))?;
    Ok(true)
}

/// Which stack operation is being followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Update,
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

/// A stack status after which nothing more happens.
fn is_terminal(status: &str) -> bool {
    status.ends_with("_COMPLETE")
        || matches!(status, "ROLLBACK_FAILED" | "UPDATE_ROLLBACK_FAILED" | "DELETE_FAILED" | "CREATE_FAILED")
}

/// Ids of the events the stack already has, so that only this operation's events are shown.
async fn recent_event_ids(clients: &Clients, stack_id: &str) -> Result<HashSet<String>, Error> {
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
async fn follow(
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
    let status = match stack::describe(clients, stack_id).await? {
        Some(s) => s.stack_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
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
    let hint = if status == "ROLLBACK_COMPLETE" {
        format!("fix the cause, run `stream destroy --stack {stack_name}`, then deploy again")
    } else {
        "fix the cause above and run the command again".to_string()
    };
    Err(Error::StackFailed { what, hint })
}

enum WaitFailure {
    Timeout,
    Other,
}

fn waiter_error<O, E>(e: aws_smithy_runtime_api::client::waiters::error::WaiterError<O, E>) -> WaitFailure {
    match e {
        aws_smithy_runtime_api::client::waiters::error::WaiterError::ExceededMaxWait(_) => WaitFailure::Timeout,
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
        if is_stack && is_terminal(&status) {
            terminal = Some(status);
        }
    }
    Ok(terminal)
}

/// Makes sure the producer profile holds a live key of the producer user; returns the profile and
/// whether a new key was made. IAM allows two keys per user: stale ones are deleted first.
async fn ensure_producer_key(clients: &Clients, stack_name: &str, user: &str) -> Result<(String, bool), Error> {
    let path = credentials::credentials_path()?;
    let profile = stack_name.to_string();
    let current = credentials::profile_key_id(&path, &profile)?;
    let keys = list_keys(clients, user).await?;
    if current.as_ref().is_some_and(|c| keys.contains(c)) {
        return Ok((profile, false));
    }
    for stale in &keys {
        delete_key(clients, user, stale).await?;
    }
    let created = clients
        .iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .map_err(|e| Error::aws("CreateAccessKey", user, e))?;
    let key = created
        .access_key
        .map(|k| AccessKey { id: k.access_key_id, secret: k.secret_access_key })
        .ok_or_else(|| Error::failed(format!("CreateAccessKey for {user} returned no key"), "deploy again"))?;
    credentials::write_profile(&path, &profile, &key)?;
    Ok((profile, true))
}

async fn list_keys(clients: &Clients, user: &str) -> Result<Vec<String>, Error> {
    let out = clients
        .iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .map_err(|e| Error::aws("ListAccessKeys", user, e))?;
    Ok(out.access_key_metadata.into_iter().filter_map(|k| k.access_key_id).collect())
}

async fn delete_key(clients: &Clients, user: &str, key_id: &str) -> Result<(), Error> {
    clients
        .iam
        .delete_access_key()
        .user_name(user)
        .access_key_id(key_id)
        .send()
        .await
        .map_err(|e| Error::aws("DeleteAccessKey", format!("{user}/{key_id}"), e))?;
    Ok(())
}

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

/// `stream destroy`: producer keys first (so the user can be deleted), then the stack, then the
/// stack's artifacts (the bucket too once nothing else is in it). Safe to run twice.
pub async fn destroy(args: &DestroyArgs, stack_name: &str, clients: &Clients) -> Result<DestroyOutput, Error> {
    let existing = stack::describe(clients, stack_name).await?;
    if let Some(s) = &existing
        && !stack::is_managed(s)
    {
        return Err(Error::failed(
            format!("stack \"{stack_name}\" was not created by stream"),
            "stream only deletes stacks it created; delete this one with the tool that made it",
        ));
    }
    if existing.is_some() && !args.yes {
        if !progress::stdin_is_tty() {
            return Err(Error::usage(
                format!("refusing to delete stack \"{stack_name}\" without confirmation"),
                "pass --yes to delete without asking",
            ));
        }
        let what = if args.keep_data {
            "its stream and function (keeping the tables)"
        } else {
            "its stream, tables and function"
        };
        if !progress::confirm(&format!("Delete stack {stack_name}, {what}?")) {
            return Err(Error::failed("destroy cancelled", "nothing was deleted"));
        }
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
        let outputs = Outputs::from_stack(s).ok();
        if let Some(outputs) = &outputs {
            for key in list_keys(clients, &outputs.producer_user).await? {
                delete_key(clients, &outputs.producer_user, &key).await?;
                out.deleted_keys += 1;
            }
        }
        let max_wait = Duration::from_secs(args.wait);
        let current = Retention::from_param(
            s.parameters()
                .iter()
                .find(|p| p.parameter_key() == Some(param::DATA_RETENTION))
                .and_then(|p| p.parameter_value()),
        );
        if args.keep_data && current != Retention::Retain {
            retain_tables(clients, stack_name, s, max_wait).await?;
        }
        delete_stack(clients, stack_name, s, &format!("deleting stack {stack_name}"), max_wait).await?;
        out.deleted_stack = true;
        if args.keep_data || current == Retention::Retain {
            let tables = outputs.map(|o| vec![o.table_name, o.rejected_table]).unwrap_or_default();
            for table in tables {
                if !table_exists(clients, &table).await? {
                    return Err(Error::failed(
                        format!("table {table} was deleted with the stack although its DeletionPolicy was Retain"),
                        "restore it from a point-in-time backup (PITR was on); report this if the service is AWS itself",
                    ));
                }
                out.kept_tables.push(table);
            }
        }
    }
    credentials::remove_profile(&credentials::credentials_path()?, stack_name)?;

    let bucket = artifact_bucket_name(&account_id(clients).await?, &clients.region);
    let (deleted, bucket_gone) = delete_artifacts(clients, &bucket, &format!("{stack_name}/")).await?;
    out.deleted_artifacts = deleted;
    out.deleted_bucket = bucket_gone;
    Ok(out)
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
        .map(|k| parameter(k, None))
        .collect();
    parameters.push(parameter(param::DATA_RETENTION, Some(Retention::Retain.as_str().into())));
    let seen = recent_event_ids(clients, &id).await?;
    progress::status(format!("setting DataRetention=Retain on stack {stack_name} so that its tables stay"));
    let result = clients
        .cfn
        .update_stack()
        .stack_name(&id)
        .template_body(template::stack_yaml_for(Retention::Retain))
        .set_parameters(Some(parameters))
        .capabilities(Capability::CapabilityIam)
        .tags(Tag::builder().key(MANAGED_TAG.0).value(MANAGED_TAG.1).build())
        .send()
        .await;
    match result {
        Ok(_) => follow(clients, stack_name, &id, seen, Op::Update, max_wait).await,
        Err(e) if e.as_service_error().is_some_and(|s| is_no_update(s.code(), s.message())) => Ok(()),
        Err(e) => Err(Error::aws("UpdateStack", stack_name, e)),
    }
}

async fn table_exists(clients: &Clients, table: &str) -> Result<bool, Error> {
    match clients.dynamodb.describe_table().table_name(table).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(false),
        Err(e) => Err(Error::aws("DescribeTable", table, e)),
    }
}

/// Deletes `stack` (by its id, which stays valid once the name is gone), showing its events, and
/// waits until it is gone.
async fn delete_stack(
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

/// Deletes every version and delete marker of every object under `prefix` (a versioned bucket keeps
/// old versions otherwise); deletes the bucket when nothing else is left in it. Returns the number
/// of artifacts (keys) removed and whether the bucket went too.
async fn delete_artifacts(clients: &Clients, bucket: &str, prefix: &str) -> Result<(usize, bool), Error> {
    let versions = match list_versions(clients, bucket, Some(prefix)).await? {
        Some(v) => v,
        None => return Ok((0, false)),
    };
    let keys: HashSet<&str> = versions.iter().map(|(k, _)| k.as_str()).collect();
    let removed = keys.len();
    // DeleteObjects takes at most 1,000 keys per call.
    for chunk in versions.chunks(1000) {
        let objects: Vec<ObjectIdentifier> = chunk
            .iter()
            .filter_map(|(k, v)| ObjectIdentifier::builder().key(k).set_version_id(v.clone()).build().ok())
            .collect();
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| Error::failed(format!("building DeleteObjects: {e}"), "report this as a bug"))?;
        let out = clients
            .s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| Error::aws("DeleteObjects", bucket, e))?;
        if let Some(err) = out.errors().first() {
            return Err(Error::failed(
                format!(
                    "could not delete s3://{bucket}/{}: {}",
                    err.key().unwrap_or("?"),
                    err.message().unwrap_or_else(|| err.code().unwrap_or("no reason given"))
                ),
                "check s3:DeleteObjectVersion on the artifact bucket, then run destroy again",
            ));
        }
    }
    let empty = list_versions(clients, bucket, None).await?.is_none_or(|v| v.is_empty());
    if empty {
        clients.s3.delete_bucket().bucket(bucket).send().await.map_err(|e| Error::aws("DeleteBucket", bucket, e))?;
    }
    Ok((removed, empty))
}

/// (key, version id) of every object version and delete marker under `prefix` (the whole bucket
/// when `None`); `None` when the bucket does not exist.
async fn list_versions(
    clients: &Clients,
    bucket: &str,
    prefix: Option<&str>,
) -> Result<Option<Vec<(String, Option<String>)>>, Error> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = clients
            .s3
            .list_object_versions()
            .bucket(bucket)
            .set_prefix(prefix.map(str::to_string))
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) if e.as_service_error().is_some_and(|s| s.code() == Some("NoSuchBucket")) => return Ok(None),
            Err(e) => return Err(Error::aws("ListObjectVersions", bucket, e)),
        };
        out.extend(
            page.versions().iter().filter_map(|v| Some((v.key()?.to_string(), v.version_id().map(str::to_string)))),
        );
        out.extend(
            page.delete_markers()
                .iter()
                .filter_map(|m| Some((m.key()?.to_string(), m.version_id().map(str::to_string)))),
        );
        if page.is_truncated() != Some(true) {
            return Ok(Some(out));
        }
        key_marker = page.next_key_marker;
        version_marker = page.next_version_id_marker;
        if key_marker.is_none() {
            return Ok(Some(out));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> DeployArgs {
        DeployArgs {
            bootstrap: None,
            shards: None,
            on_demand: false,
            retention_hours: None,
            batching_window: None,
            parallelization: None,
            memory: None,
            timeout: None,
            alarm_email: None,
            batch_size: None,
            max_retries: None,
            max_record_age: None,
            data_retention: None,
            yes: false,
            wait: 60,
            recreate: false,
            code_only: false,
        }
    }

    #[test]
    fn parameters_are_checked_against_aws_ranges() {
        assert_eq!(args().validate().expect("defaults"), DeployParams::default());
        let ok =
            DeployArgs { shards: Some(500), batch_size: Some(10_000), memory: Some(128), timeout: Some(900), ..args() };
        let values = ok.validate().expect("in range").values;
        assert!(values.contains(&(param::SHARD_COUNT, "500".into())));
        assert!(values.contains(&(param::STREAM_MODE, "PROVISIONED".into())));
        for (bad, flag) in [
            (DeployArgs { shards: Some(0), ..args() }, "--shards 0"),
            (DeployArgs { shards: Some(501), ..args() }, "--shards 501"),
            (DeployArgs { batch_size: Some(10_001), ..args() }, "--batch-size"),
            (DeployArgs { max_retries: Some(10_001), ..args() }, "--max-retries"),
            (DeployArgs { max_record_age: Some(59), ..args() }, "--max-record-age"),
            (DeployArgs { retention_hours: Some(23), ..args() }, "--retention-hours"),
            (DeployArgs { batching_window: Some(301), ..args() }, "--batching-window"),
            (DeployArgs { parallelization: Some(11), ..args() }, "--parallelization"),
            (DeployArgs { memory: Some(127), ..args() }, "--memory"),
            (DeployArgs { timeout: Some(901), ..args() }, "--timeout"),
            (DeployArgs { alarm_email: Some("nobody".into()), ..args() }, "--alarm-email"),
        ] {
            let err = bad.validate().expect_err(flag);
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(flag), "{err}");
        }
        let on_demand = DeployArgs { on_demand: true, ..args() }.validate().expect("valid").values;
        assert_eq!(on_demand, vec![(param::STREAM_MODE, "ON_DEMAND".to_string())]);
    }

    #[test]
    fn empty_update_is_recognised() {
        assert!(is_no_update(Some("ValidationError"), Some("No updates are to be performed.")));
        assert!(!is_no_update(Some("ValidationError"), Some("Template format error")));
        assert!(!is_no_update(Some("Throttling"), Some("No updates are to be performed.")));
    }

    #[test]
    fn artifacts_are_keyed_by_stack_and_hash() {
        assert_eq!(artifact_bucket_name("123456789012", "eu-west-1"), "stream-artifacts-123456789012-eu-west-1");
        assert_eq!(artifact_key("s1", "ab12"), "s1/ab12.zip");
    }

    #[test]
    fn terminal_statuses() {
        for t in [
            "CREATE_COMPLETE",
            "UPDATE_COMPLETE",
            "ROLLBACK_COMPLETE",
            "DELETE_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "DELETE_FAILED",
        ] {
            assert!(is_terminal(t), "{t}");
        }
        for t in ["CREATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_FAILED"] {
            assert!(!is_terminal(t), "{t}");
        }
    }
}
