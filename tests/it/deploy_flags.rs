//! `deploy`'s flags from SAM and the AWS CLI: `--dry-run` (the change set made, shown and deleted:
//! nothing uploaded, no bucket, no stack left), `--s3-bucket` (a bucket of the user's: used, never
//! created nor deleted), `--tags KEY=VALUE` (stack tags, kept across deploys) and `--role-arn` (the
//! stack's CloudFormation service role). Bad values are refused before any call.

use serde_json::Value;

use crate::common::{DEAD_ENDPOINT, World, assert_error_lines, run_plain};

#[test]
fn bad_tags_buckets_and_roles_are_refused_before_any_call() {
    let env = [("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x"), ("AWS_REGION", "eu-west-1")];
    let refused = |flags: &[&str], what: &str, hint: &str| {
        let args = [&["deploy", "--endpoint-url", DEAD_ENDPOINT][..], flags].concat();
        let (_, err) = run_plain(&args, &env, 2);
        assert_error_lines(&err, what, hint);
    };
    refused(&["--tags", "team"], "--tags \"team\" is not KEY=VALUE", "give --tags KEY=VALUE");
    refused(&["--tags", "aws:owner=me"], "uses the aws: prefix", "give --tags KEY=VALUE");
    refused(&["--tags", "managed-by=me"], "marks the stack as stream's", "give --tags KEY=VALUE");
    refused(&["--tags", "a=b", "c={x}"], "holds a character tags cannot", "give --tags KEY=VALUE");
    refused(&["--s3-bucket", "My_Bucket"], "--s3-bucket \"My_Bucket\" is not an S3 bucket name", "3-63 lowercase");
    refused(&["--s3-bucket", "10.0.0.1"], "is not an S3 bucket name", "give --s3-bucket");
    refused(&["--role-arn", "cfn-deployer"], "is not the ARN of an IAM role", "arn:aws:iam::123456789012:role/");
    refused(&["--role-arn", "arn:aws:iam::123456789012:user/x"], "is not the ARN of an IAM role", "give --role-arn");
    refused(&["--dry-run", "--code-only"], "--dry-run cannot be used with --code-only", "leave out");
    // 49 tags of the user's and stream's own make 50, CloudFormation's limit: one more is refused.
    let tags: Vec<String> = (0..50).map(|i| format!("k{i}=v")).collect();
    let args: Vec<&str> = [
        &["deploy", "--endpoint-url", DEAD_ENDPOINT, "--tags"][..],
        &tags.iter().map(String::as_str).collect::<Vec<_>>(),
    ]
    .concat();
    let (_, err) = run_plain(&args, &env, 2);
    assert_error_lines(&err, "the stack would have 51 tags; CloudFormation takes 50", "give at most 49 tags");
}

/// The stack's tags as CloudFormation has them, stream's own included.
fn tags(stack: &aws_sdk_cloudformation::types::Stack) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = stack
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
        .collect();
    tags.sort();
    tags
}

async fn bucket_exists(s3: &aws_sdk_s3::Client, bucket: &str) -> bool {
    s3.head_bucket().bucket(bucket).send().await.is_ok()
}

async fn keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = s3.list_objects_v2().bucket(bucket).send().await.expect("list");
    out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn dry_run_own_bucket_tags_and_service_role() {
    // A region no other test deploys to: the managed bucket must not exist unless made here.
    let w = World::new("flags", "me-south-1");
    let clients = w.clients().await;
    let managed = format!("stream-artifacts-123456789012-{}", w.region);

    // A dry run of a new stack: CloudFormation's plan, then nothing left behind.
    let (out, _) = w.run(&["deploy", "--dry-run", "--tags", "team=data", "-o", "json"], 0);
    let planned: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(planned["action"], "would-create");
    let added: Vec<&str> = planned["plan"]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["action"] == "add")
        .filter_map(|c| c["logical_id"].as_str())
        .collect();
    assert!(added.contains(&"EventDataTable") && added.contains(&"Function"), "{planned}");
    assert_eq!(planned["plan"]["tags"], serde_json::json!([{"name": "team", "from": "", "to": "data"}]));
    assert_eq!(planned["change_set_deleted"], true);
    assert!(stream::stack::find(&clients, &w.stack).await.expect("describe").is_none(), "no stack left");
    assert!(!bucket_exists(&clients.s3, &managed).await, "no bucket made by a dry run");

    // A bucket of the user's that does not exist is refused: stream never makes one.
    let mine = format!("{}-code", w.stack).to_lowercase();
    let (_, err) = w.run(&["deploy", "--s3-bucket", &mine], 2);
    assert_error_lines(
        &err,
        &format!("bucket {mine} does not exist (stream uses a bucket of yours as it is"),
        &format!("create it first (aws s3 mb s3://{mine} --region {})", w.region),
    );
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(w.region.as_str()))
        .build();
    clients.s3.create_bucket().bucket(&mine).create_bucket_configuration(location).send().await.expect("bucket");

    let role = "arn:aws:iam::123456789012:role/cfn-deployer";
    let (out, _) =
        w.run(&["deploy", "--s3-bucket", &mine, "--tags", "team=data", "env=dev", "--role-arn", role, "-o", "json"], 0);
    let deployed: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(deployed["tags"], serde_json::json!({"env": "dev", "team": "data"}));
    assert_eq!(deployed["role_arn"], role);
    assert!(deployed["artifact"].as_str().is_some_and(|a| a.starts_with(&format!("s3://{mine}/{}/", w.stack))));
    let stack = stream::stack::find(&clients, &w.stack).await.expect("describe").expect("stack");
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(tags(&stack), [pair("env", "dev"), pair("managed-by", "stream"), pair("team", "data")]);
    assert_eq!(stack.role_arn(), Some(role));
    assert_eq!(stream::stack::parameter(&stack, "CodeBucket"), Some(mine.as_str()));
    assert_eq!(keys(&clients.s3, &mine).await.len(), 2, "the zip and the schema file");
    assert!(!bucket_exists(&clients.s3, &managed).await, "the managed bucket is not made");
    let (out, _) = w.run(&["status", "-o", "json"], 0);
    let status: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(status["tags"], serde_json::json!({"env": "dev", "managed-by": "stream", "team": "data"}));
    assert_eq!(status["role_arn"], role);
    let (out, _) = w.run(&["status"], 0);
    assert!(out.contains("tags               env=dev managed-by=stream team=data\n"), "{out}");
    assert!(out.contains(&format!("service role       {role}\n")), "{out}");

    // A dry run of an update: the plan names the parameter; the stack and its change sets stay as
    // they were. The bucket and the tags are the stack's (no flag repeats them).
    let (out, _) = w.run(&["deploy", "--dry-run", "--batch-size", "50", "-o", "json"], 0);
    let planned: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(planned["action"], "would-update");
    assert_eq!(planned["plan"]["parameters"], serde_json::json!([{"name": "BatchSize", "from": "100", "to": "50"}]));
    assert_eq!(planned["plan"]["tags"], serde_json::json!([]));
    assert_eq!(planned["tags"], serde_json::json!({"env": "dev", "team": "data"}));
    let stack = stream::stack::find(&clients, &w.stack).await.expect("describe").expect("stack");
    assert_eq!(stream::stack::parameter(&stack, "BatchSize"), Some("100"));
    // moto lists the change sets of every stack whatever the name asked: keep this stack's.
    let sets = clients.cfn.list_change_sets().stack_name(&w.stack).send().await.expect("change sets");
    let left: Vec<_> = sets.summaries().iter().filter(|s| s.stack_id() == stack.stack_id()).collect();
    assert!(left.is_empty(), "the dry run's change set is gone: {left:?}");

    // An update keeps the tags and the bucket; moto keeps no tag change on an update (AWS does), and
    // stream says so rather than report tags the stack does not have.
    let (out, _) = w.run(&["deploy", "--batch-size", "50", "--yes", "-o", "json"], 0);
    let updated: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(updated["tags"], serde_json::json!({"env": "dev", "team": "data"}));
    assert!(updated["artifact"].as_str().is_some_and(|a| a.starts_with(&format!("s3://{mine}/"))));
    let (_, err) = w.run(&["deploy", "--tags", "env=prod", "--yes"], 1);
    assert_error_lines(&err, "the tags of stack", "give --tags when the stack is created");

    // destroy empties the stack's part of the user's bucket and leaves the bucket.
    let (out, _) = w.run(&["destroy", "--yes", "-o", "json"], 0);
    let destroyed: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(destroyed["deleted_bucket"], false);
    assert!(bucket_exists(&clients.s3, &mine).await, "a bucket of the user's stays");
    assert_eq!(keys(&clients.s3, &mine).await, Vec::<String>::new());
}
