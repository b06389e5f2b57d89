//! `stream deploy` and `stream destroy`: package this binary (`artifact`, whose ELF `elf` reads), keep it in an artifact
//! bucket that `stream` manages, show the plan (`plan`), create or update the stack with the
//! parameters given (`params`) while showing its events (`events`), hand the producer's access key
//! to a local profile (`producer_key`) — the steps are in `flow` — and undo all of it (`destroy`).
//! Reading a deployed stack is `stack`'s job.

pub mod artifact;
pub mod bucket;
pub mod destroy;
pub mod dry_run;
pub mod events;
pub mod flow;
pub mod params;
pub mod plan;
pub mod producer_key;

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// What an executable needs from the machine it runs on (now a leaf of its own; this path stays).
pub use crate::elf;

use crate::args::{BadValue, email_or_empty, range};
use crate::filter;

pub use destroy::{DestroyOutput, run as destroy};
pub use flow::{DeployOutput, Deployment, StackAction, run as deploy};

/// `stream deploy`
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// Upload this Linux executable as the function instead of this binary
    #[arg(long, value_name = "FILE")]
    pub bootstrap: Option<PathBuf>,

    /// The function's architecture: this binary when it is one, else the stream-<ARCH> build beside
    /// it (scripts/build --arch), or --bootstrap; default: the executable's own
    #[arg(long, value_enum, value_name = "ARCH")]
    pub arch: Option<ArchFlag>,

    /// Event schema: a TOML or JSON file, or a built-in name (tweets, clickstream, iot, orders);
    /// left out, the stack keeps its schema (tweets on create). New keys replace the table
    #[arg(long, value_name = "FILE|NAME")]
    pub schema: Option<String>,

    /// The stack's parameters; each left out keeps the stack's value (or the default on create).
    #[command(flatten)]
    pub params: StackParams,

    /// Apply the plan without asking, even when it replaces or removes resources (for CI)
    #[arg(short, long)]
    pub yes: bool,

    /// Seconds to wait for the stack operation
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    pub wait: u64,

    /// Delete and recreate a stack whose creation failed (ROLLBACK_COMPLETE and the like)
    #[arg(long)]
    pub recreate: bool,

    /// Only replace the function's code (no stack update) and wait until Lambda has it
    #[arg(long, conflicts_with_all = ["recreate", "schema", "tags", "role_arn", "s3_bucket", STACK_PARAMS])]
    pub code_only: bool,

    /// Make the change set, show the plan, delete the change set: nothing is uploaded or changed
    /// (sam deploy's --no-execute-changeset)
    #[arg(long, conflicts_with_all = ["code_only", "recreate"])]
    pub dry_run: bool,

    /// Keep the function's code in this bucket of yours (in the stack's region; stream never
    /// creates or deletes it); default: keep, or stream's managed bucket
    #[arg(long, value_name = "BUCKET", value_parser = s3_bucket)]
    pub s3_bucket: Option<String>,

    /// Stack tags, KEY=VALUE (repeat the flag or list several); CloudFormation puts them on every
    /// resource that takes tags. Tags not given keep their value
    #[arg(long, value_name = "KEY=VALUE", num_args = 1.., value_parser = tag)]
    pub tags: Vec<(String, String)>,

    /// IAM role CloudFormation assumes for this stack's operations (its service role); default:
    /// keep the stack's, or your own credentials
    #[arg(long, value_name = "ARN", value_parser = role_arn)]
    pub role_arn: Option<String>,
}

/// Tags a stack takes at most (CloudFormation's limit), ours included.
pub const MAX_TAGS: usize = 50;

/// A `--tags` entry: KEY=VALUE, as CloudFormation takes tags (key 1-128 characters, value up to
/// 256, letters, digits, spaces and `_ . : / = + - @`; `aws:` is AWS's own prefix, and the tag
/// that marks a stack as stream's is not the user's to set).
fn tag(text: &str) -> Result<(String, String), BadValue> {
    let refuse = |what: &str| BadValue {
        value: format!("{text:?}"),
        what: what.into(),
        hint: "give {flag} KEY=VALUE, e.g. {flag} team=data cost-center=42".into(),
    };
    let Some((key, value)) = text.split_once('=') else { return Err(refuse("is not KEY=VALUE")) };
    let allowed = |s: &str| s.chars().all(|c| c.is_alphanumeric() || " _.:/=+-@".contains(c));
    if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
        return Err(refuse("is not a tag (a key of 1-128 characters, a value of at most 256)"));
    }
    if !allowed(key) || !allowed(value) {
        return Err(refuse("holds a character tags cannot (letters, digits, spaces and _ . : / = + - @)"));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(refuse("uses the aws: prefix, which is AWS's own"));
    }
    if key == crate::template::MANAGED_TAG.0 {
        return Err(refuse("is the tag that marks the stack as stream's: stream sets it"));
    }
    Ok((key.to_string(), value.to_string()))
}

/// An S3 bucket name as S3 takes one: 3-63 characters, lowercase letters, digits, dots and
/// hyphens, starting and ending with a letter or digit, not an IP address.
fn s3_bucket(text: &str) -> Result<String, BadValue> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&text.len())
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(text.chars().next())
        && edge(text.chars().last())
        && !text.contains("..")
        && text.parse::<std::net::Ipv4Addr>().is_err();
    if ok {
        return Ok(text.to_string());
    }
    Err(BadValue {
        value: format!("{text:?}"),
        what: "is not an S3 bucket name".into(),
        hint: "give {flag} a bucket's name: 3-63 lowercase letters, digits, dots or hyphens".into(),
    })
}

/// `--role-arn`: the ARN of an IAM role (arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME).
fn role_arn(text: &str) -> Result<String, BadValue> {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].strip_prefix("role/").is_some_and(|name| !name.is_empty() && !name.contains('*'));
    if ok {
        return Ok(text.to_string());
    }
    Err(BadValue {
        value: format!("{text:?}"),
        what: "is not the ARN of an IAM role".into(),
        hint: "give {flag} a role's ARN, e.g. arn:aws:iam::123456789012:role/cfn-deployer".into(),
    })
}

/// Id of the clap group that holds every stack parameter flag: `--code-only` conflicts with it whole.
pub const STACK_PARAMS: &str = "stack-params";

/// The stack parameters as flags, checked against AWS's ranges by clap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
#[group(id = STACK_PARAMS, multiple = true)]
pub struct StackParams {
    /// Shards in the Kinesis stream (1-500; default: keep, or 1 on create)
    #[arg(long, value_name = "N", conflicts_with = "on_demand", value_parser = range::<u32>(1, 500))]
    pub shards: Option<u32>,

    /// On-demand capacity mode: Kinesis scales the shards (default: keep, or provisioned)
    #[arg(long)]
    pub on_demand: bool,

    /// Hours the stream keeps records (24-8760; default: keep, or 24)
    #[arg(long, value_name = "HOURS", value_parser = range::<u32>(24, 8_760))]
    pub retention_hours: Option<u32>,

    /// Seconds the mapping gathers records before invoking (0-300; default: keep, or 0)
    #[arg(long, value_name = "SECONDS", value_parser = range::<u32>(0, 300))]
    pub batching_window: Option<u32>,

    /// Batches of one shard processed at once (1-10; default: keep, or 1)
    #[arg(long, value_name = "N", value_parser = range::<u32>(1, 10))]
    pub parallelization: Option<u32>,

    /// Function memory in MB (128-10240; default: keep, or 256)
    #[arg(long, value_name = "MB", value_parser = range::<u32>(128, 10_240))]
    pub memory: Option<u32>,

    /// Function timeout in seconds (1-900; default: keep, or 60)
    #[arg(long, value_name = "SECONDS", value_parser = range::<u32>(1, 900))]
    pub timeout: Option<u32>,

    /// Email the alarms go to (iterator age, function errors, failed batches, quarantine), through SNS ('' removes it; default: keep, or none)
    #[arg(long, value_name = "ADDRESS", value_parser = email_or_empty)]
    pub alarm_email: Option<String>,

    /// Records per function invocation (1-10000; default: keep, or 100)
    #[arg(long, value_name = "N", value_parser = range::<u32>(1, 10_000))]
    pub batch_size: Option<u32>,

    /// Retries of a failing batch before Lambda moves past it (0-10000; default: keep, or 10)
    #[arg(long, value_name = "N", value_parser = range::<u32>(0, 10_000))]
    pub max_retries: Option<u32>,

    /// Skip records older than this many seconds (60-604800; default: keep, or 3600)
    #[arg(long, value_name = "SECONDS", value_parser = range::<u32>(60, 604_800))]
    pub max_record_age: Option<u32>,

    /// What happens to the tables when the stack is deleted (default: keep, or delete)
    #[arg(long, value_enum, value_name = "POLICY")]
    pub data_retention: Option<DataRetention>,

    /// Only records whose data matches (Lambda's filter grammar, e.g. '{"data":{"lang":["en"]}}');
    /// repeat for up to 10 filters, ORed (Lambda takes 5 unless the account's quota was raised);
    /// '' removes them (default: keep, or none)
    #[arg(long, value_name = "PATTERN", value_parser = filter_pattern)]
    pub filter: Vec<String>,

    /// Who may run the function on their machine (stream local): an IAM ARN, or `me` (the identity
    /// deploying); repeat for more; '' removes them (default: keep, or none; me on an emulator)
    ///
    /// The principal may then assume the function's execution role: read the stream, write the
    /// tables, send to the on-failure queue — what the function may do, for as long as it is listed.
    #[arg(long, value_name = "ARN|me", value_parser = local_principal)]
    pub local_principal: Vec<String>,
}

/// A `--local-principal`: `me`, '' (none), or the ARN of an IAM user, role or role session.
fn local_principal(text: &str) -> Result<String, BadValue> {
    let arn = text.starts_with("arn:")
        && text.split(':').nth(2).is_some_and(|service| service == "iam" || service == "sts")
        && text.split(':').count() >= 6
        && !text.contains(',')
        && !text.contains('*');
    if text.is_empty() || text == ME || arn {
        return Ok(text.to_string());
    }
    Err(BadValue {
        value: format!("{text:?}"),
        what: "is not an IAM principal ARN (no wildcards)".into(),
        hint: "give {flag} me, an ARN such as arn:aws:iam::123456789012:role/dev, or '' to remove the grant".into(),
    })
}

/// `--local-principal me`: the identity that deploys.
pub const ME: &str = "me";

/// A `--filter` pattern, checked and made compact (one line); '' stays '' (no filters).
fn filter_pattern(text: &str) -> Result<String, BadValue> {
    if text.is_empty() {
        return Ok(String::new());
    }
    let refuse = |what: String| BadValue {
        value: format!("{text:?}"),
        what,
        hint: "give {flag} a JSON pattern on data, e.g. '{\"data\":{\"lang\":[\"en\"]}}'".into(),
    };
    // Compact as written: a number keeps its text, which is what Lambda compares.
    Ok(filter::parse(text).map_err(refuse)?.compact())
}

/// `--arch`: the instruction set Lambda runs the function on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchFlag {
    /// x86_64 (Intel, AMD)
    #[value(name = "x86_64")]
    X86_64,
    /// arm64 (Graviton: about 20 % less per GB-second)
    Arm64,
}

impl From<ArchFlag> for elf::Arch {
    fn from(a: ArchFlag) -> Self {
        match a {
            ArchFlag::X86_64 => elf::Arch::X86_64,
            ArchFlag::Arm64 => elf::Arch::Arm64,
        }
    }
}

/// `--data-retention`: the tables' DeletionPolicy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataRetention {
    /// The tables are deleted with the stack.
    Delete,
    /// The tables and their items stay when the stack is deleted.
    Retain,
}

/// `stream destroy`
#[derive(Debug, Clone, Args)]
pub struct DestroyArgs {
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,

    /// Keep the event and quarantine tables with their items (the stack, stream and function go)
    #[arg(long)]
    pub keep_data: bool,

    /// Seconds to wait for the stack deletion
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    pub wait: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Deploy {
        #[command(flatten)]
        args: DeployArgs,
    }

    fn parse(args: &[&str]) -> Result<DeployArgs, clap::Error> {
        Deploy::try_parse_from(std::iter::once("deploy").chain(args.iter().copied())).map(|d| d.args)
    }

    /// `--code-only` changes no stack parameter, so every parameter flag conflicts with it.
    #[test]
    fn code_only_conflicts_with_every_stack_parameter() {
        let flags: &[&[&str]] = &[
            &["--shards", "2"],
            &["--on-demand"],
            &["--retention-hours", "48"],
            &["--batching-window", "5"],
            &["--parallelization", "2"],
            &["--memory", "512"],
            &["--timeout", "30"],
            &["--alarm-email", "ops@example.com"],
            &["--batch-size", "10"],
            &["--max-retries", "5"],
            &["--max-record-age", "600"],
            &["--data-retention", "retain"],
            &["--filter", r#"{"data":{"lang":["en"]}}"#],
            &["--recreate"],
            &["--schema", "iot"],
            &["--local-principal", "me"],
        ];
        for flag in flags {
            let mut args = vec!["--code-only"];
            args.extend_from_slice(flag);
            let err = parse(&args).expect_err(flag[0]);
            assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict, "{flag:?}");
            assert!(parse(flag).is_ok(), "{flag:?} alone is fine");
        }
        let ok = parse(&["--code-only", "--yes", "--wait", "60", "--bootstrap", "/x", "--arch", "arm64"])
            .expect("not parameters");
        assert!(ok.code_only && ok.params == StackParams::default());
        assert_eq!(ok.arch, Some(ArchFlag::Arm64));
        assert_eq!(parse(&["--arch", "x86_64"]).expect("x86_64").arch, Some(ArchFlag::X86_64));
        assert!(parse(&["--arch", "x86-64"]).is_err(), "the names Lambda uses");
    }

    /// `--local-principal` takes me, '' or an IAM ARN, never a wildcard or the whole account.
    #[test]
    fn local_principals_are_named_principals() {
        let args =
            parse(&["--local-principal", "me", "--local-principal", "arn:aws:iam::123456789012:role/dev"]).expect("ok");
        assert_eq!(args.params.local_principal, ["me", "arn:aws:iam::123456789012:role/dev"]);
        assert!(parse(&["--local-principal", ""]).is_ok(), "'' removes the grant");
        for bad in
            ["*", "arn:aws:iam::*:root", "alice", "arn:aws:s3:::bucket", "arn:aws:iam::1:user/a,arn:aws:iam::1:user/b"]
        {
            let err = parse(&["--local-principal", bad]).expect_err(bad);
            let why = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<BadValue>()).expect("ours");
            assert_eq!(why.what, "is not an IAM principal ARN (no wildcards)", "{bad}");
        }
    }

    #[test]
    fn filters_are_checked_and_made_compact() {
        let args = parse(&["--filter", "{ \"data\" : {\n \"lang\": [\"en\"] } }", "--filter", ""]).expect("valid");
        assert_eq!(args.params.filter, [r#"{"data":{"lang":["en"]}}"#, ""]);
        let args = parse(&["--filter", r#"{ "data": { "n": [3.0e2, 1.50] } }"#]).expect("valid");
        assert_eq!(args.params.filter, [r#"{"data":{"n":[3.0e2,1.50]}}"#], "numbers as written");
        let err = parse(&["--filter", r#"{"partitionKey":["a"]}"#]).expect_err("not on data");
        let bad = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<BadValue>()).expect("our error");
        assert!(bad.what.contains("filters on \"partitionKey\""), "{bad:?}");
    }

    #[test]
    fn stack_parameter_flags_are_all_in_the_group() {
        use clap::CommandFactory;
        let cmd = Deploy::command();
        let group = cmd.get_groups().find(|g| g.get_id() == STACK_PARAMS).expect("group");
        let members: Vec<&str> = group.get_args().map(|a| a.as_str()).collect();
        let declared = StackParams::augment_args(clap::Command::new("x"));
        let flags: Vec<&str> = declared.get_arguments().map(|a| a.get_id().as_str()).collect();
        assert_eq!(members.len(), 14);
        assert_eq!(members, flags);
    }
}
