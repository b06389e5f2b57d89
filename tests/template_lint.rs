//! cfn-lint (from the project's venv, installed by scripts/local-aws) finds nothing in the
//! template that `stream template` prints.

mod common;

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
