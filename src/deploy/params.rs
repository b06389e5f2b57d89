//! The stack's parameters: the flags given (`StackParams`, range-checked by clap) as template
//! parameters, the full list sent with a create or an update (absent flags keep the stack's value),
//! what changes, and the DataRetention that the template's tables get.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::{Parameter, Stack, Tag};

use super::plan::ParameterChange;
use super::{DataRetention, StackParams};
use crate::aws::Clients;
use crate::error::Error;
use crate::filter;
use crate::stack;
use crate::template::{self, MANAGED_TAG, Retention, param};

/// Bytes a CloudFormation parameter value holds: every `--filter` pattern goes in one.
const MAX_PARAMETER_BYTES: usize = 4096;

impl StackParams {
    /// The `--filter` patterns given ('' alone, which removes them, left out).
    fn given_filters(&self) -> Vec<&str> {
        self.filter.iter().map(String::as_str).filter(|p| !p.is_empty()).collect()
    }

    /// A warning when more filters are given than Lambda takes by default: the mapping's create
    /// or update fails unless the account's quota was raised (up to 10), as `aws lambda` would.
    pub fn filter_warning(&self) -> Option<String> {
        let given = self.given_filters().len();
        (given > filter::DEFAULT_FILTERS).then(|| {
            format!(
                "warning: {given} --filter patterns: Lambda takes {} per mapping unless the account's quota was raised (up to {}); without it the mapping's create or update fails and the stack rolls back",
                filter::DEFAULT_FILTERS,
                filter::MAX_FILTERS
            )
        })
    }

    /// The values given on the command line, as (template parameter, value). Filters beyond what
    /// the mapping and its one parameter take are refused here, before any call.
    pub fn values(&self) -> Result<Vec<(&'static str, String)>, Error> {
        let mut values = Vec::new();
        for (name, value) in [
            (param::SHARD_COUNT, self.shards),
            (param::BATCH_SIZE, self.batch_size),
            (param::MAX_RETRIES, self.max_retries),
            (param::MAX_RECORD_AGE, self.max_record_age),
            (param::RETENTION_HOURS, self.retention_hours),
            (param::BATCHING_WINDOW, self.batching_window),
            (param::PARALLELIZATION, self.parallelization),
            (param::MEMORY, self.memory),
            (param::TIMEOUT, self.timeout),
        ] {
            if let Some(v) = value {
                values.push((name, v.to_string()));
            }
        }
        if self.on_demand {
            values.push((param::STREAM_MODE, "ON_DEMAND".into()));
        } else if self.shards.is_some() {
            values.push((param::STREAM_MODE, "PROVISIONED".into()));
        }
        if let Some(email) = &self.alarm_email {
            values.push((param::ALARM_EMAIL, email.clone()));
        }
        if let Some(r) = self.data_retention {
            let r = match r {
                DataRetention::Delete => Retention::Delete,
                DataRetention::Retain => Retention::Retain,
            };
            values.push((param::DATA_RETENTION, r.as_str().into()));
        }
        if !self.filter.is_empty() {
            values.push((param::FILTER_PATTERNS, filter_lines(&self.given_filters())?));
        }
        if !self.local_principal.is_empty() {
            let named: Vec<&str> = self.local_principal.iter().map(String::as_str).filter(|p| !p.is_empty()).collect();
            values.push((param::LOCAL_PRINCIPALS, named.join(",")));
        }
        Ok(values)
    }
}

/// The user's tags of a stack, by key (the tag that marks it as stream's left out).
pub fn user_tags(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .filter(|(k, _)| k != MANAGED_TAG.0)
        .collect()
}

/// The user's tags after this deploy: the stack's own, with those given over them (a key given
/// wins). More than CloudFormation takes (ours included) is refused before any change.
pub fn tags_after(existing: Option<&Stack>, given: &[(String, String)]) -> Result<BTreeMap<String, String>, Error> {
    let mut tags = existing.map(user_tags).unwrap_or_default();
    tags.extend(given.iter().cloned());
    if tags.len() + 1 > super::MAX_TAGS {
        return Err(Error::usage(
            format!("the stack would have {} tags; CloudFormation takes {}", tags.len() + 1, super::MAX_TAGS),
            format!("give at most {} tags in all (stream keeps one of its own)", super::MAX_TAGS - 1),
        ));
    }
    Ok(tags)
}

/// The tags sent with a create or an update: the user's and ours.
pub fn tag_list(user: &BTreeMap<String, String>) -> Vec<Tag> {
    let theirs = user.iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
    std::iter::once(stack::managed_tag()).chain(theirs).collect()
}

/// The tags that change, for the plan (a tag is never removed by a deploy).
pub fn tag_changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<ParameterChange> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, v)| ParameterChange {
            name: k.clone(),
            from: before.get(k).cloned().unwrap_or_default(),
            to: v.clone(),
        })
        .collect()
}

/// Puts the ARN of the identity deploying where `--local-principal me` stands (a user's ARN, or
/// for an assumed role the role's own ARN with its path, read from IAM; the session's ARN when
/// IAM does not say). On a create without the flag, an emulator's stack (a CloudFormation
/// endpoint of the user's own) grants it to `me`: `stream local` is what an emulator is for.
pub async fn resolve_local_principals(
    clients: &Clients,
    values: &mut Vec<(&'static str, String)>,
    creating: bool,
) -> Result<(), Error> {
    if creating
        && !values.iter().any(|(n, _)| *n == param::LOCAL_PRINCIPALS)
        && clients.endpoint("CloudFormation").is_some()
    {
        values.push((param::LOCAL_PRINCIPALS, super::ME.to_string()));
    }
    let Some((_, list)) = values.iter_mut().find(|(n, _)| *n == param::LOCAL_PRINCIPALS) else { return Ok(()) };
    if !list.split(',').any(|p| p == super::ME) {
        return Ok(());
    }
    let me = caller_principal(clients).await?;
    let mut named: Vec<String> =
        list.split(',').map(|p| if p == super::ME { me.clone() } else { p.to_string() }).collect();
    named.dedup();
    *list = named.join(",");
    Ok(())
}

/// The principal a trust policy can name for the caller.
async fn caller_principal(clients: &Clients) -> Result<String, Error> {
    let me = clients
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| Error::aws("GetCallerIdentity", "this identity", e))?;
    let arn = me.arn().unwrap_or_default().to_string();
    // arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION names a session; the role's ARN (with its
    // path) outlives it.
    let Some(role) = arn.split(":assumed-role/").nth(1).and_then(|r| r.split('/').next()) else { return Ok(arn) };
    match clients.iam.get_role().role_name(role).send().await {
        Ok(out) => Ok(out.role.map(|r| r.arn).unwrap_or(arn)),
        Err(e) => {
            tracing::info!(error = %crate::error::Error::aws("GetRole", role, e), "using the session's ARN");
            Ok(arn)
        }
    }
}

/// The `--filter` patterns as the parameter holds them: one per line (none: '', which removes them).
fn filter_lines(patterns: &[&str]) -> Result<String, Error> {
    if patterns.len() > filter::MAX_FILTERS {
        return Err(Error::usage(
            format!("{} --filter patterns are more than a mapping takes ({})", patterns.len(), filter::MAX_FILTERS),
            format!("give at most {} --filter patterns; they are ORed", filter::MAX_FILTERS),
        ));
    }
    let joined = patterns.join("\n");
    if joined.len() > MAX_PARAMETER_BYTES {
        return Err(Error::usage(
            format!(
                "the --filter patterns take {} bytes, more than the {MAX_PARAMETER_BYTES} a stack parameter holds",
                joined.len()
            ),
            "shorten the patterns (stream keeps them in one CloudFormation parameter)",
        ));
    }
    Ok(joined)
}

/// The filter patterns the mapping will have after the operation.
pub fn filters(parameters: &[Parameter], existing: Option<&Stack>) -> Vec<String> {
    let lines = resolved(parameters, existing, param::FILTER_PATTERNS).unwrap_or_default();
    lines.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// One parameter: a value, or (`None`) the stack's previous value.
pub fn parameter(name: &str, value: Option<String>) -> Parameter {
    let b = Parameter::builder().parameter_key(name);
    match value {
        Some(v) => b.parameter_value(v).build(),
        None => b.use_previous_value(true).build(),
    }
}

/// Every parameter of a create (`existing` is `None`) or an update, after the code location.
/// On update an absent flag keeps the stack's value (UsePreviousValue; a parameter added by a newer
/// template takes its default). On create every parameter is given, defaults included, so that
/// later updates can always refer to a previous value.
pub fn for_operation(
    given: &[(&'static str, String)],
    existing: Option<&Stack>,
    code: &[(&str, String)],
) -> Vec<Parameter> {
    let mut parameters: Vec<Parameter> = code.iter().map(|(n, v)| parameter(n, Some(v.clone()))).collect();
    let defaults = template::parameter_defaults();
    let is_code = |n: &str| code.iter().any(|(c, _)| *c == n);
    for name in param::ALL.iter().filter(|n| !is_code(n)) {
        let value = given.iter().find(|(p, _)| p == name).map(|(_, v)| v.clone());
        let previous = existing.is_some_and(|s| s.parameters().iter().any(|p| p.parameter_key() == Some(name)));
        match value {
            Some(v) => parameters.push(parameter(name, Some(v))),
            None if previous => parameters.push(parameter(name, None)),
            None => {
                if let Some((_, d)) = defaults.iter().find(|(n, _)| n == name) {
                    parameters.push(parameter(name, Some(d.clone())));
                }
            }
        }
    }
    parameters
}

/// The value `name` will have after the operation: given, else the stack's, else none.
pub fn resolved<'a>(parameters: &'a [Parameter], existing: Option<&'a Stack>, name: &str) -> Option<&'a str> {
    let p = parameters.iter().find(|p| p.parameter_key() == Some(name))?;
    p.parameter_value().or_else(|| existing.and_then(|s| stack::parameter(s, name)))
}

/// The DataRetention the tables will have after the operation.
pub fn retention(parameters: &[Parameter], existing: Option<&Stack>) -> Retention {
    Retention::from_param(resolved(parameters, existing, param::DATA_RETENTION))
}

/// Every parameter's value after the operation, for evaluating the template's conditions.
pub fn resolved_values(parameters: &[Parameter], existing: Option<&Stack>) -> Vec<(String, String)> {
    parameters
        .iter()
        .filter_map(|p| {
            let name = p.parameter_key()?;
            Some((name.to_string(), resolved(parameters, existing, name)?.to_string()))
        })
        .collect()
}

/// The parameters given a new value, compared with the stack's current ones.
pub fn changes(stack: &Stack, parameters: &[Parameter]) -> Vec<ParameterChange> {
    parameters
        .iter()
        .filter_map(|p| {
            let name = p.parameter_key()?;
            let to = p.parameter_value()?;
            let from = stack::parameter(stack, name).unwrap_or_default();
            (from != to).then(|| ParameterChange { name: name.into(), from: from.into(), to: to.into() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> [(&'static str, String); 3] {
        [(param::CODE_BUCKET, "b".into()), (param::CODE_KEY, "k".into()), (param::ARCHITECTURE, "x86_64".into())]
    }

    fn for_operation(
        given: &[(&'static str, String)],
        existing: Option<&Stack>,
        code: [(&str, String); 3],
    ) -> Vec<Parameter> {
        super::for_operation(given, existing, &code)
    }

    #[test]
    fn flags_become_template_parameters() {
        assert!(StackParams::default().values().expect("valid").is_empty());
        let p = StackParams { shards: Some(500), batch_size: Some(10_000), memory: Some(128), ..Default::default() };
        let values = p.values().expect("valid");
        assert!(values.contains(&(param::SHARD_COUNT, "500".into())));
        assert!(values.contains(&(param::STREAM_MODE, "PROVISIONED".into())));
        let on_demand = StackParams { on_demand: true, ..Default::default() }.values().expect("valid");
        assert_eq!(on_demand, vec![(param::STREAM_MODE, "ON_DEMAND".to_string())]);
        let retain =
            StackParams { data_retention: Some(DataRetention::Retain), ..Default::default() }.values().expect("valid");
        assert_eq!(retain, vec![(param::DATA_RETENTION, "Retain".to_string())]);
        let two = StackParams {
            filter: vec!["{\"data\":{\"a\":[1]}}".into(), "{\"data\":{\"b\":[2]}}".into()],
            ..Default::default()
        };
        assert_eq!(
            two.values().expect("valid"),
            vec![(param::FILTER_PATTERNS, "{\"data\":{\"a\":[1]}}\n{\"data\":{\"b\":[2]}}".to_string())]
        );
        let grant = StackParams {
            local_principal: vec!["me".into(), "arn:aws:iam::1:role/dev".into(), String::new()],
            ..Default::default()
        };
        assert_eq!(
            grant.values().expect("valid"),
            vec![(param::LOCAL_PRINCIPALS, "me,arn:aws:iam::1:role/dev".to_string())]
        );
        let revoke = StackParams { local_principal: vec![String::new()], ..Default::default() };
        assert_eq!(revoke.values().expect("valid"), vec![(param::LOCAL_PRINCIPALS, String::new())]);
        let clear = StackParams { filter: vec![String::new()], ..Default::default() };
        assert_eq!(clear.values().expect("valid"), vec![(param::FILTER_PATTERNS, String::new())]);
        // Up to 10 filters (a raised quota); more than the default 5 is warned of, 11 refused.
        let filters = |n: usize| StackParams {
            filter: (0..n).map(|i| format!("{{\"data\":{{\"a\":[{i}]}}}}")).chain([String::new()]).collect(),
            ..Default::default()
        };
        assert_eq!(filters(5).filter_warning(), None, "the default quota");
        let warning = filters(6).filter_warning().expect("over the default quota");
        assert!(warning.starts_with("warning: 6 --filter patterns: Lambda takes 5 per mapping"), "{warning}");
        assert!(warning.contains("raised (up to 10)"), "{warning}");
        let ten = filters(10).values().expect("ten");
        assert_eq!(ten[0].1.lines().count(), 10, "one pattern per line, '' left out");
        let eleven = filters(11).values().expect_err("eleven");
        assert_eq!(eleven.exit_code(), 2);
        assert!(eleven.to_string().contains("11 --filter patterns are more than a mapping takes (10)"), "{eleven}");
        let long = StackParams {
            filter: vec![format!("{{\"data\":{{\"a\":[\"{}\"]}}}}", "x".repeat(4090))],
            ..Default::default()
        };
        assert!(long.values().expect_err("too long").to_string().contains("4096"));
    }

    #[test]
    fn create_gives_every_parameter_and_update_keeps_what_is_not_given() {
        let given = vec![(param::BATCH_SIZE, "50".to_string())];
        assert!(filters(&for_operation(&given, None, code()), None).is_empty(), "no filter by default");
        let create = for_operation(&given, None, code());
        assert_eq!(create.len(), param::ALL.len());
        assert!(create.iter().all(|p| p.parameter_value().is_some()), "create sends values only");
        assert_eq!(resolved(&create, None, param::BATCH_SIZE), Some("50"));
        assert_eq!(resolved(&create, None, param::MEMORY), Some("256"), "the template's default");

        let existing = Stack::builder()
            .parameters(Parameter::builder().parameter_key(param::MEMORY).parameter_value("1024").build())
            .parameters(Parameter::builder().parameter_key(param::DATA_RETENTION).parameter_value("Retain").build())
            .build();
        let update = for_operation(&given, Some(&existing), code());
        let memory = update.iter().find(|p| p.parameter_key() == Some(param::MEMORY)).expect("memory");
        assert_eq!(memory.use_previous_value(), Some(true));
        assert_eq!(resolved(&update, Some(&existing), param::MEMORY), Some("1024"));
        assert_eq!(retention(&update, Some(&existing)), Retention::Retain);
        // A parameter the stack does not have yet takes the default.
        assert_eq!(resolved(&update, Some(&existing), param::TIMEOUT), Some("60"));
        let changed = changes(&existing, &update);
        assert!(changed.iter().any(|c| c.name == param::BATCH_SIZE && c.to == "50"));
        assert!(!changed.iter().any(|c| c.name == param::MEMORY));
        // The values the template's conditions are evaluated with: given, kept, and defaults.
        let values = resolved_values(&update, Some(&existing));
        for (name, value) in [(param::MEMORY, "1024"), (param::BATCH_SIZE, "50"), (param::TIMEOUT, "60")] {
            assert!(values.contains(&(name.to_string(), value.to_string())), "{name}={value} in {values:?}");
        }
    }

    fn tagged(tags: &[(&str, &str)]) -> Stack {
        let tags = tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build());
        Stack::builder().set_tags(Some(tags.collect())).build()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// A deploy keeps the stack's tags, a key given wins, ours is added to what is sent and left
    /// out of what the user sees, and the plan shows only what changes.
    #[test]
    fn tags_are_kept_given_over_and_counted_with_ours() {
        let stack = tagged(&[("team", "data"), (MANAGED_TAG.0, MANAGED_TAG.1), ("cost", "a")]);
        assert_eq!(user_tags(&stack), map(&[("team", "data"), ("cost", "a")]));
        let given = [("cost".to_string(), "b".to_string()), ("env".to_string(), "prod".to_string())];
        let after = tags_after(Some(&stack), &given).expect("within the limit");
        assert_eq!(after, map(&[("team", "data"), ("cost", "b"), ("env", "prod")]));
        assert_eq!(tags_after(None, &given).expect("a create"), map(&[("cost", "b"), ("env", "prod")]));

        let sent = tag_list(&after);
        let sent: Vec<(&str, &str)> = sent.iter().map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))).collect();
        assert_eq!(sent, [MANAGED_TAG, ("cost", "b"), ("env", "prod"), ("team", "data")]);

        let changes = tag_changes(&user_tags(&stack), &after);
        let changes: Vec<(&str, &str, &str)> =
            changes.iter().map(|c| (c.name.as_str(), c.from.as_str(), c.to.as_str())).collect();
        assert_eq!(changes, [("cost", "a", "b"), ("env", "", "prod")], "team is unchanged");
    }

    /// CloudFormation takes 50 tags, ours among them: 49 of the user's pass, 50 are refused before
    /// any change, counting the stack's own.
    #[test]
    fn more_tags_than_cloudformation_takes_are_refused() {
        let given = |n: usize| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect::<Vec<_>>();
        assert_eq!(tags_after(None, &given(49)).expect("49 and ours").len(), 49);
        let refused = tags_after(None, &given(50)).expect_err("50 and ours");
        assert_eq!(refused.to_string(), "the stack would have 51 tags; CloudFormation takes 50");
        assert!(refused.hint().contains("give at most 49 tags"), "{}", refused.hint());
        let stack = tagged(&[("old", "1")]);
        assert!(tags_after(Some(&stack), &given(49)).is_err(), "the stack's own tag counts");
    }

    /// The patterns fit one stack parameter: 4,096 bytes joined, newlines counted.
    #[test]
    fn filter_lines_fill_one_parameter_and_no_more() {
        let half = "x".repeat(MAX_PARAMETER_BYTES / 2);
        let full = [&half[1..], half.as_str()];
        assert_eq!(filter_lines(&full).expect("4096 bytes").len(), MAX_PARAMETER_BYTES);
        let over = filter_lines(&[half.as_str(), half.as_str()]).expect_err("4097 bytes");
        assert!(over.to_string().starts_with("the --filter patterns take 4097 bytes"), "{over}");
    }

    /// The mapping's filters after an operation: the lines given, blank ones dropped, or on an
    /// update without `--filter` the stack's own.
    #[test]
    fn the_filters_after_an_operation_are_the_lines_given_or_kept() {
        let given = vec![(param::FILTER_PATTERNS, "{\"a\":[1]}\n\n{\"b\":[2]}".to_string())];
        assert_eq!(filters(&for_operation(&given, None, code()), None), [r#"{"a":[1]}"#, r#"{"b":[2]}"#]);
        let existing = Stack::builder()
            .parameters(
                Parameter::builder().parameter_key(param::FILTER_PATTERNS).parameter_value("{\"c\":[3]}").build(),
            )
            .build();
        let update = for_operation(&[], Some(&existing), code());
        assert_eq!(filters(&update, Some(&existing)), [r#"{"c":[3]}"#]);
    }
}
