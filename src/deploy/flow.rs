//! The steps of `stream deploy`: check this binary, find the stack (refusing one that is not ours
//! or not ready, recreating a failed one on `--recreate`), settle the event schema (given, or the
//! stack's), package the binary with it and upload both once, create or update the stack — its
//! event table shaped by the schema — through a plan the user approves (a new key schema is a
//! replaced table, and shown so), or, with `--code-only`, replace only the function's code; then
//! make sure the table's TTL is the schema's and the producer's profile holds a live key. Reports
//! the stack's resources and its dashboard's URL (built by `stack`).

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use aws_sdk_cloudformation::types::{Capability, Stack};
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use serde::Serialize;

use super::artifact::{self, Artifact};
use super::events::{self, Op};
use super::{DeployArgs, params, plan, producer_key};
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

/// `stream deploy`: package, upload when new, create or update the stack, hand out the producer key.
pub async fn run(args: &DeployArgs, stack_name: &str, clients: &Clients) -> Result<DeployOutput, Error> {
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
    let bucket = artifact::ensure_bucket(clients).await?;
    let key = artifact::key(stack_name, &artifact.sha256);
    let uploaded = artifact::upload_if_missing(clients, &bucket, &key, &artifact).await?;
    let schema_key = artifact::schema_key(stack_name, &schema);
    artifact::upload_schema(clients, &bucket, &schema_key, &schema).await?;

    let code = Code { bucket: &bucket, key: &key, artifact: &artifact, schema: &schema, schema_key: &schema_key };
    let (action, deployed) = match &existing {
        Some(s) if args.code_only => {
            // A code update leaves the stack as it is: its outputs are the ones just read.
            let deployed = Deployed::from_stack(s.clone())?;
            update_code(clients, &deployed.outputs.function_name, &code, Duration::from_secs(args.wait)).await?;
            (StackAction::CodeUpdated, deployed)
        }
        None => (create(clients, stack_name, args, &code).await?, stack::load(clients, stack_name).await?),
        Some(s) => {
            let was = current.as_ref().map(|c| stack::event_table(&c.schema));
            (update(clients, stack_name, s, args, &code, was).await?, stack::load(clients, stack_name).await?)
        }
    };
    let Deployed { outputs, dashboard, .. } = deployed;
    if let Some(ttl) = schema.schema.ttl_attribute() {
        dynamo::ensure_ttl(&clients.dynamodb, &outputs.table_name, ttl).await?;
    }
    let (producer_profile, new_producer_key) =
        producer_key::ensure(clients, stack_name, &outputs.producer_user).await?;
    Ok(DeployOutput {
        stack: stack_name.to_string(),
        action,
        artifact: format!("s3://{bucket}/{key}"),
        uploaded,
        zip_bytes: artifact.zip.len(),
        schema: format!("{} ({})", schema.schema.name(), schema.origin),
        outputs,
        dashboard,
        producer_profile,
        new_producer_key,
    })
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
struct Code<'a> {
    bucket: &'a str,
    key: &'a str,
    artifact: &'a Artifact,
    schema: &'a Loaded,
    schema_key: &'a str,
}

impl Code<'_> {
    /// The parameters that say where the code is, what it runs on and which schema it reads.
    fn parameters(&self) -> [(&'static str, String); 5] {
        [
            (param::CODE_BUCKET, self.bucket.to_string()),
            (param::CODE_KEY, self.key.to_string()),
            (param::ARCHITECTURE, self.artifact.arch.as_str().to_string()),
            (param::SCHEMA_NAME, self.schema.schema.name().to_string()),
            (param::SCHEMA_KEY, self.schema_key.to_string()),
        ]
    }

    /// The event table the schema shapes.
    fn table(&self) -> EventTable {
        stack::event_table(&self.schema.schema)
    }
}

/// Creates the stack after showing what it will hold, following its events.
async fn create(clients: &Clients, stack_name: &str, args: &DeployArgs, code: &Code<'_>) -> Result<StackAction, Error> {
    let mut given = args.params.values()?;
    params::resolve_local_principals(clients, &mut given, true).await?;
    let parameters = params::for_operation(&given, None, &code.parameters());
    let doc =
        template::resolved(params::retention(&parameters, None), &params::filters(&parameters, None), &code.table());
    let plan = plan::creation_plan(&doc, &params::resolved_values(&parameters, None));
    let template = doc.to_string();
    progress::status(format!("plan for new stack {stack_name}:"));
    plan::approve(&plan, stack_name, args.yes, "Create")?;
    progress::status(format!("creating stack {stack_name}"));
    let out = clients
        .cfn
        .create_stack()
        .stack_name(stack_name)
        .template_body(template)
        .set_parameters(Some(parameters))
        .capabilities(Capability::CapabilityIam)
        .tags(stack::managed_tag())
        .send()
        .await
        .map_err(|e| Error::aws("CreateStack", stack_name, e))?;
    let id = out.stack_id.unwrap_or_else(|| stack_name.to_string());
    events::follow(clients, stack_name, &id, HashSet::new(), Op::Create, Duration::from_secs(args.wait)).await?;
    Ok(StackAction::Created)
}

/// Updates the stack through a change set the user approves, following its events.
async fn update(
    clients: &Clients,
    stack_name: &str,
    existing: &Stack,
    args: &DeployArgs,
    code: &Code<'_>,
    was: Option<EventTable>,
) -> Result<StackAction, Error> {
    let mut given = args.params.values()?;
    params::resolve_local_principals(clients, &mut given, false).await?;
    let parameters = params::for_operation(&given, Some(existing), &code.parameters());
    let retention = params::retention(&parameters, Some(existing));
    let table = code.table();
    let template = template::body_for(retention, &params::filters(&parameters, Some(existing)), &table);
    let max_wait = Duration::from_secs(args.wait);
    let id = existing.stack_id().unwrap_or(stack_name).to_string();
    let parameter_changes = params::changes(existing, &parameters);
    let request = plan::UpdateRequest { stack_name, stack_id: &id, template: &template, parameters, max_wait };
    progress::status(format!("planning the update of stack {stack_name} (change set)"));
    let Some(mut change_set) = plan::create_update(clients, request).await? else {
        return Ok(StackAction::UpToDate);
    };
    change_set.plan.parameters = parameter_changes;
    if let Some(was) = was.filter(|w| w.logical_id() != table.logical_id()) {
        change_set.plan.mark_table_replaced(&was, &table);
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
