//! The build script's commit watching (src/build/commit.rs): cargo must rerun the build script when a
//! commit moves HEAD, and only then. The file is plain std, so it is compiled here on its own with
//! `rustc --test` and its tests run against throwaway git repositories.

use std::process::Command;

use crate::common;

/// Watched git files all exist (a missing one reruns the build script, and relinks the release
/// binary, on every build), and a new commit still changes what is watched.
#[test]
fn the_build_script_watches_only_git_files_that_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = dir.path().join("commit-tests");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let built = Command::new(rustc)
        .args(["--edition", "2024", "--test", "-o"])
        .arg(&exe)
        .arg(common::repo().join("src/build/commit.rs"))
        .output()
        .expect("rustc runs");
    assert!(built.status.success(), "src/build/commit.rs compiles alone: {}", String::from_utf8_lossy(&built.stderr));
    let out = Command::new(&exe).env("TMPDIR", dir.path()).output().expect("the tests run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("3 passed"), "{text}");
}
