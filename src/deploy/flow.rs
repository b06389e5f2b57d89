//! The steps of `stream deploy`: check this binary, find the stack (refusing one that is not ours
//! or not ready, recreating a failed one on `--recreate`), settle the event schema (given, or the
//! stack's), package the binary with it and upload both once, create or update the stack — its
//! event table shaped by the schema — through a plan the user approves (a new key schema is a
//! replaced table, and shown so), or, with `--code-only`, replace only the function's code; then
//! make sure the table's TTL is the schema's and the producer's profile holds a live key. Reports
//! the stack's resources and its dashboard's URL (built by `stack`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter, Stack};
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use super::artifact::{self, Artifact};
use super::bucket::{self, Upload};
use super::events::{self, Op};
use super::{DeployArgs, dry_run, params, plan, producer_key};
use crate::aws::Clients;
use crate::credentials;
use crate::dynamo;
use crate::error::Error;
use crate::progress;
use crate::schema::{self, Loaded};
use crate::stack::{self, Dashboard, Deployed, Outputs, Phase};
use crate::template::{self, EventTable, param};

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
    /// The event schema the function runs.
    pub schema: String,
    /// The stack's resources.
    pub outputs: Outputs,
    /// The stack's CloudWatch dashboard; `None` only after `--code-only` on a stack deployed before
    /// it existed.
    pub dashboard: Option<Dashboard>,
    /// The stack's tags (stream's own left out): CloudFormation puts them on its resources.
    pub tags: BTreeMap<String, String>,
    /// The service role CloudFormation uses for the stack, if it has one.
    pub role_arn: Option<String>,
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
        writeln!(f, "  {:<17} {}", "Schema", self.schema)?;
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
        if !self.tags.is_empty() {
            let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "  {:<17} {}", "Tags", tags.join(" "))?;
        }
        if let Some(role) = &self.role_arn {
            writeln!(f, "  {:<17} {role}", "RoleARN")?;
        }
        match &self.dashboard {
            Some(d) => writeln!(f, "  {:<17} {}", "Dashboard", d.url)?,
            None => writeln!(f, "  {:<17} none yet: deploy without --code-only to add it", "Dashboard")?,
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

/// What `stream deploy` did: deployed, or (`--dry-run`) only planned.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Deployment {
    /// The stack is created, updated, up to date, or has new code.
    Done(DeployOutput),
    /// The plan of a dry run; nothing changed.
    Planned(dry_run::Planned),
}

impl fmt::Display for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deployment::Done(d) => d.fmt(f),
            Deployment::Planned(p) => p.fmt(f),
        }
    }
}

/// `stream deploy`: package, upload when new, create or update the stack, hand out the producer key.
pub async fn run(args: &DeployArgs, stack_name: &str, clients: &Clients) -> Result<Deployment, Error> {
    let executable = artifact::read_executable(args.bootstrap.as_deref(), args.arch.map(Into::into))?;
    let given = args.schema.as_deref().map(schema::load).transpose()?;
    let existing = existing_stack(clients, args, stack_name).await?;
    let current = match &existing {
        Some(s) => Some(stack::schema(clients, s).await?),
        // --code-only never creates a stack (nor an artifact for one).
        None if args.code_only => return Err(Error::StackNotFound { stack: stack_name.into() }),
        None => None,
    };
    let schema = match (given, &current) {
        (Some(g), _) => g,
        (None, Some(c)) => c.clone(),
        (None, None) => schema::built_in(schema::DEFAULT)
            .ok_or_else(|| Error::failed("no built-in tweets schema", "report this as a bug"))?,
    };
    let artifact = executable.package(&schema.schema)?;
    progress::status(format!(
        "packaged {} ({}, {:.1} MB → {:.1} MB zipped, sha256 {}) with schema {}",
        artifact.source.display(),
        artifact.arch.as_str(),
        artifact.binary_len as f64 / 1e6,
        artifact.zip.len() as f64 / 1e6,
        &artifact.sha256[..12],
        schema.schema.name()
    ));
    if existing.is_none() {
        ensure_names_free(clients, stack_name, &stack::event_table(&schema.schema)).await?;
    }
    // --s3-bucket, else the bucket the stack's code is in now (a bucket of the user's stays theirs).
    let kept = existing.as_ref().and_then(|s| stack::parameter(s, param::CODE_BUCKET)).filter(|b| !b.is_empty());
    let code_bucket = bucket::code_bucket(clients, args.s3_bucket.as_deref().or(kept), !args.dry_run).await?;
    let bucket = code_bucket.name.clone();
    let key = bucket::key(stack_name, &artifact.sha256);
    let schema_key = bucket::schema_key(stack_name, &schema);
    let code = Code { bucket: &bucket, key: &key, artifact: &artifact, schema: &schema, schema_key: &schema_key };
    let was = current.as_ref().map(|c| stack::event_table(&c.schema));
    if args.dry_run {
        let planned = dry_run::run(clients, stack_name, args, existing.as_ref(), &code, was).await?;
        return Ok(Deployment::Planned(planned));
    }
    let upload = Upload { key: &key, zip: &artifact.zip, schema_key: &schema_key, schema: &schema };
    let uploaded = bucket::upload(&clients.s3, &clients.region, &code_bucket, &upload).await?;

    let (action, deployed) = match &existing {
        Some(s) if args.code_only => {
            // A code update leaves the stack as it is: its outputs are the ones just read.
            let deployed = Deployed::from_stack(s.clone())?;
            update_code(clients, &deployed.outputs.function_name, &code, Duration::from_secs(args.wait)).await?;
            (StackAction::CodeUpdated, deployed)
        }
        None => (create(clients, stack_name, args, &code).await?, stack::load(clients, stack_name).await?),
        Some(s) => (update(clients, stack_name, s, args, &code, was).await?, stack::load(clients, stack_name).await?),
    };
    let Deployed { outputs, dashboard, stack: now, .. } = deployed;
    if let Some(ttl) = schema.schema.ttl_attribute() {
        dynamo::ensure_ttl(&clients.dynamodb, &outputs.table_name, ttl).await?;
    }
    let (producer_profile, new_producer_key) =
        producer_key::ensure(clients, stack_name, &outputs.producer_user).await?;
    Ok(Deployment::Done(DeployOutput {
        stack: stack_name.to_string(),
        action,
        artifact: format!("s3://{bucket}/{key}"),
        uploaded,
        zip_bytes: artifact.zip.len(),
        schema: format!("{} ({})", schema.schema.name(), schema.origin),
        outputs,
        dashboard,
        tags: params::user_tags(&now),
        role_arn: now.role_arn().map(str::to_string),
        producer_profile,
        new_producer_key,
    }))
}

/// The stack as it is before the deploy: `None` when there is none (or `--recreate` deleted a
/// failed one). A stack that is not ours, or whose status allows no update, is refused.
async fn existing_stack(clients: &Clients, args: &DeployArgs, stack_name: &str) -> Result<Option<Stack>, Error> {
    let Some(s) = stack::find(clients, stack_name).await? else { return Ok(None) };
    stack::ensure_managed(&s, stack_name)?;
    let status = stack::status_of(&s);
    match Phase::of(status) {
        phase if phase.can_update() => Ok(Some(s)),
        Phase::Deleted => Ok(None),
        // A stack whose creation failed holds no data yet: it can only be deleted and created again.
        Phase::NeedsRecreate if args.recreate => {
            let why = format!("deleting stack {stack_name} ({status}) to create it again");
            events::delete_stack(clients, stack_name, &s, &why, Duration::from_secs(args.wait)).await?;
            Ok(None)
        }
        Phase::InProgress => Err(stack::state_error(stack_name, status, "updated now")),
        _ => Err(stack::state_error(stack_name, status, "updated")),
    }
}

/// Tables kept by `destroy --keep-data` still hold the names a new stack would give its tables.
async fn ensure_names_free(clients: &Clients, stack_name: &str, table: &EventTable) -> Result<(), Error> {
    let doc = template::resolved(template::Retention::Delete, &[], table);
    for logical_id in template::retained_tables_in(&doc) {
        let Some(table) = template::physical_name_in(&doc, &logical_id, stack_name) else { continue };
        if dynamo::table_exists(&clients.dynamodb, &table).await? {
            return Err(Error::failed(
                format!("table {table} already exists (kept by an earlier `destroy --keep-data`?)"),
                format!(
                    "deploy under another --stack name, or export and delete the table first \
                     (aws dynamodb delete-table --table-name {table})"
                ),
            ));
        }
    }
    Ok(())
}

/// The artifact the function runs: where it was uploaded, what it is, and its schema.
pub(super) struct Code<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub artifact: &'a Artifact,
    pub schema: &'a Loaded,
    pub schema_key: &'a str,
}

impl Code<'_> {
    /// The parameters that say where the code is, what it runs on and which schema it reads.
    pub(super) fn parameters(&self) -> [(&'static str, String); 5] {
        [
            (param::CODE_BUCKET, self.bucket.to_string()),
            (param::CODE_KEY, self.key.to_string()),
            (param::ARCHITECTURE, self.artifact.arch.as_str().to_string()),
            (param::SCHEMA_NAME, self.schema.schema.name().to_string()),
            (param::SCHEMA_KEY, self.schema_key.to_string()),
        ]
    }

    /// The event table the schema shapes.
    pub(super) fn table(&self) -> EventTable {
        stack::event_table(&self.schema.schema)
    }
}

/// What a create or an update sends, and what it changes of the stack's settings.
pub(super) struct Request {
    /// Every parameter: a value, or UsePreviousValue.
    pub parameters: Vec<Parameter>,
    /// The template as sent (the table shaped by the schema, the retention and filters written in).
    pub doc: serde_json::Value,
    /// The user's tags after this deploy.
    pub tags: BTreeMap<String, String>,
    /// Parameters that change (an update's).
    pub parameter_changes: Vec<plan::ParameterChange>,
    /// Tags that change.
    pub tag_changes: Vec<plan::ParameterChange>,
}

/// The request for `existing` (`None`: a new stack) with the flags given and `code`.
pub(super) async fn request(
    clients: &Clients,
    args: &DeployArgs,
    existing: Option<&Stack>,
    code: &Code<'_>,
) -> Result<Request, Error> {
    let mut given = args.params.values()?;
    if let Some(warning) = args.params.filter_warning() {
        progress::status(warning);
    }
    params::resolve_local_principals(clients, &mut given, existing.is_none()).await?;
    let parameters = params::for_operation(&given, existing, &code.parameters());
    let retention = params::retention(&parameters, existing);
    let doc = template::resolved(retention, &params::filters(&parameters, existing), &code.table());
    let tags = params::tags_after(existing, &args.tags)?;
    let before = existing.map(params::user_tags).unwrap_or_default();
    let tag_changes = params::tag_changes(&before, &tags);
    let parameter_changes = existing.map(|s| params::changes(s, &parameters)).unwrap_or_default();
    Ok(Request { parameters, doc, tags, parameter_changes, tag_changes })
}

/// Creates the stack after showing what it will hold, following its events.
async fn create(clients: &Clients, stack_name: &str, args: &DeployArgs, code: &Code<'_>) -> Result<StackAction, Error> {
    let req = request(clients, args, None, code).await?;
    let mut plan = plan::creation_plan(&req.doc, &params::resolved_values(&req.parameters, None));
    plan.tags = req.tag_changes;
    progress::status(format!("plan for new stack {stack_name}:"));
    plan::approve(&plan, stack_name, args.yes, "Create")?;
    progress::status(format!("creating stack {stack_name}"));
    let out = clients
        .cfn
        .create_stack()
        .stack_name(stack_name)
        .template_body(req.doc.to_string())
        .set_parameters(Some(req.parameters))
        .capabilities(Capability::CapabilityIam)
        .set_tags(Some(params::tag_list(&req.tags)))
        .set_role_arn(args.role_arn.clone())
        .send()
        .await
        .map_err(|e| Error::aws("CreateStack", stack_name, e))?;
    let id = out.stack_id.unwrap_or_else(|| stack_name.to_string());
    events::follow(clients, stack_name, &id, HashSet::new(), Op::Create, Duration::from_secs(args.wait)).await?;
    Ok(StackAction::Created)
}

/// Updates the stack through a change set the user approves, following its events. Tags that
/// changed alone (a change set may hold no change for them) are applied by a tags-only update.
async fn update(
    clients: &Clients,
    stack_name: &str,
    existing: &Stack,
    args: &DeployArgs,
    code: &Code<'_>,
    was: Option<EventTable>,
) -> Result<StackAction, Error> {
    let req = request(clients, args, Some(existing), code).await?;
    let max_wait = Duration::from_secs(args.wait);
    let id = existing.stack_id().unwrap_or(stack_name).to_string();
    let (tags, tag_changes) = (req.tags.clone(), req.tag_changes.clone());
    let change_set_request = plan::ChangeSetRequest {
        stack_name,
        template: &req.doc.to_string(),
        parameters: req.parameters,
        tags: params::tag_list(&req.tags),
        role_arn: args.role_arn.clone(),
        kind: ChangeSetType::Update,
        max_wait,
    };
    progress::status(format!("planning the update of stack {stack_name} (change set)"));
    let Some(mut change_set) = plan::create_change_set(clients, change_set_request).await? else {
        return retag(clients, stack_name, &id, args, &tags, tag_changes).await;
    };
    change_set.plan.parameters = req.parameter_changes;
    change_set.plan.tags = tag_changes;
    if let Some(was) = was.filter(|w| w.logical_id() != code.table().logical_id()) {
        change_set.plan.mark_table_replaced(&was, &code.table());
    }
    progress::status(format!("plan for stack {stack_name}:"));
    if let Err(e) = plan::approve(&change_set.plan, stack_name, args.yes, "Apply this plan to") {
        plan::delete(clients, &change_set.id).await;
        return Err(e);
    }
    let seen = events::recent_event_ids(clients, &id).await?;
    plan::execute(clients, &change_set.id, stack_name).await?;
    progress::status(format!("updating stack {stack_name}"));
    events::follow(clients, stack_name, &id, seen, Op::Update, max_wait).await?;
    // Where the change set's tags did not reach the stack (an emulator may drop them), set them.
    retag(clients, stack_name, &id, args, &tags, Vec::new()).await.map(|_| StackAction::Updated)
}

/// Sets the stack's tags when they are not `tags` yet, by an update that keeps its template and
/// parameters (as `aws cloudformation update-stack --use-previous-template --tags` does): the
/// change CloudFormation makes when only tags change. Up to date when they already are.
async fn retag(
    clients: &Clients,
    stack_name: &str,
    id: &str,
    args: &DeployArgs,
    tags: &BTreeMap<String, String>,
    changes: Vec<plan::ParameterChange>,
) -> Result<StackAction, Error> {
    let now = stack::find(clients, stack_name).await?.ok_or(Error::StackNotFound { stack: stack_name.into() })?;
    if params::user_tags(&now) == *tags {
        return Ok(StackAction::UpToDate);
    }
    let plan = plan::Plan { tags: changes, ..plan::Plan::default() };
    if !plan.tags.is_empty() {
        progress::status(format!("plan for stack {stack_name}:"));
        plan::approve(&plan, stack_name, args.yes, "Apply this plan to")?;
    }
    let keep: Vec<Parameter> =
        now.parameters().iter().filter_map(|p| p.parameter_key()).map(|k| params::parameter(k, None)).collect();
    let seen = events::recent_event_ids(clients, id).await?;
    progress::status(format!("updating the tags of stack {stack_name}"));
    let sent = clients
        .cfn
        .update_stack()
        .stack_name(id)
        .use_previous_template(true)
        .set_parameters(Some(keep))
        .capabilities(Capability::CapabilityIam)
        .set_tags(Some(params::tag_list(tags)))
        .set_role_arn(args.role_arn.clone())
        .send()
        .await;
    match sent {
        Ok(_) => {}
        // AWS updates a stack whose tags alone change; an endpoint that answers this is one that
        // keeps no tag changes (moto): say so rather than report tags the stack does not have.
        Err(e) if e.as_service_error().is_some_and(|s| plan::is_no_update(s.code(), s.message())) => {
            return Err(Error::failed(
                format!(
                    "the tags of stack {stack_name} were not changed: the CloudFormation endpoint answered \
                     \"No updates are to be performed\" to a tags-only update"
                ),
                "this endpoint does not update a stack's tags (AWS does): give --tags when the stack is created",
            ));
        }
        Err(e) => return Err(Error::aws("UpdateStack", stack_name, e)),
    }
    events::follow(clients, stack_name, id, seen, Op::Update, Duration::from_secs(args.wait)).await?;
    Ok(StackAction::Updated)
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
            WaiterError::ExceededMaxWait(_) => Error::failed(
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
