//! The command line: `Cli` (the global flags, named as in the AWS CLI, and one subcommand), the
//! subcommands as one enum over each command's own clap type, and `parse`, which prints clap's
//! refusals as our two lines (what is wrong, what to do) with exit code 2.

use clap::error::{ContextKind, ContextValue, ErrorFormatter, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::args::BadValue;
use crate::aws::AwsArgs;
use crate::capacity::PlanArgs;
use crate::deploy::{DeployArgs, DestroyArgs};
use crate::error::{EXIT_CODES_HELP, exit};
use crate::local::LocalArgs;
use crate::logs::LogsArgs;
use crate::output::{Formats, Output, SUMMARY};
use crate::produce::ProduceArgs;
use crate::redrive::RedriveArgs;
use crate::replay::ReplayArgs;
use crate::scan::ScanArgs;
use crate::schemas::SchemaArgs;
use crate::status::StatusArgs;
use crate::tail::TailArgs;

/// `stream --version`: the package version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("STREAM_COMMIT"), ")");

/// Default stack name when neither --stack nor STREAM_STACK is given.
pub const DEFAULT_STACK: &str = "stream-dev";

/// Real-time stream processing on AWS: Kinesis → Lambda → DynamoDB, in one binary.
#[derive(Debug, Parser)]
#[command(name = "stream", version = VERSION, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes, named as in the AWS CLI.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// AWS region (default: AWS_REGION, then the profile's region)
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,

    /// Named profile from ~/.aws/config and ~/.aws/credentials
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,

    /// Send every AWS call to this endpoint (e.g. a local emulator); without it, AWS_ENDPOINT_URL,
    /// AWS_ENDPOINT_URL_<SERVICE> and the profile's endpoints apply, as in the AWS CLI
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// CloudFormation stack that holds the pipeline
    #[arg(long, global = true, env = "STREAM_STACK", default_value = DEFAULT_STACK, value_name = "NAME")]
    pub stack: String,

    /// Show the cause chain of errors (-v) and debug logs (-vv)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Output format (default: AWS_DEFAULT_OUTPUT, then the profile's output, then the command's
    /// own). jsonl streams one object a line; csv is scan-table's
    #[arg(short, long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Output>,
}

impl From<&GlobalArgs> for AwsArgs {
    fn from(g: &GlobalArgs) -> Self {
        AwsArgs { region: g.region.clone(), profile: g.profile.clone(), endpoint_url: g.endpoint_url.clone() }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update the stack, uploading this binary as the function
    Deploy(DeployArgs),
    /// Delete the stack, its artifacts and the producer's access key
    Destroy(DestroyArgs),
    /// Show the stack, the mapping, item counts and the last hour's metrics
    Status(StatusArgs),
    /// Put events into the stack's stream: synthetic, a JSON-lines file, stdin, or live posts
    Produce(ProduceArgs),
    /// Run the deployed function here as Lambda would (its bootstrap, the stack's mapping settings)
    Local(LocalArgs),
    /// Print the table's items (or the quarantined records)
    ScanTable(ScanArgs),
    /// Print the function's log (CloudWatch Logs, or `stream local`'s with --local); -f follows it
    Logs(LogsArgs),
    /// Follow the stream's records across all shards (each shard read at most once a second)
    Tail(TailArgs),
    /// Put quarantined records back into the stream (after a fix)
    Replay(ReplayArgs),
    /// Send the batches the mapping gave up on (its on-failure queue) through the function again
    Redrive(RedriveArgs),
    /// Shards, concurrency, write units and monthly cost for a record rate, before traffic arrives
    Plan(PlanArgs),
    /// Check an event schema file against sample events, or show the stack's schema
    Schema(SchemaArgs),
    /// Print the embedded CloudFormation template
    Template,
    /// Print a completion script for your shell (bash, zsh, fish, powershell, elvish)
    #[command(after_help = COMPLETIONS_HELP)]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Show a live line with a warning and a status line under it, with no AWS (for tests on a
    /// terminal: tests/it/terminal.rs)
    #[command(hide = true)]
    LiveLineCheck,
}

impl Command {
    /// The name as typed (`scan-table`).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Deploy(_) => "deploy",
            Command::Destroy(_) => "destroy",
            Command::Status(_) => "status",
            Command::Produce(_) => "produce",
            Command::Local(_) => "local",
            Command::ScanTable(_) => "scan-table",
            Command::Logs(_) => "logs",
            Command::Tail(_) => "tail",
            Command::Replay(_) => "replay",
            Command::Redrive(_) => "redrive",
            Command::Plan(_) => "plan",
            Command::Schema(a) => match a.action {
                crate::schemas::SchemaAction::Check { .. } => "schema check",
                crate::schemas::SchemaAction::Show => "schema show",
            },
            Command::Template => "template",
            Command::Completions { .. } => "completions",
            Command::LiveLineCheck => "live-line-check",
        }
    }

    /// What the command can print. A summary is one document (text, json, a table of it); what
    /// streams adds jsonl; a file or a script is printed as it is (the template also as JSON).
    pub fn formats(&self) -> Formats {
        use Output::{Csv, Json, Jsonl, Table, Text};
        match self {
            Command::ScanTable(_) => Formats { default: Table, accepted: &[Table, Text, Json, Jsonl, Csv] },
            Command::Tail(_) => Formats { default: Table, accepted: &[Table, Text, Json, Jsonl] },
            Command::Logs(_) => Formats { default: Text, accepted: &[Text, Json, Jsonl] },
            Command::Template => Formats { default: Text, accepted: &[Text, Json] },
            Command::Completions { .. } | Command::LiveLineCheck => Formats { default: Text, accepted: &[Text] },
            _ => SUMMARY,
        }
    }
}

/// Where each shell's completion script goes, for `stream completions --help`.
const COMPLETIONS_HELP: &str = "Load them:
  bash        stream completions bash > ~/.local/share/bash-completion/completions/stream
  zsh         stream completions zsh > \"${fpath[1]}/_stream\"   (then: compinit)
  fish        stream completions fish > ~/.config/fish/completions/stream.fish
  powershell  stream completions powershell >> $PROFILE";

/// Writes the completion script for `shell` to `out`, without hidden subcommands (clap_complete
/// lists them: it offers what parses, not what is shown).
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    let full = Cli::command();
    let mut shown = clap::Command::new("stream")
        .version(VERSION)
        .about(full.get_about().cloned().unwrap_or_default())
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    clap_complete::generate(shell, &mut shown, "stream", out);
}

/// Parses the process's arguments. Help and version are printed as clap prints them (`Err(0)`);
/// anything clap refuses is printed as two lines on stderr and gives `Err(2)`.
pub fn parse() -> Result<Cli, i32> {
    parse_from(std::env::args_os())
}

/// `parse` over given arguments.
pub fn parse_from<I, T>(args: I) -> Result<Cli, i32>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let result = Cli::command().try_get_matches_from(&args).and_then(|m| Cli::from_arg_matches(&m));
    match result {
        Ok(cli) => Ok(cli),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Err(exit::OK)
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            Err(exit::USAGE)
        }
        Err(e) => {
            let (what, hint) = refusal(&e, &args);
            eprintln!("stream: error: {what}");
            eprintln!("hint: {hint}");
            Err(exit::USAGE)
        }
    }
}

/// What clap refused, as (what is wrong, what to do), read from the error's kind and context:
/// never from its rendered text, whose wording is clap's to change.
pub fn refusal<F: ErrorFormatter>(e: &clap::error::Error<F>, args: &[std::ffi::OsString]) -> (String, String) {
    let arg = text(e, ContextKind::InvalidArg).unwrap_or_default();
    // "--count <N>" names the flag "--count".
    let flag = arg.split_whitespace().next().unwrap_or_default().to_string();
    let value = text(e, ContextKind::InvalidValue).unwrap_or_default();
    let source = std::error::Error::source(e);
    if let Some(bad) = source.and_then(|s| s.downcast_ref::<BadValue>()) {
        return bad.lines(&flag);
    }
    let help = help_command(args);
    let see = format!("see {help} for what it takes");
    let quoted = |kind| strings(e, kind).iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(" or ");
    match e.kind() {
        ErrorKind::ArgumentConflict if strings(e, ContextKind::PriorArg) == [arg.clone()] => {
            (format!("{flag} is given more than once"), format!("give {flag} once"))
        }
        ErrorKind::ArgumentConflict => conflict(e, args).unwrap_or_else(|| {
            (format!("{flag} cannot be used with {}", strings(e, ContextKind::PriorArg).join(", ")), see)
        }),
        ErrorKind::InvalidValue => {
            let valid = strings(e, ContextKind::ValidValue).into_iter().filter(|v| !v.is_empty()).collect::<Vec<_>>();
            let mut hint = match valid.is_empty() {
                true => format!("give {flag} a value (see {help})"),
                false => format!("give {flag} one of: {}", valid.join(", ")),
            };
            if e.get(ContextKind::SuggestedValue).is_some() {
                hint = format!("did you mean {}? {hint}", quoted(ContextKind::SuggestedValue));
            }
            let what = match value.is_empty() {
                true => format!("{flag} needs a value"),
                false => format!("invalid value '{value}' for '{arg}'"),
            };
            (what, hint)
        }
        ErrorKind::ValueValidation => {
            let why = source.map(|s| format!(": {s}")).unwrap_or_default();
            (format!("invalid value '{value}' for '{arg}'{why}"), see)
        }
        ErrorKind::UnknownArgument => {
            let hint = match e.get(ContextKind::SuggestedArg) {
                Some(_) => format!("did you mean {}? (see {help})", strings(e, ContextKind::SuggestedArg).join(" or ")),
                None => see,
            };
            (format!("unexpected argument '{arg}'"), hint)
        }
        ErrorKind::InvalidSubcommand => {
            let name = text(e, ContextKind::InvalidSubcommand).unwrap_or_default();
            let hint = match e.get(ContextKind::SuggestedSubcommand) {
                Some(_) => format!("did you mean {}? (see {help})", quoted(ContextKind::SuggestedSubcommand)),
                None => see,
            };
            (format!("unrecognized subcommand '{name}'"), hint)
        }
        ErrorKind::MissingRequiredArgument => {
            let missing = strings(e, ContextKind::InvalidArg).join(", ");
            (format!("missing {missing}"), format!("give {missing} (see {help})"))
        }
        ErrorKind::TooManyValues if !arg.contains('<') => {
            (format!("{flag} takes no value ('{value}' given)"), format!("give {flag} alone"))
        }
        ErrorKind::NoEquals => (format!("{flag} needs its value after '='"), format!("give {flag}=VALUE")),
        kind => {
            let what = if arg.is_empty() { kind.to_string() } else { format!("{kind}: {arg}") };
            (what, see)
        }
    }
}

/// A context value of `e` as one string (a list joined with commas).
fn text<F: ErrorFormatter>(e: &clap::error::Error<F>, kind: ContextKind) -> Option<String> {
    e.get(kind).map(ContextValue::to_string)
}

/// A context value of `e` as a list.
fn strings<F: ErrorFormatter>(e: &clap::error::Error<F>, kind: ContextKind) -> Vec<String> {
    match e.get(kind) {
        Some(ContextValue::Strings(list)) => list.clone(),
        Some(other) => vec![other.to_string()],
        None => Vec::new(),
    }
}

/// `stream SUBCOMMAND --help` for the subcommand given, else `stream --help`.
fn help_command(args: &[std::ffi::OsString]) -> String {
    let subcommand = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|a| Cli::command().get_subcommands().any(|s| s.get_name() == *a));
    match subcommand {
        Some(s) => format!("`stream {s} --help`"),
        None => "`stream --help`".to_string(),
    }
}

/// Two flags that cannot go together, named as the user gave them: clap lists every member of a
/// conflicting group, most of which were not given.
fn conflict<F: ErrorFormatter>(e: &clap::error::Error<F>, args: &[std::ffi::OsString]) -> Option<(String, String)> {
    let name = |s: &str| s.split_whitespace().next().unwrap_or_default().to_string();
    let given =
        |flag: &str| args.iter().filter_map(|a| a.to_str()).any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    let Some(ContextValue::String(first)) = e.get(ContextKind::InvalidArg) else { return None };
    let others: Vec<String> = match e.get(ContextKind::PriorArg) {
        Some(ContextValue::String(s)) => vec![name(s)],
        Some(ContextValue::Strings(list)) => list.iter().map(|s| name(s)).collect(),
        _ => return None,
    };
    let named: Vec<String> = others.iter().filter(|o| given(o)).cloned().collect();
    let named = if named.is_empty() { others } else { named };
    let first = name(first);
    Some((
        format!("{first} cannot be used with {}", named.join(", ")),
        format!("leave out {first} or {}", named.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["stream", "produce", "--stack", "s1", "--region", "eu-west-1", "-n", "5"])
            .expect("valid command line");
        assert_eq!(cli.global.stack, "s1");
        assert_eq!(cli.global.region.as_deref(), Some("eu-west-1"));
        assert!(matches!(cli.command, Command::Produce(ProduceArgs { count: Some(5), .. })));
    }

    fn refused(args: &[&str]) -> (String, String) {
        let os: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        let e = Cli::command().try_get_matches_from(&os).expect_err("refused");
        refusal(&e, &os)
    }

    #[test]
    fn refusals_are_two_lines_naming_the_flag() {
        let (what, hint) = refused(&["stream", "deploy", "--shards", "501"]);
        assert_eq!(
            (what.as_str(), hint.as_str()),
            ("--shards 501 is out of range", "give --shards a value from 1 to 500")
        );
        let (what, hint) = refused(&["stream", "produce", "--count", "many"]);
        assert!(what.starts_with("invalid value 'many' for '--count"), "{what}");
        assert_eq!(hint, "see `stream produce --help` for what it takes");
        let (what, hint) = refused(&["stream", "deploy", "--code-only", "--max-retries", "5"]);
        assert_eq!(what, "--code-only cannot be used with --max-retries");
        assert_eq!(hint, "leave out --code-only or --max-retries");
        let (what, hint) = refused(&["stream", "tail", "--output", "yaml"]);
        assert!(what.starts_with("invalid value 'yaml' for '--output"), "{what}");
        assert_eq!(hint, "give --output one of: json, text, table, jsonl, csv");
        let (what, hint) = refused(&["stream", "deploy", "--shard", "2"]);
        assert!(what.contains("unexpected argument '--shard'"), "{what}");
        assert!(hint.contains("--shards"), "clap's tip names the flag meant: {hint}");
    }

    /// The same refusal as the default formatter gives, from an error that renders nothing but
    /// its kind: the two lines come from clap's error kind and context, so a change in clap's
    /// wording cannot silently break them.
    #[test]
    fn refusals_come_from_clap_s_kind_and_context_not_its_text() {
        let cases: [&[&str]; 12] = [
            &["stream", "produce", "--count", "many"],
            &["stream", "deploy", "--code-only", "--max-retries", "5"],
            &["stream", "tail", "--output", "yaml"],
            &["stream", "tail", "--output", "jsn"],
            &["stream", "deploy", "--shard", "2"],
            &["stream", "deplyo"],
            &["stream", "completions"],
            &["stream", "deploy", "--shards"],
            &["stream", "produce", "--count", "5", "--count", "6"],
            &["stream", "produce", "extra"],
            &["stream", "deploy", "--yes=3"],
            &["stream", "deploy", "--shards=1", "--on-demand"],
        ];
        for args in cases {
            let os: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            let e = Cli::command().try_get_matches_from(&os).expect_err("refused");
            let rich = refusal(&e, &os);
            let bare = refusal(&e.apply::<clap::error::KindFormatter>(), &os);
            assert_eq!(bare, rich, "{args:?}");
        }
    }

    /// What clap's own text said poorly: a flag without its value, a flag given twice, a value
    /// or subcommand with a near miss.
    #[test]
    fn refusals_name_the_flag_and_what_to_give() {
        let (what, hint) = refused(&["stream", "deploy", "--shards"]);
        assert_eq!(what, "--shards needs a value");
        assert_eq!(hint, "give --shards a value (see `stream deploy --help`)");
        let (what, hint) = refused(&["stream", "produce", "--count", "5", "--count", "6"]);
        assert_eq!((what.as_str(), hint.as_str()), ("--count is given more than once", "give --count once"));
        let (_, hint) = refused(&["stream", "tail", "--output", "jsn"]);
        assert_eq!(hint, "did you mean 'json'? give --output one of: json, text, table, jsonl, csv");
        let (what, hint) = refused(&["stream", "deplyo"]);
        assert_eq!(what, "unrecognized subcommand 'deplyo'");
        assert_eq!(hint, "did you mean 'replay' or 'deploy'? (see `stream --help`)");
        let (what, hint) = refused(&["stream", "completions"]);
        assert_eq!(what, "missing <SHELL>");
        assert_eq!(hint, "give <SHELL> (see `stream completions --help`)");
        let (what, hint) = refused(&["stream", "deploy", "--yes=3"]);
        assert_eq!((what.as_str(), hint.as_str()), ("--yes takes no value ('3' given)", "give --yes alone"));
        let (what, hint) = refused(&["stream", "produce", "extra"]);
        assert_eq!(what, "unexpected argument 'extra'");
        assert_eq!(hint, "see `stream produce --help` for what it takes");
    }

    /// Completion scripts offer the commands people see, not the hidden test hook.
    #[test]
    fn completions_leave_out_hidden_subcommands() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let mut out = Vec::new();
            completions(shell, &mut out);
            let script = String::from_utf8(out).expect("utf8");
            assert!(script.contains("scan-table") && script.contains("endpoint-url"), "{shell}");
            assert!(!script.contains("live-line-check"), "{shell}");
        }
    }
}
