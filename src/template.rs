//! The CloudFormation template: the YAML embedded from template/ (what `stream template` prints),
//! and the same template as data — parsed at build time by build.rs, read and edited here as JSON
//! (defaults, resources, conditions, DataRetention) — with the names of its parameters and
//! outputs. Reading a deployed stack is `stack`'s job.

use std::sync::OnceLock;

use include_dir::{Dir, include_dir};
use serde_json::Value;

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

/// A built-in event schema, as written (template/schemas/<name>.toml).
pub fn schema_file(name: &str) -> Option<&'static str> {
    TEMPLATE_DIR.get_file(format!("schemas/{name}.toml")).and_then(|f| f.contents_utf8())
}

/// The template as data: parsed from YAML at build time (build.rs) and embedded as JSON.
const DOCUMENT_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/stack.json"));

/// The template as a JSON value, parsed once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    // build.rs wrote this JSON from the YAML it parsed; the unit tests below read it.
    DOCUMENT.get_or_init(|| serde_json::from_str(DOCUMENT_JSON).expect("build.rs writes valid JSON"))
}

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

/// The resource type whose DeletionPolicy and UpdateReplacePolicy carry DataRetention.
const RETAINED_TYPE: &str = "AWS::DynamoDB::Table";

/// The logical id of the event source mapping, whose FilterCriteria `body_for` writes.
pub const MAPPING: &str = "EventSourceMapping";

/// The logical id of the event table in the template (its keys there: Username and Id).
pub const EVENT_TABLE: &str = "EventDataTable";

/// The event table as an event schema shapes it: its key attributes with their DynamoDB types
/// (S, N or B), and the attribute DynamoDB's TTL reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTable {
    /// Partition key: (attribute, type).
    pub partition: (String, String),
    /// Sort key, if any.
    pub sort: Option<(String, String)>,
    /// TTL attribute, if items expire.
    pub ttl: Option<String>,
}

impl EventTable {
    /// The table as the template declares it.
    pub fn in_template() -> EventTable {
        let props = &document()["Resources"][EVENT_TABLE]["Properties"];
        let type_of = |name: &str| {
            props["AttributeDefinitions"]
                .as_array()
                .and_then(|defs| defs.iter().find(|d| d["AttributeName"] == name))
                .and_then(|d| d["AttributeType"].as_str())
                .unwrap_or("S")
                .to_string()
        };
        let key = |kind: &str| {
            props["KeySchema"].as_array().and_then(|ks| ks.iter().find(|k| k["KeyType"] == kind)).and_then(|k| {
                let name = k["AttributeName"].as_str()?.to_string();
                Some((name.clone(), type_of(&name)))
            })
        };
        EventTable { partition: key("HASH").unwrap_or_default(), sort: key("RANGE"), ttl: None }
    }

    /// Keys other than the template's make another table (DynamoDB fixes a table's keys when it
    /// is made): it gets its own logical id and name, suffixed with 8 hex digits of the keys'
    /// hash, so that CloudFormation creates the new table before it removes the old one.
    pub fn key_suffix(&self) -> Option<String> {
        use sha2::{Digest, Sha256};
        let template = EventTable::in_template();
        if (&self.partition, &self.sort) == (&template.partition, &template.sort) {
            return None;
        }
        let sort = self.sort.as_ref().map_or(String::new(), |(n, t)| format!("{n}\0{t}"));
        let digest = Sha256::digest(format!("{}\0{}\0{sort}", self.partition.0, self.partition.1));
        Some(hex::encode(&digest[..4]))
    }

    /// The logical id of this table in the template sent.
    pub fn logical_id(&self) -> String {
        match self.key_suffix() {
            Some(s) => format!("{EVENT_TABLE}{}", s.to_uppercase()),
            None => EVENT_TABLE.to_string(),
        }
    }
}

/// The template as sent to CloudFormation: every table's DeletionPolicy and UpdateReplacePolicy
/// set to the DataRetention value, the mapping's FilterCriteria holding `filters` (none: an empty
/// FilterCriteria), and the event table shaped by `table` (keys, TTL; renamed when its keys are
/// not the template's). CloudFormation takes only literals for the policies (intrinsic functions
/// there need the AWS::LanguageExtensions transform, which emulators do not run), a list of filters
/// cannot be built from one parameter, and a key schema's size varies: `stream` writes them all,
/// as data.
pub fn resolved(retention: Retention, filters: &[String], table: &EventTable) -> Value {
    let mut doc = document().clone();
    // No filters is an empty FilterCriteria, not a missing one: an update then clears filters the
    // mapping had (leaving the property out is not read as "none" everywhere).
    let list: Vec<Value> = filters.iter().map(|p| serde_json::json!({ "Pattern": p })).collect();
    let criteria = if list.is_empty() { serde_json::json!({}) } else { serde_json::json!({ "Filters": list }) };
    doc["Resources"][MAPPING]["Properties"]["FilterCriteria"] = criteria;
    if let Some(resources) = doc.get_mut("Resources").and_then(Value::as_object_mut) {
        for resource in resources.values_mut().filter(|r| r["Type"] == RETAINED_TYPE) {
            for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
                resource[policy] = Value::from(retention.as_str());
            }
        }
    }
    shape_event_table(&mut doc, table);
    doc
}

/// `resolved` as the JSON text CloudFormation takes.
pub fn body_for(retention: Retention, filters: &[String], table: &EventTable) -> String {
    resolved(retention, filters, table).to_string()
}

/// Writes the event table's keys and TTL; renames it (logical id, references, name) when its keys
/// are not the template's.
fn shape_event_table(doc: &mut Value, table: &EventTable) {
    let props = &mut doc["Resources"][EVENT_TABLE]["Properties"];
    let mut definitions =
        vec![serde_json::json!({"AttributeName": table.partition.0, "AttributeType": table.partition.1})];
    let mut keys = vec![serde_json::json!({"AttributeName": table.partition.0, "KeyType": "HASH"})];
    if let Some((name, kind)) = &table.sort {
        definitions.push(serde_json::json!({"AttributeName": name, "AttributeType": kind}));
        keys.push(serde_json::json!({"AttributeName": name, "KeyType": "RANGE"}));
    }
    props["AttributeDefinitions"] = Value::Array(definitions);
    props["KeySchema"] = Value::Array(keys);
    if let Some(ttl) = &table.ttl {
        props["TimeToLiveSpecification"] = serde_json::json!({"AttributeName": ttl, "Enabled": true});
    }
    let Some(suffix) = table.key_suffix() else { return };
    if let Value::Object(o) = &mut props["TableName"]
        && let Some(Value::String(sub)) = o.get_mut("Fn::Sub")
    {
        sub.push('-');
        sub.push_str(&suffix);
    }
    let new_id = table.logical_id();
    if let Some(resources) = doc.get_mut("Resources").and_then(Value::as_object_mut)
        && let Some(resource) = resources.shift_remove(EVENT_TABLE)
    {
        resources.insert(new_id.clone(), resource);
    }
    rename_references(doc, EVENT_TABLE, &new_id);
}

/// Points every `Ref`, `Fn::GetAtt`, `Fn::Sub` variable and `DependsOn` at `old` to `new`.
fn rename_references(v: &mut Value, old: &str, new: &str) {
    match v {
        Value::Object(o) => {
            for (key, inner) in o.iter_mut() {
                match (key.as_str(), &mut *inner) {
                    ("Ref" | "DependsOn", Value::String(s)) if s == old => *s = new.to_string(),
                    ("Fn::GetAtt", Value::Array(parts)) if parts.first().is_some_and(|p| p == old) => {
                        parts[0] = Value::from(new)
                    }
                    ("Fn::Sub", Value::String(s)) => {
                        *s = s
                            .replace(&format!("${{{old}}}"), &format!("${{{new}}}"))
                            .replace(&format!("${{{old}."), &format!("${{{new}."))
                    }
                    _ => rename_references(inner, old, new),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rename_references(i, old, new)),
        _ => {}
    }
}

/// A parameter's `Default`, as the string CloudFormation takes.
fn default_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The `Default` of each template parameter that has one.
pub fn parameter_defaults() -> Vec<(String, String)> {
    document()["Parameters"]
        .as_object()
        .map(|params| {
            params.iter().filter_map(|(name, p)| Some((name.clone(), default_text(p.get("Default")?)?))).collect()
        })
        .unwrap_or_default()
}

/// One resource of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Logical id.
    pub logical_id: String,
    /// CloudFormation type.
    pub resource_type: String,
    /// The condition it is created under, if any.
    pub condition: Option<String>,
}

/// The template's resources, in the template's order.
pub fn resources() -> Vec<Resource> {
    resources_in(document())
}

/// The resources of a template as sent (`resolved`), in its order.
pub fn resources_in(doc: &Value) -> Vec<Resource> {
    doc["Resources"]
        .as_object()
        .map(|resources| {
            resources
                .iter()
                .map(|(id, r)| Resource {
                    logical_id: id.clone(),
                    resource_type: r["Type"].as_str().unwrap_or_default().to_string(),
                    condition: r["Condition"].as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Evaluates the template condition `name` with these parameter values (a parameter left out takes
/// its default). `None` when the condition uses something only CloudFormation can evaluate.
pub fn condition(name: &str, params: &[(String, String)]) -> Option<bool> {
    let defaults = parameter_defaults();
    let value_of = |p: &str| params.iter().chain(&defaults).find(|(n, _)| n == p).map(|(_, v)| v.clone());
    eval_condition(&document()["Conditions"][name], &value_of, 0)
}

fn eval_condition(c: &Value, value_of: &dyn Fn(&str) -> Option<String>, depth: usize) -> Option<bool> {
    // Conditions may refer to conditions; the template is finite, but a cycle must not hang us.
    if depth > 16 {
        return None;
    }
    let operand = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Object(o) => value_of(o.get("Ref")?.as_str()?),
            _ => None,
        }
    };
    let obj = c.as_object()?;
    let (key, args) = obj.iter().next()?;
    let list = || args.as_array().map(Vec::as_slice).unwrap_or_default();
    match key.as_str() {
        "Fn::Equals" => Some(operand(list().first()?)? == operand(list().get(1)?)?),
        "Fn::Not" => eval_condition(list().first()?, value_of, depth + 1).map(|b| !b),
        "Fn::And" => list().iter().try_fold(true, |acc, x| Some(acc && eval_condition(x, value_of, depth + 1)?)),
        "Fn::Or" => list().iter().try_fold(false, |acc, x| Some(acc || eval_condition(x, value_of, depth + 1)?)),
        "Condition" => eval_condition(&document()["Conditions"][args.as_str()?], value_of, depth + 1),
        _ => None,
    }
}

/// The physical name the template gives resource `logical_id` in stack `stack` (a `Name` or
/// `TableName` written as `!Sub "${AWS::StackName}-…"`), for checks made before the stack exists.
pub fn physical_name(logical_id: &str, stack: &str) -> Option<String> {
    physical_name_in(document(), logical_id, stack)
}

/// `physical_name` in a template as sent (`resolved`).
pub fn physical_name_in(doc: &Value, logical_id: &str, stack: &str) -> Option<String> {
    let properties = &doc["Resources"][logical_id]["Properties"];
    ["TableName", "Name", "QueueName", "FunctionName"].iter().find_map(|field| match &properties[*field] {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => {
            let sub = o.get("Fn::Sub")?.as_str()?;
            let name = sub.replace("${AWS::StackName}", stack);
            (!name.contains("${")).then_some(name)
        }
        _ => None,
    })
}

/// Logical ids of the template's resources of `resource_type`.
pub fn resources_of_type(resource_type: &str) -> Vec<String> {
    resources().into_iter().filter(|r| r.resource_type == resource_type).map(|r| r.logical_id).collect()
}

/// The function's environment variables that the template sets to a fixed text (not a `!Ref`):
/// what every invocation of it sees, whoever runs it (the benches run the binary with them).
pub fn function_constants() -> Vec<(String, String)> {
    document()["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
        .as_object()
        .map(|vars| vars.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// The table resources, whose deletion DataRetention decides.
pub fn retained_tables() -> Vec<String> {
    resources_of_type(RETAINED_TYPE)
}

/// The table resources of a template as sent (`resolved`).
pub fn retained_tables_in(doc: &Value) -> Vec<String> {
    doc["Resources"]
        .as_object()
        .map(|r| r.iter().filter(|(_, v)| v["Type"] == RETAINED_TYPE).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default()
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
    /// Email for the alarms.
    pub const ALARM_EMAIL: &str = "AlarmEmail";

    /// Delete or Retain: the tables' deletion policy.
    pub const DATA_RETENTION: &str = "DataRetention";
    /// The mapping's filter patterns, one per line.
    pub const FILTER_PATTERNS: &str = "FilterPatterns";
    /// The event schema's name.
    pub const SCHEMA_NAME: &str = "SchemaName";
    /// S3 key (in CodeBucket) of the schema file as written.
    pub const SCHEMA_KEY: &str = "SchemaKey";
    /// Principals (ARNs, comma-separated) that may assume the function's role for `stream local`.
    pub const LOCAL_PRINCIPALS: &str = "LocalPrincipals";

    /// Every parameter the template declares.
    pub const ALL: [&str; 19] = [
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
        FILTER_PATTERNS,
        SCHEMA_NAME,
        SCHEMA_KEY,
        LOCAL_PRINCIPALS,
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
    /// CloudWatch dashboard of the stack (absent on stacks deployed before it existed).
    pub const DASHBOARD_NAME: &str = "DashboardName";
    /// Every output the template declares.
    pub const ALL: [&str; 9] = [
        STREAM_NAME,
        STREAM_ARN,
        TABLE_NAME,
        FUNCTION_NAME,
        REGION,
        PRODUCER_USER,
        REJECTED_TABLE,
        FAILED_QUEUE_URL,
        DASHBOARD_NAME,
    ];
}

/// Tag put on every stack `stream` creates, so other commands can tell its stacks from others.
pub const MANAGED_TAG: (&str, &str) = ("managed-by", "stream");

/// Environment variable that carries the table name to the function.
pub const TABLE_ENV: &str = "TABLE_NAME";

/// Environment variable that carries the quarantine table's name to the function.
pub const REJECTED_TABLE_ENV: &str = "REJECTED_TABLE_NAME";

/// Environment variable naming the event schema file in the function's code directory (unset:
/// the built-in tweets schema).
pub const SCHEMA_ENV: &str = "EVENT_SCHEMA";

/// The file, in the function's zip, holding the event schema (canonical JSON).
pub const SCHEMA_IN_CODE: &str = "schema.json";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The function's fixed variables: the write concurrency the handler defaults to, and malloc
    /// settings that keep a 6 MB event (Lambda's limit) and its copies on the heap glibc reuses.
    #[test]
    fn the_function_runs_with_the_heap_kept_and_the_default_concurrency() {
        let vars: std::collections::BTreeMap<String, String> = function_constants().into_iter().collect();
        assert_eq!(vars.get("WRITE_CONCURRENCY"), Some(&crate::process::DEFAULT_WRITE_CONCURRENCY.to_string()));
        assert!(!vars.contains_key(TABLE_ENV), "a !Ref is no constant: {vars:?}");
        let tunables = vars.get("GLIBC_TUNABLES").expect("GLIBC_TUNABLES is set");
        let setting = |name: &str| -> u64 {
            let prefix = format!("glibc.malloc.{name}=");
            let value = tunables.split(':').find_map(|t| t.strip_prefix(prefix.as_str()));
            value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name} in {tunables}"))
        };
        let (mmap, trim) = (setting("mmap_threshold"), setting("trim_threshold"));
        // glibc caps mmap_threshold at 32 MiB on 64-bit and ignores a larger one.
        assert!((6_000_000..=32 << 20).contains(&mmap), "mmap_threshold {mmap}");
        // Above it, so a freed event-sized block at the heap's top is kept, not given back.
        assert!(trim > mmap, "trim_threshold {trim}, mmap_threshold {mmap}");
    }

    #[test]
    fn template_declares_every_parameter_and_output_we_use() {
        let doc = document();
        for p in param::ALL {
            assert!(doc["Parameters"][p].is_object(), "parameter {p}");
        }
        for o in output::ALL {
            assert!(doc["Outputs"][o].is_object(), "output {o}");
        }
        assert_eq!(
            doc["Parameters"].as_object().map(|m| m.len()),
            Some(param::ALL.len()),
            "no parameter unknown to stream"
        );
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
    fn resources_keep_the_template_order() {
        let ids: Vec<String> = resources().into_iter().map(|r| r.logical_id).collect();
        let yaml_order: Vec<&str> = stack_yaml()
            .lines()
            .skip_while(|l| *l != "Resources:")
            .take_while(|l| *l != "Outputs:")
            .filter_map(|l| l.strip_prefix("  ").and_then(|l| l.strip_suffix(':')).filter(|n| !n.starts_with(' ')))
            .collect();
        assert_eq!(ids, yaml_order);
        assert_eq!(ids[0], "Stream");
    }

    #[test]
    fn short_form_tags_are_read_as_intrinsic_functions() {
        let doc = document();
        assert_eq!(
            doc["Resources"]["Function"]["Properties"]["Role"],
            serde_json::json!({"Fn::GetAtt": ["FunctionRole", "Arn"]})
        );
        assert_eq!(
            doc["Resources"]["EventSourceMapping"]["Properties"]["FunctionName"],
            serde_json::json!({"Ref": "Function"})
        );
        assert_eq!(
            doc["Resources"]["EventDataTable"]["Properties"]["TableName"],
            serde_json::json!({"Fn::Sub": "${AWS::StackName}-EventData"})
        );
        assert_eq!(
            doc["Conditions"]["HasAlarmEmail"],
            serde_json::json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]})
        );
    }

    #[test]
    fn retention_sets_the_policies_of_every_table_and_nothing_else() {
        let tables = retained_tables();
        assert_eq!(tables, vec!["EventDataTable".to_string(), "RejectedTable".to_string()]);
        let mut delete: Value =
            serde_json::from_str(&body_for(Retention::Delete, &[], &EventTable::in_template())).expect("json");
        let mut retain: Value =
            serde_json::from_str(&body_for(Retention::Retain, &[], &EventTable::in_template())).expect("json");
        for doc in [&mut delete, &mut retain] {
            let props = doc["Resources"][MAPPING]["Properties"].as_object_mut().expect("properties");
            assert_eq!(props.remove("FilterCriteria"), Some(serde_json::json!({})), "no filters");
        }
        assert_eq!(&delete, document(), "the template already says Delete");
        for t in &tables {
            for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
                assert_eq!(retain["Resources"][t][policy], "Retain", "{t} {policy}");
            }
        }
        // Only those four values differ.
        let mut patched = retain.clone();
        for t in &tables {
            for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
                patched["Resources"][t][policy] = Value::from("Delete");
            }
        }
        assert_eq!(&patched, document());
        assert_eq!(Retention::from_param(Some("Retain")), Retention::Retain);
        assert_eq!(Retention::from_param(None), Retention::Delete);
    }

    #[test]
    fn filters_are_written_into_the_mapping() {
        let patterns = [r#"{"data":{"lang":["en"]}}"#.to_string(), r#"{"data":{"lang":["de"]}}"#.to_string()];
        let doc: Value =
            serde_json::from_str(&body_for(Retention::Delete, &patterns, &EventTable::in_template())).expect("json");
        let filters = &doc["Resources"][MAPPING]["Properties"]["FilterCriteria"]["Filters"];
        assert_eq!(filters, &serde_json::json!([{"Pattern": patterns[0]}, {"Pattern": patterns[1]}]));
        let none: Value =
            serde_json::from_str(&body_for(Retention::Delete, &[], &EventTable::in_template())).expect("json");
        assert_eq!(none["Resources"][MAPPING]["Properties"]["FilterCriteria"], serde_json::json!({}));
    }

    /// A schema's keys other than the template's make another table: its own logical id and name
    /// (so CloudFormation creates it before removing the old one), every reference to it moved,
    /// the key schema and TTL written; the template's own keys change nothing.
    #[test]
    fn the_event_table_takes_the_schemas_keys_and_ttl() {
        let template = EventTable::in_template();
        assert_eq!(template.partition, ("Username".to_string(), "S".to_string()));
        assert_eq!(template.sort, Some(("Id".to_string(), "S".to_string())));
        assert_eq!(template.key_suffix(), None);
        let iot = EventTable {
            partition: ("DeviceId".into(), "S".into()),
            sort: Some(("Time".into(), "N".into())),
            ttl: Some("ExpiresAt".into()),
        };
        let suffix = iot.key_suffix().expect("other keys");
        assert_eq!(suffix.len(), 8);
        let id = iot.logical_id();
        assert_eq!(id, format!("EventDataTable{}", suffix.to_uppercase()));
        let doc = resolved(Retention::Delete, &[], &iot);
        let text = doc.to_string();
        assert!(
            !text.contains("\"EventDataTable\"") && !text.contains("${EventDataTable}"),
            "no reference left to the old id"
        );
        let table = &doc["Resources"][&id];
        assert_eq!(
            table["Properties"]["TableName"],
            serde_json::json!({"Fn::Sub": format!("${{AWS::StackName}}-EventData-{suffix}")})
        );
        assert_eq!(
            table["Properties"]["KeySchema"],
            serde_json::json!([{"AttributeName": "DeviceId", "KeyType": "HASH"}, {"AttributeName": "Time", "KeyType": "RANGE"}])
        );
        assert_eq!(
            table["Properties"]["AttributeDefinitions"][1],
            serde_json::json!({"AttributeName": "Time", "AttributeType": "N"})
        );
        assert_eq!(
            table["Properties"]["TimeToLiveSpecification"],
            serde_json::json!({"AttributeName": "ExpiresAt", "Enabled": true})
        );
        assert_eq!(doc["Outputs"]["TableName"]["Value"], serde_json::json!({"Ref": id}));
        assert_eq!(
            doc["Resources"]["Function"]["Properties"]["Environment"]["Variables"][TABLE_ENV],
            serde_json::json!({"Ref": id})
        );
        let body = doc["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"].as_str().expect("sub");
        assert!(body.contains(&format!("${{{id}}}")));
        assert_eq!(physical_name_in(&doc, &id, "s1"), Some(format!("s1-EventData-{suffix}")));
        assert_eq!(retained_tables_in(&doc), vec!["RejectedTable".to_string(), id]);
        // One partition key only: no RANGE, one definition.
        let orders = EventTable { partition: ("OrderId".into(), "S".into()), sort: None, ttl: None };
        let doc = resolved(Retention::Delete, &[], &orders);
        let props = &doc["Resources"][&orders.logical_id()]["Properties"];
        assert_eq!(props["KeySchema"].as_array().map(Vec::len), Some(1));
        assert_eq!(props["AttributeDefinitions"].as_array().map(Vec::len), Some(1));
        assert!(props.get("TimeToLiveSpecification").is_none());
        assert_ne!(orders.key_suffix(), iot.key_suffix());
    }

    /// Every principal a role's trust policy names, in each branch of an `Fn::If` around it.
    fn trusted(document: &Value) -> Vec<Value> {
        let branches: Vec<&Value> = match document.get("Fn::If").and_then(Value::as_array) {
            Some(parts) => parts[1..].iter().collect(),
            None => vec![document],
        };
        branches
            .iter()
            .flat_map(|b| b["Statement"].as_array().cloned().unwrap_or_default())
            .map(|statement| statement["Principal"].clone())
            .collect()
    }

    /// What a trust policy may name: Lambda, and the principals of LocalPrincipals, split from
    /// the parameter — never the account root, never "*".
    fn trust_is_narrow(document: &Value) -> Result<(), String> {
        let lambda = serde_json::json!({"Service": "lambda.amazonaws.com"});
        let named = serde_json::json!({"AWS": {"Fn::Split": [",", {"Ref": "LocalPrincipals"}]}});
        for principal in trusted(document) {
            let text = principal.to_string();
            if text.contains(":root") || text.contains("AccountId") || text.contains("\"*\"") {
                return Err(format!("the trust policy names {text}"));
            }
            if principal != lambda && principal != named {
                return Err(format!("an unexpected principal {text}"));
            }
        }
        Ok(())
    }

    /// The function's role trusts Lambda, and only when LocalPrincipals names some, those
    /// principals; a root or wildcard principal fails the check (the check can fail).
    #[test]
    fn the_functions_role_trusts_lambda_and_named_principals_only() {
        let role = &document()["Resources"]["FunctionRole"]["Properties"]["AssumeRolePolicyDocument"];
        assert_eq!(role["Fn::If"][0], "HasLocalPrincipals");
        assert_eq!(trust_is_narrow(role), Ok(()));
        let without = &role["Fn::If"][2];
        assert_eq!(trusted(without), [serde_json::json!({"Service": "lambda.amazonaws.com"})], "none by default");
        assert_eq!(condition("HasLocalPrincipals", &[]), Some(false), "off unless principals are given");
        for bad in [
            serde_json::json!({"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}),
            serde_json::json!({"AWS": "arn:aws:iam::123456789012:root"}),
            serde_json::json!("*"),
            serde_json::json!({"AWS": "*"}),
            serde_json::json!({"AWS": "arn:aws:iam::123456789012:user/someone"}),
        ] {
            let mut widened = role.clone();
            widened["Fn::If"][1]["Statement"][1]["Principal"] = bad.clone();
            assert!(trust_is_narrow(&widened).is_err(), "{bad} must fail the check");
        }
    }

    #[test]
    fn conditions_are_evaluated_with_the_parameters_given() {
        assert_eq!(condition("HasAlarmEmail", &[]), Some(false), "default: no address");
        assert_eq!(condition("HasAlarmEmail", &[("AlarmEmail".into(), "ops@example.com".into())]), Some(true));
        assert_eq!(condition("OnDemand", &[("StreamMode".into(), "ON_DEMAND".into())]), Some(true));
        assert_eq!(condition("OnDemand", &[]), Some(false));
        assert_eq!(condition("NoSuchCondition", &[]), None);
    }

    #[test]
    fn physical_names_come_from_the_template() {
        assert_eq!(physical_name("EventDataTable", "s1").as_deref(), Some("s1-EventData"));
        assert_eq!(physical_name("RejectedTable", "s1").as_deref(), Some("s1-Rejected"));
        assert_eq!(physical_name("ProducerUser", "s1"), None, "named by CloudFormation");
    }

    /// No secret in the stack; the function runs provided.al2023, finds its table through the
    /// stack and reports partial batch failures. (Wildcard grants are `tests/it/template_lint.rs`'s:
    /// every policy statement, trust and managed policy of the template, with each broad grant it
    /// must find.)
    #[test]
    fn template_holds_no_secret_and_wires_the_function_to_its_table_and_mapping() {
        let yaml = stack_yaml();
        assert!(!yaml.contains("SecretAccessKey"), "the producer's secret never sits in the stack");
        assert!(!yaml.contains("AWS::IAM::AccessKey"));
        let doc = document();
        assert_eq!(
            doc["Resources"]["Function"]["Properties"]["Environment"]["Variables"][TABLE_ENV],
            serde_json::json!({"Ref": "EventDataTable"})
        );
        assert_eq!(doc["Resources"]["Function"]["Properties"]["Runtime"], "provided.al2023");
        assert_eq!(
            doc["Resources"]["EventSourceMapping"]["Properties"]["FunctionResponseTypes"],
            serde_json::json!(["ReportBatchItemFailures"])
        );
    }

    /// What each `${…}` of the dashboard body stands for here: markers no real name could be, so a
    /// value that is not a marker was written into the template by hand.
    const MARKERS: [(&str, &str); 6] = [
        ("${Stream}", "MARK-Stream"),
        ("${Function}", "MARK-Function"),
        ("${EventDataTable}", "MARK-EventDataTable"),
        ("${RejectedTable}", "MARK-RejectedTable"),
        ("${AWS::Region}", "MARK-Region"),
        ("${AWS::StackName}", "MARK-StackName"),
    ];

    /// The dashboard body with the markers in place of the stack's resources, as JSON text.
    fn dashboard_text() -> String {
        let body = &document()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"];
        let sub = body.as_str().expect("DashboardBody is a !Sub string");
        let text = MARKERS.iter().fold(sub.to_string(), |text, (var, marker)| text.replace(var, marker));
        assert!(!text.contains("${"), "a variable that is not one of the markers: {text}");
        text
    }

    /// The dimension every metric of a namespace must carry, and the markers its value may be.
    fn resource_dimension(namespace: &str) -> Option<(&'static str, &'static [&'static str])> {
        match namespace {
            "AWS/Kinesis" => Some(("StreamName", &["MARK-Stream"])),
            // The function's EMF metrics carry the same FunctionName dimension as Lambda's own.
            "AWS/Lambda" | "stream" => Some(("FunctionName", &["MARK-Function"])),
            "AWS/DynamoDB" => Some(("TableName", &["MARK-EventDataTable", "MARK-RejectedTable"])),
            _ => None,
        }
    }

    /// One metric array, `[namespace, name, dim, value, …, {options}]`: its (namespace, name) when
    /// every dimension names this stack's resources, else what is wrong.
    fn check_metric(metric: &Value) -> Result<(String, String), String> {
        let parts = metric.as_array().ok_or("not an array")?;
        // A trailing object holds rendering options (stat, label, axis), never dimensions.
        let (strings, options) = match parts.split_last() {
            Some((last, rest)) if last.is_object() => (rest, 1),
            _ => (parts.as_slice(), 0),
        };
        let strings: Vec<&str> =
            strings.iter().map(|p| p.as_str().ok_or("a part that is not a string")).collect::<Result<_, _>>()?;
        let [namespace, name, dims @ ..] = strings.as_slice() else { return Err("no namespace and name".into()) };
        let (wanted, allowed) = resource_dimension(namespace).ok_or(format!("namespace {namespace} is not ours"))?;
        if dims.len() % 2 != 0 || options + strings.len() != parts.len() {
            return Err("dimensions are not name/value pairs".into());
        }
        let mut names_resource = false;
        for pair in dims.chunks(2) {
            match (pair[0], pair[1]) {
                (dim, value) if dim == wanted => {
                    if !allowed.contains(&value) {
                        return Err(format!("{dim} is {value}, not one of this stack's resources"));
                    }
                    names_resource = true;
                }
                // ThrottledRequests is per API operation: an operation name, not a resource name.
                ("Operation", op) if *namespace == "AWS/DynamoDB" => {
                    if !["BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem"].contains(&op) {
                        return Err(format!("Operation {op} is not a DynamoDB write"));
                    }
                }
                (dim, _) => return Err(format!("dimension {dim} does not belong in {namespace}")),
            }
        }
        if !names_resource {
            return Err(format!("no {wanted} dimension: an account-wide metric, not this stack's"));
        }
        Ok((namespace.to_string(), name.to_string()))
    }

    /// Checks every metric of every widget (a metric widget in the stack's region); returns the
    /// (namespace, name) pairs shown, or the first problem.
    fn dashboard_metrics(body: &Value) -> Result<BTreeSet<(String, String)>, String> {
        let widgets = body["widgets"].as_array().filter(|w| !w.is_empty()).ok_or("no widgets")?;
        let mut seen = BTreeSet::new();
        for (i, widget) in widgets.iter().enumerate() {
            let props = &widget["properties"];
            if widget["type"] != "metric" || props["region"] != "MARK-Region" {
                return Err(format!("widget {i} is not a metric widget in the stack's region"));
            }
            let metrics =
                props["metrics"].as_array().filter(|m| !m.is_empty()).ok_or(format!("widget {i}: no metrics"))?;
            for m in metrics {
                seen.insert(check_metric(m).map_err(|e| format!("widget {i}, {m}: {e}"))?);
            }
        }
        Ok(seen)
    }

    /// The dashboard shows every metric the issue asks for, each naming this stack's own resources,
    /// and its EMF metrics are ones the function declares.
    #[test]
    fn dashboard_metrics_name_only_this_stacks_resources() {
        let dashboard = &document()["Resources"]["Dashboard"];
        assert_eq!(dashboard["Type"], "AWS::CloudWatch::Dashboard");
        assert_eq!(dashboard["Properties"]["DashboardName"], serde_json::json!({"Fn::Sub": "${AWS::StackName}"}));
        let body: Value = serde_json::from_str(&dashboard_text()).expect("the body is JSON");
        let seen = dashboard_metrics(&body).unwrap_or_else(|e| panic!("{e}"));
        let required = [
            ("AWS/Lambda", "IteratorAge"),
            ("AWS/Kinesis", "IncomingRecords"),
            ("AWS/Kinesis", "IncomingBytes"),
            ("AWS/Kinesis", "WriteProvisionedThroughputExceeded"),
            ("AWS/Lambda", "Invocations"),
            ("AWS/Lambda", "Errors"),
            ("AWS/Lambda", "Duration"),
            ("AWS/Lambda", "ConcurrentExecutions"),
            ("stream", "Written"),
            ("stream", "DuplicatesDropped"),
            ("stream", "Quarantined"),
            ("stream", "Retried"),
            ("stream", "OldestRecordAgeMs"),
            ("AWS/DynamoDB", "ConsumedWriteCapacityUnits"),
            ("AWS/DynamoDB", "WriteThrottleEvents"),
            ("AWS/DynamoDB", "ThrottledRequests"),
        ];
        for (namespace, name) in required {
            assert!(seen.contains(&(namespace.to_string(), name.to_string())), "{namespace} {name} is missing");
        }
        // A misspelt EMF name would draw an empty graph: check against what the function emits.
        use crate::process::{BatchStats, metrics};
        assert_eq!(metrics::NAMESPACE, "stream");
        let emf = metrics::emf("f", &BatchStats::default(), 0.0, 0, true);
        let declared: Vec<&Value> = emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|m| &m["Name"])
            .collect();
        for (_, name) in seen.iter().filter(|(namespace, _)| namespace == "stream") {
            assert!(declared.contains(&&Value::from(name.as_str())), "the function emits no {name}");
        }
    }

    /// The checker fails a body with a table named by hand, an account-wide metric, a foreign
    /// namespace or another region: the test above can fail.
    #[test]
    fn dashboard_check_rejects_names_not_of_this_stack() {
        let text = dashboard_text();
        let parse = |t: &str| -> Value { serde_json::from_str(t).expect("still JSON") };
        assert!(dashboard_metrics(&parse(&text)).is_ok());
        let hard_coded = text.replace("MARK-EventDataTable", "stream-dev-EventData");
        let err = dashboard_metrics(&parse(&hard_coded)).expect_err("a hard-coded table name");
        assert!(err.contains("TableName is stream-dev-EventData"), "{err}");
        for (from, to, why) in [
            (r#", "StreamName", "MARK-Stream"]"#, "]", "no StreamName dimension"),
            (r#"["AWS/Lambda", "Errors""#, r#"["AWS/EC2", "Errors""#, "namespace AWS/EC2"),
            (r#""Operation", "BatchWriteItem""#, r#""Operation", "stream-dev-Rejected""#, "not a DynamoDB write"),
            ("\"region\": \"MARK-Region\"", "\"region\": \"us-east-1\"", "stack's region"),
        ] {
            assert!(text.contains(from), "{from}");
            let err = dashboard_metrics(&parse(&text.replacen(from, to, 1))).expect_err(why);
            assert!(err.contains(why), "{why}: {err}");
        }
    }
}
