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

/// No IAM action is `*`, and no statement grants on every resource.
#[test]
fn no_wildcard_iam_action_or_resource() {
    let (template, _) = common::run_plain(&["template"], &[], 0);
    for line in template.lines().map(str::trim) {
        let value = line.trim_start_matches("- ").trim_start_matches("Action:").trim_start_matches("Resource:").trim();
        assert!(value != "\"*\"" && value != "'*'" && value != "*", "wildcard in: {line}");
        if line.starts_with("- ") && line.contains(':') && !line.contains(' ') {
            assert!(!line.ends_with(":*"), "service-wide action: {line}");
        }
    }
    assert!(!template.contains("Action: \"*\""));
}
