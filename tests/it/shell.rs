//! Fitting the user's shell, through the real binary: completion scripts generate for each shell
//! and load in bash (and complete a subcommand); `--version` names the commit it was built from;
//! `scripts/install` puts a working binary into a prefix and refuses what it does not know.

use crate::common;

use std::process::Command;

#[test]
fn completions_generate_for_each_shell_and_load_in_bash() {
    for (shell, marker) in [
        ("bash", "complete -F _stream"),
        ("zsh", "#compdef stream"),
        ("fish", "complete -c stream"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let (out, _) = common::run_plain(&["completions", shell], &[], 0);
        assert!(out.contains(marker), "{shell}: {}", &out[..out.len().min(300)]);
        for sub in ["deploy", "tail", "logs", "redrive", "plan"] {
            assert!(out.contains(sub), "{shell} completes {sub}");
        }
    }
    // Loaded into bash, `stream t<TAB>` offers tail and template, and `stream tail --fr<TAB>` --from.
    let script = format!(
        r#"source <("{bin}" completions bash) && complete -p stream &&
           COMP_WORDS=(stream t); COMP_CWORD=1; _stream stream t stream; echo "words: ${{COMPREPLY[*]}}" &&
           COMP_WORDS=(stream tail --fr); COMP_CWORD=2; _stream stream --fr tail; echo "flags: ${{COMPREPLY[*]}}""#,
        bin = common::bin()
    );
    let out = Command::new("bash").args(["-c", &script]).output().expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("-F _stream stream"), "registered: {stdout}");
    let words = stdout.lines().find_map(|l| l.strip_prefix("words: ")).expect("words");
    assert_eq!(words.split_whitespace().collect::<Vec<_>>(), ["tail", "template"], "{stdout}");
    let flags = stdout.lines().find_map(|l| l.strip_prefix("flags: ")).expect("flags");
    assert_eq!(flags.trim(), "--from", "{stdout}");
    let (_, err) = common::run_plain(&["completions", "tcsh"], &[], 2);
    common::assert_error_lines(&err, "tcsh", "give <SHELL> one of: bash, elvish, fish, powershell, zsh");
}

#[test]
fn the_version_names_the_commit() {
    let (out, _) = common::run_plain(&["--version"], &[], 0);
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(common::repo())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(|| "unknown".to_string(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert_eq!(out.trim(), format!("stream {} (commit {commit})", env!("CARGO_PKG_VERSION")));
}

#[test]
fn install_puts_the_binary_on_a_prefix() {
    let prefix = tempfile::tempdir().expect("tempdir");
    let script = common::repo().join("scripts/install");
    let out = Command::new(&script)
        .args(["--prefix", &prefix.path().display().to_string()])
        .env("STREAM_STATIC_BIN", common::bin())
        .output()
        .expect("scripts/install runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let installed = prefix.path().join("bin/stream");
    let version = Command::new(&installed).arg("--version").output().expect("the installed binary runs");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("stream "));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&installed).expect("installed").permissions().mode() & 0o777, 0o755);
    assert!(!prefix.path().join("bin/stream-arm64").exists(), "no other build lies beside the test binary");

    // Builds of each architecture beside the one installed (as scripts/build --arch all leaves
    // them) are installed with it, where `stream deploy --arch` looks for them.
    let built = tempfile::tempdir().expect("tempdir");
    for name in ["stream-x86_64", "stream-arm64"] {
        std::fs::copy(common::bin(), built.path().join(name)).expect("copy");
    }
    let out = Command::new(&script)
        .args(["--prefix", &prefix.path().display().to_string()])
        .env("STREAM_STATIC_BIN", built.path().join("stream-x86_64"))
        .output()
        .expect("scripts/install runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in ["stream", "stream-x86_64", "stream-arm64"] {
        let mode = std::fs::metadata(prefix.path().join("bin").join(name)).expect(name).permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{name}");
    }
    let bad = Command::new(&script).args(["--arch", "arm64"]).output().expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--arch takes all") && err.contains("hint: scripts/install --arch all"), "{err}");

    let bad = Command::new(&script).arg("--prefx").output().expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("unknown argument --prefx") && err.contains("hint: scripts/install [--prefix DIR]"), "{err}");
}
