//! The CloudFormation template, embedded from template/ at build time, and the names of its
//! parameters and outputs. Only names live here; reading a deployed stack is `stack`'s job.

use include_dir::{Dir, include_dir};

static TEMPLATE_DIR: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/template");

/// File name of the stack template inside template/.
pub const STACK_FILE: &str = "stack.yaml";

/// The stack template as YAML.
pub fn stack_yaml() -> &'static str {
    TEMPLATE_DIR
        .get_file(STACK_FILE)
        .and_then(|f| f.contents_utf8())
        // include_dir! embeds template/ at compile time; the unit test below proves the file is there.
        .expect("template/stack.yaml is embedded at build time")
}

/// The policy lines of the two tables, as the embedded template has them (DataRetention = Delete).
const POLICY_LINES: [(&str, &str); 2] = [
    (
        "    DeletionPolicy: Delete # set from DataRetention by stream\n",
        "    DeletionPolicy: Retain # set from DataRetention by stream\n",
    ),
    (
        "    UpdateReplacePolicy: Delete # set from DataRetention by stream\n",
        "    UpdateReplacePolicy: Retain # set from DataRetention by stream\n",
    ),
];

/// What happens to the tables when the stack is deleted (the DataRetention parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// The tables go with the stack.
    Delete,
    /// The tables and their items stay.
    Retain,
}

impl Retention {
    /// The parameter's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Retention::Delete => "Delete",
            Retention::Retain => "Retain",
        }
    }

    /// Reads the parameter's value; anything but Retain is Delete.
    pub fn from_param(value: Option<&str>) -> Self {
        if value == Some("Retain") { Retention::Retain } else { Retention::Delete }
    }
}

/// The template as sent to CloudFormation: the tables' DeletionPolicy and UpdateReplacePolicy carry
/// the DataRetention value. CloudFormation takes only literals there (intrinsic functions need the
/// AWS::LanguageExtensions transform, which emulators do not run), so `stream` writes them.
pub fn stack_yaml_for(retention: Retention) -> String {
    let yaml = stack_yaml().to_string();
    match retention {
        Retention::Delete => yaml,
        Retention::Retain => POLICY_LINES.iter().fold(yaml, |y, (from, to)| y.replace(from, to)),
    }
}

/// The `Default:` of each template parameter that has one, read from the embedded YAML's
/// `Parameters` section (two-space indented names, four-space indented properties).
pub fn parameter_defaults() -> Vec<(String, String)> {
    let yaml = stack_yaml();
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let mut in_parameters = false;
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_parameters = line.trim_end() == "Parameters:";
            current = None;
            continue;
        }
        if !in_parameters {
            continue;
        }
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')).filter(|n| !n.starts_with(' ')) {
            current = Some(name.to_string());
        } else if let (Some(name), Some(value)) = (&current, line.strip_prefix("    Default:")) {
            out.push((name.clone(), value.trim().trim_matches('"').to_string()));
        }
    }
    out
}

/// Template parameter names.
pub mod param {
    /// Artifact bucket holding the function zip.
    pub const CODE_BUCKET: &str = "CodeBucket";
    /// Key of the function zip.
    pub const CODE_KEY: &str = "CodeKey";
    /// `x86_64` or `arm64`.
    pub const ARCHITECTURE: &str = "Architecture";
    /// Shards in the stream.
    pub const SHARD_COUNT: &str = "ShardCount";
    /// Records per invocation.
    pub const BATCH_SIZE: &str = "BatchSize";
    /// Retries of a failing batch.
    pub const MAX_RETRIES: &str = "MaximumRetryAttempts";
    /// Maximum record age in seconds.
    pub const MAX_RECORD_AGE: &str = "MaximumRecordAgeInSeconds";

    /// PROVISIONED or ON_DEMAND.
    pub const STREAM_MODE: &str = "StreamMode";
    /// Stream retention in hours.
    pub const RETENTION_HOURS: &str = "RetentionHours";
    /// MaximumBatchingWindowInSeconds.
    pub const BATCHING_WINDOW: &str = "BatchingWindow";
    /// ParallelizationFactor.
    pub const PARALLELIZATION: &str = "Parallelization";
    /// Function memory in MB.
    pub const MEMORY: &str = "MemorySize";
    /// Function timeout in seconds.
    pub const TIMEOUT: &str = "Timeout";
    /// Email for the iterator-age alarm.
    pub const ALARM_EMAIL: &str = "AlarmEmail";

    /// Delete or Retain: the tables' deletion policy.
    pub const DATA_RETENTION: &str = "DataRetention";

    /// Every parameter the template declares.
    pub const ALL: [&str; 15] = [
        CODE_BUCKET,
        CODE_KEY,
        ARCHITECTURE,
        SHARD_COUNT,
        BATCH_SIZE,
        MAX_RETRIES,
        MAX_RECORD_AGE,
        STREAM_MODE,
        RETENTION_HOURS,
        BATCHING_WINDOW,
        PARALLELIZATION,
        MEMORY,
        TIMEOUT,
        ALARM_EMAIL,
        DATA_RETENTION,
    ];
}

/// Template output names.
pub mod output {
    /// Kinesis stream name.
    pub const STREAM_NAME: &str = "StreamName";
    /// Kinesis stream ARN.
    pub const STREAM_ARN: &str = "StreamArn";
    /// DynamoDB table name.
    pub const TABLE_NAME: &str = "TableName";
    /// Lambda function name.
    pub const FUNCTION_NAME: &str = "FunctionName";
    /// Region of the stack.
    pub const REGION: &str = "Region";
    /// IAM user for external producers.
    pub const PRODUCER_USER: &str = "ProducerUserName";
    /// Quarantine table for poison records.
    pub const REJECTED_TABLE: &str = "RejectedTableName";

    /// SQS queue of the mapping's on-failure records.
    pub const FAILED_QUEUE_URL: &str = "FailedBatchQueueUrl";
    /// Every output the template declares.
    pub const ALL: [&str; 8] =
        [STREAM_NAME, STREAM_ARN, TABLE_NAME, FUNCTION_NAME, REGION, PRODUCER_USER, REJECTED_TABLE, FAILED_QUEUE_URL];
}

/// Tag put on every stack `stream` creates, so other commands can tell its stacks from others.
pub const MANAGED_TAG: (&str, &str) = ("managed-by", "stream");

/// Environment variable that carries the table name to the function.
pub const TABLE_ENV: &str = "TABLE_NAME";

/// Environment variable that carries the quarantine table's name to the function.
pub const REJECTED_TABLE_ENV: &str = "REJECTED_TABLE_NAME";

#[cfg(test)]
mod tests {
    use super::*;

    /// The text between the top-level key `from:` and the top-level key `to:`.
    fn between<'a>(yaml: &'a str, from: &str, to: &str) -> &'a str {
        let start = yaml.find(&format!("\n{from}:\n")).expect("section present");
        let end = yaml.find(&format!("\n{to}:\n")).unwrap_or(yaml.len());
        &yaml[start..end]
    }

    #[test]
    fn template_declares_every_parameter_and_output_we_use() {
        let yaml = stack_yaml();
        let params = between(yaml, "Parameters", "Resources");
        for p in param::ALL {
            assert!(params.contains(&format!("\n  {p}:\n")), "parameter {p}");
        }
        let outputs = between(yaml, "Outputs", "End");
        for o in output::ALL {
            assert!(outputs.contains(&format!("  {o}:\n")), "output {o}");
        }
    }

    #[test]
    fn every_parameter_but_the_code_location_has_a_default() {
        let defaults = parameter_defaults();
        for p in param::ALL {
            let has = defaults.iter().any(|(n, _)| n == p);
            assert_eq!(has, p != param::CODE_BUCKET && p != param::CODE_KEY, "{p}");
        }
        assert!(defaults.contains(&("BatchSize".to_string(), "100".to_string())));
        assert!(defaults.contains(&("AlarmEmail".to_string(), String::new())));
    }

    #[test]
    fn retention_sets_the_policy_of_both_tables_and_nothing_else() {
        let delete = stack_yaml_for(Retention::Delete);
        assert_eq!(delete, stack_yaml());
        for (from, _) in POLICY_LINES {
            assert_eq!(delete.matches(from).count(), 2, "{from}");
        }
        let retain = stack_yaml_for(Retention::Retain);
        assert_eq!(retain.matches("DeletionPolicy: Retain").count(), 2);
        assert_eq!(retain.matches("UpdateReplacePolicy: Retain").count(), 2);
        assert!(!retain.contains("Policy: Delete"));
        // Only those four lines differ.
        let changed = delete.lines().zip(retain.lines()).filter(|(a, b)| a != b).count();
        assert_eq!((changed, delete.lines().count()), (4, retain.lines().count()));
        assert_eq!(Retention::from_param(Some("Retain")), Retention::Retain);
        assert_eq!(Retention::from_param(None), Retention::Delete);
    }

    #[test]
    fn template_uses_no_wildcard_action_and_no_secret_output() {
        let yaml = stack_yaml();
        assert!(!yaml.contains("Action: \"*\"") && !yaml.contains("Action: '*'"));
        assert!(!yaml.lines().any(|l| l.trim_start().starts_with("- ") && l.trim_end().ends_with(":*")));
        assert!(!yaml.contains("SecretAccessKey"), "the producer's secret never sits in the stack");
        assert!(!yaml.contains("AWS::IAM::AccessKey"));
        assert!(yaml.contains("TABLE_NAME: !Ref EventDataTable"));
        assert!(yaml.contains("Runtime: provided.al2023"));
        assert!(yaml.contains("- ReportBatchItemFailures"));
    }
}
