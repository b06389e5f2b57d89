//! The command line, as clap derive types only: `Cli`, `Command`, one `*Args` per subcommand.
//! Syntax lives here; meaning is checked by each command's `validate` before any AWS call.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::EXIT_CODES_HELP;

/// Default stack name when neither --stack nor STREAM_STACK is given.
pub const DEFAULT_STACK: &str = "stream-dev";

/// Real-time stream processing on AWS: Kinesis → Lambda → DynamoDB, in one binary.
#[derive(Debug, Parser)]
#[command(name = "stream", version, after_help = EXIT_CODES_HELP)]
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

    /// Send every AWS call to this endpoint (e.g. a local emulator)
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// CloudFormation stack that holds the pipeline
    #[arg(long, global = true, env = "STREAM_STACK", default_value = DEFAULT_STACK, value_name = "NAME")]
    pub stack: String,

    /// Show the cause chain of errors (-v) and debug logs (-vv)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
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
    /// Put synthetic tweets into the stack's stream
    Produce(ProduceArgs),
    /// Run the deployed function here as Lambda would (its bootstrap, the stack's mapping settings)
    Local(LocalArgs),
    /// Print the table's items (or the quarantined records)
    ScanTable(ScanArgs),
    /// Put quarantined records back into the stream (after a fix)
    Replay(ReplayArgs),
    /// Print the embedded CloudFormation template
    Template,
}

/// `stream deploy`
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Upload this Linux executable as the function instead of this binary
    #[arg(long, value_name = "FILE")]
    pub bootstrap: Option<PathBuf>,

    /// Shards in the Kinesis stream (1-500; default: keep, or 1 on create)
    #[arg(long, value_name = "N", conflicts_with = "on_demand")]
    pub shards: Option<u32>,

    /// On-demand capacity mode: Kinesis scales the shards (default: keep, or provisioned)
    #[arg(long)]
    pub on_demand: bool,

    /// Hours the stream keeps records (24-8760; default: keep, or 24)
    #[arg(long, value_name = "HOURS")]
    pub retention_hours: Option<u32>,

    /// Seconds the mapping gathers records before invoking (0-300; default: keep, or 0)
    #[arg(long, value_name = "SECONDS")]
    pub batching_window: Option<u32>,

    /// Batches of one shard processed at once (1-10; default: keep, or 1)
    #[arg(long, value_name = "N")]
    pub parallelization: Option<u32>,

    /// Function memory in MB (128-10240; default: keep, or 256)
    #[arg(long, value_name = "MB")]
    pub memory: Option<u32>,

    /// Function timeout in seconds (1-900; default: keep, or 60)
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u32>,

    /// Email the iterator-age alarm goes to, through SNS (default: keep, or none)
    #[arg(long, value_name = "ADDRESS")]
    pub alarm_email: Option<String>,

    /// Records per function invocation (1-10000; default: keep, or 100)
    #[arg(long, value_name = "N")]
    pub batch_size: Option<u32>,

    /// Retries of a failing batch before Lambda moves past it (0-10000; default: keep, or 10)
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,

    /// Skip records older than this many seconds (60-604800; default: keep, or 3600)
    #[arg(long, value_name = "SECONDS")]
    pub max_record_age: Option<u32>,

    /// What happens to the tables when the stack is deleted (default: keep, or delete)
    #[arg(long, value_enum, value_name = "POLICY")]
    pub data_retention: Option<DataRetention>,

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
    #[arg(long, conflicts_with_all = ["recreate", "shards", "on_demand", "batch_size", "memory", "timeout", "data_retention"])]
    pub code_only: bool,
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
#[derive(Debug, Args)]
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

/// `stream status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
}

/// `stream produce`
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Where records come from
    #[arg(long, value_enum, default_value_t = SourceKind::Synthetic)]
    pub source: SourceKind,

    /// JSON-lines file of tweets for --source file (`-` reads stdin)
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Tweets to make (synthetic, default 100), or stop after N records (file, bluesky, x)
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,

    /// Jetstream endpoint for --source bluesky
    #[arg(long, value_name = "URL", default_value = BLUESKY_URL)]
    pub bluesky_url: String,

    /// X API base URL for --source x (bearer token from X_BEARER_TOKEN)
    #[arg(long, value_name = "URL", default_value = "https://api.x.com")]
    pub x_url: String,

    /// Filtered-stream rule for --source x (repeat for several)
    #[arg(long, value_name = "RULE")]
    pub track: Vec<String>,

    /// Scales the live sources' reconnect waits (tests)
    #[arg(long, default_value_t = 1.0, hide = true)]
    pub reconnect_scale: f64,

    /// Records per second in total (default: as fast as the shards take them)
    #[arg(long, value_name = "N")]
    pub rate: Option<u32>,

    /// Seed for the synthetic tweets: the same seed gives the same tweets
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Records per PutRecords call (1-500)
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub batch_size: usize,

    /// Milliseconds a partly filled batch may wait for more records
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub linger_ms: u64,

    /// Pack records into KPL aggregates (the function deaggregates them)
    #[arg(long)]
    pub aggregate: bool,

    /// Put with the producer IAM user's key (the profile `deploy` wrote), as an external client would
    #[arg(long)]
    pub as_producer: bool,

    /// File that receives records still failing after retries (JSON lines, with the reason)
    #[arg(long, default_value = "stream-dead-letter.jsonl", value_name = "FILE")]
    pub dead_letter: PathBuf,

    /// Summary format
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
}

/// Where `produce` reads records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// Realistic synthetic tweets (deterministic with --seed)
    Synthetic,
    /// JSON lines of tweets from --file (or stdin)
    File,
    /// Live posts from the Bluesky Jetstream (free, no account)
    Bluesky,
    /// The X API v2 filtered stream (X_BEARER_TOKEN, --track)
    X,
}

/// The public Jetstream instance, posts only.
pub const BLUESKY_URL: &str = "wss://jetstream2.us-east.bsky.network/subscribe?wantedCollections=app.bsky.feed.post";

/// How a command prints its summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    /// For people
    Text,
    /// One JSON object, for scripts
    Json,
}

/// `stream local`
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Exit once every shard is caught up
    #[arg(long)]
    pub until_idle: bool,

    /// Records per invocation (default: the event source mapping's batch size)
    #[arg(long, value_name = "N")]
    pub batch_size: Option<u32>,

    /// Where checkpoints, the unpacked code and the function's log live
    /// (default: $XDG_STATE_HOME/stream or ~/.local/state/stream)
    #[arg(long, value_name = "DIR", env = "STREAM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Forget the saved checkpoints: start from the mapping's starting position
    #[arg(long)]
    pub reset: bool,

    /// Summary format
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
}

/// `stream scan-table`
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Output format
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Stop after N items
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,

    /// Print only the number of items
    #[arg(long)]
    pub count: bool,

    /// Read the quarantine table (poison records) instead of the events table
    #[arg(long)]
    pub rejected: bool,

    /// Only this user's tweets (a Query on the partition key, not a Scan)
    #[arg(long, value_name = "NAME", conflicts_with = "rejected")]
    pub user: Option<String>,

    /// Scan in N parallel segments (1-1000)
    #[arg(long, default_value_t = 1, value_name = "N", conflicts_with = "user")]
    pub segments: u32,
}

/// `stream replay`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Replay at most N records
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,

    /// Summary format
    #[arg(long, short, value_enum, default_value_t = SummaryFormat::Text)]
    pub output: SummaryFormat,
}

/// How `scan-table` prints items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns, long messages shortened
    Table,
    /// One JSON array
    Json,
    /// One JSON object per line
    Jsonl,
    /// Comma-separated values with a header row
    Csv,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
}
