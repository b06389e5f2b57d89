//! cfn-lint (from the project's venv, installed by scripts/local-aws) finds nothing in the
//! template that `stream template` prints.

use crate::common;

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

/// Every statement of every IAM policy in a template: (where, statement).
fn statements(doc: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for (id, resource) in doc["Resources"].as_object().into_iter().flatten() {
        let props = &resource["Properties"];
        let documents = props["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| &p["PolicyDocument"])
            .chain([&props["PolicyDocument"], &props["AssumeRolePolicyDocument"]]);
        for document in documents {
            for statement in document["Statement"].as_array().into_iter().flatten() {
                out.push((id.clone(), statement.clone()));
            }
        }
    }
    out
}

/// What is too broad in a policy statement: a `*` action, a service-wide `service:*` action, or
/// a `*` resource.
fn too_broad(statement: &serde_json::Value) -> Vec<String> {
    let list = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    };
    let mut out = Vec::new();
    for action in list(&statement["Action"]) {
        if action == "*" || action.ends_with(":*") {
            out.push(format!("action {action}"));
        }
    }
    if list(&statement["Resource"]).iter().any(|r| r == "*") {
        out.push("resource *".into());
    }
    out
}

/// No IAM action is `*` or a whole service (`kinesis:*`), and no statement grants on every
/// resource: read from the template as data, every policy of every resource.
#[test]
fn no_wildcard_iam_action_or_resource() {
    let doc = stream::template::document();
    let all = statements(doc);
    assert!(all.len() >= 6, "the role's and the producer's statements are read: {}", all.len());
    for (id, statement) in &all {
        assert!(too_broad(statement).is_empty(), "{id}: {:?} in {statement}", too_broad(statement));
    }
    // The check catches what it is for: each broad grant, in a copy of the template.
    for (action, resource) in [("kinesis:*", "arn:x"), ("*", "arn:x"), ("kinesis:PutRecords", "*")] {
        let mut bad = doc.clone();
        bad["Resources"]["ProducerUser"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0] =
            serde_json::json!({"Effect": "Allow", "Action": [action], "Resource": resource});
        let found: Vec<String> = statements(&bad).iter().flat_map(|(_, s)| too_broad(s)).collect();
        assert_eq!(found.len(), 1, "{action} on {resource}: {found:?}");
    }
}
