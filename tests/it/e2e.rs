//! The whole pipeline through the real binary on moto: deploy creates every resource, produce puts
//! the records, local writes exactly the distinct tweets, a second deploy changes nothing, destroy
//! leaves nothing behind. Run by `scripts/test` (needs a moto server at AWS_ENDPOINT_URL).

use crate::common;
use crate::fault_proxy::{FaultProxy, Faults};

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::PermissionsExt;

use common::World;
use stream::tweet::{Item, Tweet, item_from_payload};

/// Every record on the stream's shards, from TRIM_HORIZON: (partition key, data).
async fn read_stream(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<(String, Vec<u8>)> {
    common::read_stream(kinesis, stream).await.into_iter().map(|(_, key, data)| (key, data)).collect()
}

/// Every item of the table, keyed by (Username, Id).
async fn read_table(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> BTreeMap<(String, String), Item> {
    let mut items = BTreeMap::new();
    let mut pages = dynamodb.scan().table_name(table).into_paginator().items().send();
    while let Some(item) = pages.next().await {
        let item = item.expect("scan");
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let it = Item { username: s("Username"), id: s("Id"), timestamp: s("Timestamp"), message: s("Message") };
        assert_eq!(item.len(), 4, "exactly the four attributes: {item:?}");
        items.insert((it.username.clone(), it.id.clone()), it);
    }
    items
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn pipeline_deploys_produces_processes_and_destroys() {
    let w = World::new("e2e", "us-east-1");
    let clients = w.clients().await;
    let lambda = w.lambda().await;

    // deploy: creates the stack and every resource, uploads the artifact, writes the producer profile.
    let (out, err) = w.run(&["deploy"], 0);
    assert!(out.contains("created"), "{out}");
    assert!(err.contains("uploading s3://"), "{err}");
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("stack outputs").outputs;
    assert_eq!(outputs.table_name, format!("{}-EventData", w.stack));
    assert_eq!(outputs.function_name, format!("{}-DDBEventProcessor", w.stack));
    assert_eq!(outputs.region, "us-east-1");

    let summary =
        clients.kinesis.describe_stream_summary().stream_name(&outputs.stream_name).send().await.expect("stream");
    assert_eq!(summary.stream_description_summary().map(|s| s.open_shard_count()), Some(1));

    let table = clients.dynamodb.describe_table().table_name(&outputs.table_name).send().await.expect("table");
    let table = table.table().expect("table description");
    let keys: Vec<(String, String)> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_string(), k.key_type().as_str().to_string()))
        .collect();
    assert_eq!(keys, vec![("Username".into(), "HASH".into()), ("Id".into(), "RANGE".into())]);
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()).map(|m| m.as_str()),
        Some("PAY_PER_REQUEST")
    );

    let function = lambda.get_function().function_name(&outputs.function_name).send().await.expect("function");
    let conf = function.configuration().expect("configuration");
    assert_eq!(conf.runtime().map(|r| r.as_str()), Some("provided.al2023"));
    assert_eq!(conf.handler(), Some("bootstrap"));
    assert_eq!(conf.architectures().iter().map(|a| a.as_str()).collect::<Vec<_>>(), vec!["x86_64"]);
    let env = conf.environment().and_then(|e| e.variables()).expect("environment");
    assert_eq!(env.get("TABLE_NAME"), Some(&outputs.table_name));

    let mappings = lambda.list_event_source_mappings().function_name(&outputs.function_name).send().await.expect("esm");
    let esm = mappings.event_source_mappings().first().expect("one mapping");
    assert_eq!(esm.event_source_arn(), Some(outputs.stream_arn.as_str()));
    assert_eq!(esm.starting_position().map(|p| p.as_str()), Some("TRIM_HORIZON"));
    assert_eq!(esm.batch_size(), Some(100));
    assert_eq!(
        esm.function_response_types().iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        vec!["ReportBatchItemFailures"]
    );
    assert_eq!(esm.bisect_batch_on_function_error(), Some(true));
    assert_eq!(esm.maximum_retry_attempts(), Some(10));
    assert_eq!(esm.maximum_record_age_in_seconds(), Some(3600));

    let resources = clients.cfn.describe_stack_resources().stack_name(&w.stack).send().await.expect("resources");
    let physical = |logical: &str| {
        resources
            .stack_resources()
            .iter()
            .find(|r| r.logical_resource_id() == Some(logical))
            .and_then(|r| r.physical_resource_id())
            .unwrap_or_else(|| panic!("resource {logical}"))
            .to_string()
    };
    let role = physical("FunctionRole");
    clients.iam.get_role().role_name(&role).send().await.expect("role exists");
    clients.iam.get_user().user_name(&outputs.producer_user).send().await.expect("user exists");

    // The producer key: in IAM, in a 0600 profile named after the stack, never in the stack.
    let keys = clients.iam.list_access_keys().user_name(&outputs.producer_user).send().await.expect("keys");
    let key_ids: Vec<&str> = keys.access_key_metadata().iter().filter_map(|k| k.access_key_id()).collect();
    assert_eq!(key_ids.len(), 1);
    let cred_path = w.credentials_file();
    let mode = std::fs::metadata(&cred_path).expect("credentials file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        stream::credentials::profile_key_id(&cred_path, &w.stack).expect("profile").as_deref(),
        Some(key_ids[0])
    );
    let cred_text = std::fs::read_to_string(&cred_path).expect("read credentials");
    let secret = cred_text
        .lines()
        .find_map(|l| l.strip_prefix("aws_secret_access_key = "))
        .expect("secret in profile")
        .to_string();
    assert!(!out.contains(&secret) && !err.contains(&secret), "deploy never prints the secret");
    let stack = stream::stack::find(&clients, &w.stack).await.expect("describe").expect("stack");
    let visible = format!("{:?}{:?}", stack.outputs(), stack.parameters());
    assert!(!visible.contains(&secret), "the secret never sits in the stack");
    let template = clients.cfn.get_template().stack_name(&w.stack).send().await.expect("template");
    assert!(!template.template_body().unwrap_or_default().contains(&secret));

    let bucket = stream::deploy::bucket::bucket_name("123456789012", "us-east-1");
    let listed =
        clients.s3.list_objects_v2().bucket(&bucket).prefix(format!("{}/", w.stack)).send().await.expect("artifacts");
    assert_eq!(listed.contents().len(), 1);
    let artifact_key = listed.contents()[0].key().expect("key").to_string();

    // produce: 1,000 records land on the stream, keyed by screen_name.
    let (out, _) = w.run(&["produce", "--count", "1000", "--seed", "42"], 0);
    assert!(out.contains("produced 1000 records"), "{out}");
    let records = read_stream(&clients.kinesis, &outputs.stream_name).await;
    assert_eq!(records.len(), 1000);
    let mut expected = BTreeMap::new();
    for (key, data) in &records {
        let tweet: Tweet = serde_json::from_slice(data).expect("records are tweets");
        assert_eq!(key, &tweet.user.screen_name);
        let item = item_from_payload(data).expect("valid tweet");
        expected.insert((item.username.clone(), item.id.clone()), item);
    }

    // local: the table holds exactly the distinct tweets, with the right attributes.
    let (out, _) = w.run(&["local", "--until-idle"], 0);
    assert!(out.contains("processed 1000 records"), "{out}");
    let table_items = read_table(&clients.dynamodb, &outputs.table_name).await;
    assert_eq!(table_items.len(), expected.len());
    assert_eq!(table_items, expected);
    assert!(table_items.values().any(|i| i.message.chars().count() > 140), "extended text was stored in full");
    assert!(table_items.values().all(|i| i.timestamp.ends_with(".000Z") && i.timestamp.len() == 24));

    // The producer profile works as credentials for an external producer: its key signs the puts,
    // not the credentials in the environment (moto takes any key, so the proxy reads the signature).
    let proxy = FaultProxy::before_moto(Faults::default(), 1);
    let (out, _) = w.run(&["produce", "--count", "5", "--profile", &w.stack, "--endpoint-url", &proxy.url], 0);
    assert!(out.contains("produced 5 records"), "{out}");
    let puts = "Kinesis_20131202.PutRecords";
    assert_eq!(proxy.counters.signers(puts), BTreeSet::from([key_ids[0].to_string()]), "--profile signs");
    let proxy = FaultProxy::before_moto(Faults::default(), 1);
    let (out, _) =
        w.run(&["produce", "--count", "5", "--seed", "43", "--as-producer", "--endpoint-url", &proxy.url], 0);
    assert!(out.contains("produced 5 records"), "{out}");
    assert_eq!(proxy.counters.signers(puts), BTreeSet::from([key_ids[0].to_string()]), "--as-producer signs");
    assert_eq!(read_stream(&clients.kinesis, &outputs.stream_name).await.len(), 1010);
    let (out, _) = w.run(&["local", "--until-idle"], 0);
    assert!(out.contains("processed 10 records"), "a new run resumes after its checkpoint: {out}");
    assert_eq!(read_table(&clients.dynamodb, &outputs.table_name).await.len(), expected.len() + 10);

    // scan-table in every format.
    let (out, _) = w.run(&["scan-table", "--count"], 0);
    assert_eq!(out.trim(), (expected.len() + 10).to_string());
    let (out, _) = w.run(&["scan-table", "--output", "json"], 0);
    let arr: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json array");
    assert_eq!(arr.len(), expected.len() + 10);
    let (out, _) = w.run(&["scan-table", "--output", "jsonl", "--limit", "7"], 0);
    assert_eq!(out.lines().count(), 7);
    let (out, _) = w.run(&["scan-table", "--output", "csv", "--limit", "3"], 0);
    assert!(out.starts_with("Username,Id,Timestamp,Message\n"));
    let (out, _) = w.run(&["scan-table", "--limit", "10"], 0);
    assert_eq!(out.lines().count(), 11);
    assert!(out.lines().next().expect("header").starts_with("Username"));
    // A parallel scan sees the same items; --user is a Query on the partition key.
    let (out, _) = w.run(&["scan-table", "--segments", "4", "--count"], 0);
    assert_eq!(out.trim(), (expected.len() + 10).to_string());
    let (user, _) = expected.keys().next().expect("an item").clone();
    let theirs = expected.keys().filter(|(u, _)| *u == user).count();
    let (out, _) = w.run(&["scan-table", "--user", &user, "--output", "jsonl"], 0);
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("jsonl")).collect();
    assert!(rows.len() >= theirs && rows.iter().all(|r| r["Username"] == user.as_str()), "{out}");
    // A closed pipe is not an error.
    let piped = std::process::Command::new("bash")
        .args([
            "-c",
            &format!(
                "set -o pipefail; {} scan-table --stack {} --region {} --output jsonl | head -n 1",
                common::bin(),
                w.stack,
                w.region
            ),
        ])
        .env("AWS_SHARED_CREDENTIALS_FILE", w.credentials_file())
        .output()
        .expect("bash runs");
    assert!(piped.status.success(), "{}", String::from_utf8_lossy(&piped.stderr));
    assert_eq!(String::from_utf8_lossy(&piped.stdout).lines().count(), 1);

    // status: the stack, the mapping and the counts an operator checks first.
    let (out, _) = w.run(&["status", "--output", "json"], 0);
    let status: serde_json::Value = serde_json::from_str(&out).expect("status json");
    assert_eq!(status["stack_status"], "CREATE_COMPLETE");
    assert_eq!(status["mapping"]["state"], "Enabled");
    assert_eq!(status["mapping"]["batch_size"], 100);
    assert_eq!(status["items"], expected.len() as u64 + 10);
    assert_eq!(status["quarantined"], 0);
    assert_eq!(status["outputs"]["table_name"], outputs.table_name.as_str());
    let (out, _) = w.run(&["status"], 0);
    // The text says what the JSON says: the same mapping, batch size and counts, each in its place.
    let uuid = status["mapping"]["uuid"].as_str().expect("mapping uuid");
    assert!(out.contains(&format!("mapping {uuid}: Enabled (last result: ")), "{out}");
    assert!(out.contains("), batch size 100\n"), "{out}");
    assert!(out.contains(&format!("items: {} in the table, 0 in quarantine\n", expected.len() + 10)), "{out}");

    // The stack's dashboard: its URL is shown, and every metric of the body CloudFormation created
    // names one of this stack's own resources.
    let name = status["dashboard"]["name"].as_str().expect("dashboard name");
    let url = status["dashboard"]["url"].as_str().expect("dashboard url");
    assert!(url.ends_with(&format!("#dashboards/dashboard/{name}")) && out.contains(url), "{out}");
    // GetDashboard through boto3 (moto does not route the Rust SDK's CloudWatch protocol).
    let script = format!(
        "import boto3; print(boto3.client('cloudwatch', region_name='{}').get_dashboard(DashboardName='{name}')['DashboardBody'])",
        w.region
    );
    let got = std::process::Command::new(common::repo().join(".venv/bin/python")).args(["-c", &script]).output();
    let got = got.expect("the venv's python runs");
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    let body: serde_json::Value = serde_json::from_slice(&got.stdout).expect("json body");
    let ours = [&outputs.stream_name, &outputs.function_name, &outputs.table_name, &outputs.rejected_table];
    let mut metrics = 0;
    for widget in body["widgets"].as_array().expect("widgets") {
        for metric in widget["properties"]["metrics"].as_array().expect("metrics") {
            let parts: Vec<&str> = metric.as_array().expect("metric").iter().filter_map(|v| v.as_str()).collect();
            assert!(parts.len() >= 4 && ours.iter().any(|r| r.as_str() == parts[3]), "{metric} names {ours:?}");
            metrics += 1;
        }
    }
    assert_eq!(metrics, 25, "the template's 25 metrics, in 9 widgets");
    // Exactly the template's dashboard, every name in it this stack's.
    let sub = stream::template::document()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("a !Sub string");
    let names = [
        ("${Stream}", &outputs.stream_name),
        ("${Function}", &outputs.function_name),
        ("${EventDataTable}", &outputs.table_name),
        ("${RejectedTable}", &outputs.rejected_table),
        ("${AWS::Region}", &w.region),
        ("${AWS::StackName}", &w.stack),
    ];
    let text = names.iter().fold(sub.to_string(), |text, (var, name)| text.replace(var, name));
    let template: serde_json::Value = serde_json::from_str(&text).expect("the template's body");
    assert_eq!(body, template, "the dashboard is the template's");

    // A second deploy uploads nothing, changes nothing and succeeds.
    let (out, err) = w.run(&["deploy"], 0);
    assert!(out.contains("up to date"), "{out}");
    assert!(err.contains("already uploaded") && !err.contains("uploading"), "{err}");
    let listed =
        clients.s3.list_objects_v2().bucket(&bucket).prefix(format!("{}/", w.stack)).send().await.expect("artifacts");
    assert_eq!(listed.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), vec![artifact_key.as_str()]);
    let keys = clients.iam.list_access_keys().user_name(&outputs.producer_user).send().await.expect("keys");
    assert_eq!(keys.access_key_metadata()[0].access_key_id(), Some(key_ids[0]), "the producer key is kept");

    // destroy: nothing is left behind; a second destroy is harmless.
    let (out, _) = w.run(&["destroy", "--yes"], 0);
    assert!(out.contains("deleted"), "{out}");
    assert!(stream::stack::find(&clients, &w.stack).await.expect("describe").is_none(), "stack gone");
    use common::is_not_found;
    let stream = clients.kinesis.describe_stream_summary().stream_name(&outputs.stream_name).send().await;
    assert!(is_not_found(&stream), "stream gone: {stream:?}");
    for table in [&outputs.table_name, &outputs.rejected_table] {
        let t = clients.dynamodb.describe_table().table_name(table).send().await;
        assert!(is_not_found(&t), "{table} gone: {t:?}");
    }
    let function = lambda.get_function().function_name(&outputs.function_name).send().await;
    assert!(is_not_found(&function), "function gone: {function:?}");
    assert!(
        lambda
            .list_event_source_mappings()
            .send()
            .await
            .expect("esm list")
            .event_source_mappings()
            .iter()
            .all(|m| m.event_source_arn() != Some(outputs.stream_arn.as_str())),
        "mapping gone"
    );
    let role = clients.iam.get_role().role_name(&role).send().await;
    assert!(is_not_found(&role), "role gone: {role:?}");
    let user = clients.iam.get_user().user_name(&outputs.producer_user).send().await;
    assert!(is_not_found(&user), "user gone: {user:?}");
    // The bucket goes with the last artifact (is_not_found), or holds none of this stack's.
    let listed = clients.s3.list_objects_v2().bucket(&bucket).prefix(format!("{}/", w.stack)).send().await;
    assert!(
        is_not_found(&listed) || listed.as_ref().is_ok_and(|l| l.contents().is_empty()),
        "artifacts gone: {listed:?}"
    );
    assert_eq!(stream::credentials::profile_key_id(&cred_path, &w.stack).expect("profile"), None, "profile removed");
    let (out, _) = w.run(&["destroy", "--yes"], 0);
    assert!(out.contains("does not exist"), "{out}");
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn duplicate_records_on_the_stream_become_one_item() {
    let w = World::new("dups", "eu-west-1");
    let clients = w.clients().await;
    w.run(&["deploy"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    // The same 50 tweets twice (a producer retry), then once more in another batch.
    w.run(&["produce", "--count", "50", "--seed", "9"], 0);
    w.run(&["produce", "--count", "50", "--seed", "9"], 0);
    w.run(&["local", "--until-idle", "--batch-size", "80"], 0);
    w.run(&["produce", "--count", "50", "--seed", "9"], 0);
    let (out, _) = w.run(&["local", "--until-idle"], 0);
    assert!(out.contains("processed 50 records"), "resumes after the first 100: {out}");
    let items = read_table(&clients.dynamodb, &outputs.table_name).await;
    assert_eq!(items.len(), 50);
    let ids: HashSet<&str> = items.keys().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), 50);
    w.run(&["destroy", "--yes"], 0);
}
