//! cfn-lint (from the project's venv, installed by scripts/local-aws) and checkov find nothing in
//! the template that `stream template` prints; no IAM grant of the template is broader than what
//! it names (wildcard or excluding actions and resources, anyone trusted, policies attached by ARN).

use crate::common;

use std::collections::BTreeMap;

use serde_json::{Value, json};

#[test]
#[ignore = "needs cfn-lint from the venv: scripts/test"]
fn cfn_lint_reports_nothing() {
    let (template, _) = common::run_plain(&["template"], &[], 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stack.yaml");
    std::fs::write(&path, template).expect("write template");
    let lint = common::repo().join(".venv/bin/cfn-lint");
    let out =
        std::process::Command::new(&lint).arg(&path).output().unwrap_or_else(|e| panic!("{}: {e}", lint.display()));
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "cfn-lint:\n{report}");

    // The linter does fail on a broken template: this test can fail.
    std::fs::write(&path, "Resources:\n  X:\n    Type: AWS::Nope::Thing\n").expect("write");
    let bad = std::process::Command::new(&lint).arg(&path).output().expect("cfn-lint runs");
    assert!(!bad.status.success());
}

#[test]
#[ignore = "needs checkov from its venv: scripts/test"]
fn checkov_fails_nothing_and_every_skip_is_justified() {
    let (template, _) = common::run_plain(&["template"], &[], 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stack.yaml");
    std::fs::write(&path, &template).expect("write template");
    let checkov = common::repo().join(".venv-checkov/bin/checkov");
    let out = std::process::Command::new(&checkov)
        .args(["--framework", "cloudformation", "--output", "json", "--quiet", "-f"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", checkov.display()));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("checkov JSON report");
    let results = &report["results"];
    let failed = results["failed_checks"].as_array().map_or(0, Vec::len);
    assert_eq!(failed, 0, "checkov failures: {}", results["failed_checks"]);
    assert!(report["summary"]["passed"].as_u64().unwrap_or(0) > 20, "checkov really ran: {}", report["summary"]);
    for skipped in results["skipped_checks"].as_array().into_iter().flatten() {
        let comment = skipped["check_result"]["suppress_comment"].as_str().unwrap_or("");
        assert!(comment.len() > 20, "skip of {} needs a reason next to the resource", skipped["check_id"]);
    }
}

/// The values of a policy element (`Statement`, `Action`, `Resource`, …): one or a list, where an
/// `Fn::If` stands for both of its branches (either may be deployed) and `AWS::NoValue` for nothing.
fn values(v: &Value) -> Vec<&Value> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().flat_map(values).collect(),
        Value::Object(o) if o.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") => Vec::new(),
        Value::Object(o) if o.contains_key("Fn::If") => {
            o["Fn::If"].as_array().map(|a| a.iter().skip(1).flat_map(values).collect()).unwrap_or_default()
        }
        other => vec![other],
    }
}

/// Every statement of every IAM policy in a template: (where, statement). Inline policies of
/// roles, users and groups; the documents of policy resources (managed policies, queue and topic
/// policies); trust policies.
fn statements(doc: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (id, resource) in doc["Resources"].as_object().into_iter().flatten() {
        let props = &resource["Properties"];
        // A whole document may be chosen by a condition (the role's trust is): both branches count.
        let documents = values(&props["Policies"])
            .into_iter()
            .map(|p| &p["PolicyDocument"])
            .chain(values(&props["PolicyDocument"]))
            .chain(values(&props["AssumeRolePolicyDocument"]));
        for document in documents {
            for statement in values(&document["Statement"]) {
                out.push((id.clone(), statement.clone()));
            }
        }
    }
    out
}

/// What is too broad in an Allow statement: an action with a wildcard (`*`, `kinesis:*`,
/// `kinesis:Put*`, `kinesis:Get?ecords`), `NotAction` or `NotResource` (everything but a list), a
/// `*` resource, and a `*` principal or `NotPrincipal` (anyone may assume a role that trusts it).
/// A principal named by its ARN (or a `!Sub` of one) and a service principal pass.
fn too_broad(statement: &Value) -> Vec<String> {
    let strings =
        |v: &Value| -> Vec<String> { values(v).iter().filter_map(|x| x.as_str().map(str::to_string)).collect() };
    if statement["Effect"].as_str() == Some("Deny") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for action in strings(&statement["Action"]) {
        if action.contains(['*', '?']) {
            out.push(format!("action {action}"));
        }
    }
    for not in ["NotAction", "NotResource", "NotPrincipal"] {
        if !statement[not].is_null() {
            out.push(format!("{not} (allows everything but what it lists)"));
        }
    }
    if strings(&statement["Resource"]).iter().any(|r| r == "*") {
        out.push("resource *".into());
    }
    let principal = &statement["Principal"];
    let anyone = match principal {
        Value::Object(kinds) => kinds.values().any(|v| strings(v).iter().any(|p| p == "*")),
        other => strings(other).iter().any(|p| p == "*"),
    };
    if anyone {
        out.push(format!("principal {principal}"));
    }
    out
}

/// Policies attached by ARN (`ManagedPolicyArns` of a role, user or group) that are not this
/// template's own: their statements (AdministratorAccess, PowerUserAccess, …) cannot be read here.
fn foreign_managed_policies(doc: &Value) -> Vec<(String, Value)> {
    let resources = doc["Resources"].as_object().cloned().unwrap_or_default();
    let ours = |arn: &Value| {
        let target = arn["Ref"].as_str().or_else(|| arn["Fn::GetAtt"][0].as_str());
        target.is_some_and(|t| resources.get(t).is_some_and(|r| r["Type"] == "AWS::IAM::ManagedPolicy"))
    };
    let mut out = Vec::new();
    for (id, resource) in &resources {
        for arn in values(&resource["Properties"]["ManagedPolicyArns"]) {
            if !ours(arn) {
                out.push((id.clone(), arn.clone()));
            }
        }
    }
    out
}

/// What a template grants too broadly, each finding with where it is.
fn findings(doc: &Value) -> Vec<String> {
    let broad =
        statements(doc).into_iter().flat_map(|(id, s)| too_broad(&s).into_iter().map(move |f| format!("{id}: {f}")));
    let managed = foreign_managed_policies(doc).into_iter().map(|(id, arn)| format!("{id}: managed policy {arn}"));
    broad.chain(managed).collect()
}

/// No IAM action has a wildcard, no statement grants on every resource or to every principal or
/// by exclusion (`NotAction`, `NotResource`, `NotPrincipal`), and no policy is attached by ARN:
/// read from the template as data, every policy of every resource.
#[test]
fn no_wildcard_iam_action_or_resource() {
    let doc = stream::template::document();
    let mut per_resource: BTreeMap<String, usize> = BTreeMap::new();
    for (id, _) in statements(doc) {
        *per_resource.entry(id).or_default() += 1;
    }
    // The role's trust (with local principals: Lambda and them; without: Lambda) and its five
    // grants; the producer's one.
    let expected: BTreeMap<String, usize> = [("FunctionRole".to_string(), 8), ("ProducerUser".to_string(), 1)].into();
    assert_eq!(per_resource, expected, "every statement is read");
    assert_eq!(findings(doc), Vec::<String>::new());
}

/// The check catches each broad grant, in a copy of the template: a statement put in place of the
/// producer's (or of the role's trust), or a policy attached to the role by ARN.
#[test]
fn each_broad_grant_is_found() {
    let doc = stream::template::document();
    // The first statement of the document at `pointer`, replaced.
    let with_statement = |pointer: &str, statement: Value| {
        let mut bad = doc.clone();
        bad.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}"))["Statement"][0] = statement;
        findings(&bad)
    };
    let grant = |action: Value, resource: Value| json!({"Effect": "Allow", "Action": action, "Resource": resource});
    let producer = "/Resources/ProducerUser/Properties/Policies/0/PolicyDocument";
    for (statement, found) in [
        (grant(json!("kinesis:*"), json!("arn:x")), "action kinesis:*"),
        (grant(json!(["*"]), json!("arn:x")), "action *"),
        (grant(json!(["kinesis:PutRecords", "kinesis:Put*"]), json!("arn:x")), "action kinesis:Put*"),
        (grant(json!("kinesis:Get?ecords"), json!("arn:x")), "action kinesis:Get?ecords"),
        (grant(json!("kinesis:PutRecords"), json!("*")), "resource *"),
        (grant(json!("kinesis:PutRecords"), json!(["arn:x", "*"])), "resource *"),
        (json!({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:x"}), "NotAction"),
        (json!({"Effect": "Allow", "Action": "kinesis:PutRecords", "NotResource": "arn:x"}), "NotResource"),
        (
            json!({"Fn::If": ["HasFilters", grant(json!("s3:*"), json!("arn:x")), {"Ref": "AWS::NoValue"}]}),
            "action s3:*",
        ),
    ] {
        let got = with_statement(producer, statement.clone());
        assert_eq!(got.len(), 1, "{statement}: {got:?}");
        assert!(got[0].starts_with("ProducerUser: ") && got[0].contains(found), "{statement}: {got:?}");
    }

    // Trust: a named principal (an ARN, or a !Sub of one) and a service pass; anyone does not.
    // The trust document is chosen by HasLocalPrincipals: either branch is read.
    for trust in [
        "/Resources/FunctionRole/Properties/AssumeRolePolicyDocument/Fn::If/1",
        "/Resources/FunctionRole/Properties/AssumeRolePolicyDocument/Fn::If/2",
    ] {
        let assume = |principal: Value| json!({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"});
        for named in [
            json!({"AWS": "arn:aws:iam::123456789012:role/operator"}),
            json!({"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}),
            json!({"AWS": ["arn:aws:iam::123456789012:user/a", "arn:aws:iam::123456789012:user/b"]}),
            json!({"Service": "lambda.amazonaws.com"}),
        ] {
            assert_eq!(with_statement(trust, assume(named.clone())), Vec::<String>::new(), "{trust}: {named}");
        }
        for anyone in [json!("*"), json!({"AWS": "*"}), json!({"AWS": ["arn:aws:iam::123456789012:root", "*"]})] {
            let got = with_statement(trust, assume(anyone.clone()));
            assert_eq!(got.len(), 1, "{trust}: {anyone}: {got:?}");
            assert!(got[0].starts_with("FunctionRole: principal"), "{trust}: {anyone}: {got:?}");
        }
        let not_principal = json!({"Effect": "Allow", "NotPrincipal": {"AWS": "arn:x"}, "Action": "sts:AssumeRole"});
        let got = with_statement(trust, not_principal);
        assert!(got.len() == 1 && got[0].contains("NotPrincipal"), "{trust}: {got:?}");
    }

    // A policy attached by ARN, AWS's own or any other, is found; the template's own is read instead.
    for arn in [
        json!("arn:aws:iam::aws:policy/AdministratorAccess"),
        json!({"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AdministratorAccess"}),
        json!("arn:aws:iam::123456789012:policy/anything"),
    ] {
        let mut bad = doc.clone();
        bad["Resources"]["FunctionRole"]["Properties"]["ManagedPolicyArns"] = json!([arn]);
        assert_eq!(findings(&bad), [format!("FunctionRole: managed policy {arn}")]);
    }
    let mut own = doc.clone();
    own["Resources"]["Extra"] = json!({"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument":
        {"Statement": [grant(json!("sqs:*"), json!("arn:x"))]}}});
    own["Resources"]["FunctionRole"]["Properties"]["ManagedPolicyArns"] = json!([{"Ref": "Extra"}]);
    assert_eq!(findings(&own), ["Extra: action sqs:*"], "the template's own managed policy is read");
}
