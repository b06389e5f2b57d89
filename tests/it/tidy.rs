//! The project's own rules, kept as tests (as rust-analyzer keeps its tidy rules): the layer map in
//! the crate doc is true (no module imports from a layer above or from its own, every module is on
//! the map, so no import cycle); no non-test function in src/ is longer than 80 lines; every
//! source file starts with its `//!` header; tests share helpers as modules, not `#[path]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::common;

/// The build script's own code (build.rs includes it by path): not a module of the crate.
const BUILD_SCRIPT_DIR: &str = "build";

/// Longest non-test function allowed in src/, in lines (signature and closing brace included).
const MAX_FUNCTION_LINES: usize = 80;

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The layer map of the crate doc: module name → layer number (1 at the top).
fn layer_map(lib_rs: &str) -> BTreeMap<String, usize> {
    let src = common::repo().join("src");
    let is_module = |name: &str| name == "main" || src.join(format!("{name}.rs")).is_file() || src.join(name).is_dir();
    let mut map = BTreeMap::new();
    let mut layer = 0;
    let mut in_layers = false;
    for line in lib_rs.lines().filter_map(|l| l.strip_prefix("//!")).map(str::trim) {
        if line.starts_with('#') {
            in_layers = line == "# Layers";
            continue;
        }
        if !in_layers {
            continue;
        }
        if let Some((n, _)) = line.split_once(". ")
            && let Ok(n) = n.parse::<usize>()
        {
            layer = n;
        }
        for name in line.split('`').skip(1).step_by(2) {
            if layer > 0 && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') && is_module(name) {
                let previous = map.insert(name.to_string(), layer);
                assert!(previous.is_none() || previous == Some(layer), "{name} is on two layers of the map");
            }
        }
    }
    map
}

/// The top-level module a source file belongs to (`None` for lib.rs, the crate root).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.as_str() {
        "lib.rs" => None,
        _ => Some(first.trim_end_matches(".rs").to_string()),
    }
}

/// The crate's top-level modules a file uses (`crate::x` in the library, `stream::x` in main.rs),
/// outside comments and outside its tests.
fn imports(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code_lines(text) {
        let code = line.split("//").next().unwrap_or_default();
        for (i, _) in code.match_indices(prefix) {
            let rest = &code[i + prefix.len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                // `use stream::{a, b::c, d}`: the first segment of each item.
                Some(group) => group.split('}').next().unwrap_or_default().split(',').collect(),
                None => vec![rest],
            };
            for name in names {
                let name: String = name
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                if !name.is_empty() && name != "self" {
                    out.insert(name);
                }
            }
        }
    }
    out
}

/// The lines of a file before its `#[cfg(test)]` module.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().take_while(|l| l.trim() != "#[cfg(test)]")
}

/// Checks the layer rule against a map and a set of (module, imports); returns the violations.
fn layer_violations(map: &BTreeMap<String, usize>, uses: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    for (module, imported) in uses {
        let Some(&own) = map.get(module) else {
            problems.push(format!("module `{module}` is not on the layer map in src/lib.rs"));
            continue;
        };
        for other in imported.iter().filter(|o| *o != module) {
            match map.get(other) {
                None => problems.push(format!("`{module}` imports `{other}`, which is not on the layer map")),
                Some(&theirs) if theirs < own => {
                    problems.push(format!("`{module}` (layer {own}) imports `{other}` from layer {theirs}, above it"))
                }
                Some(&theirs) if theirs == own => {
                    problems.push(format!("`{module}` imports `{other}` from its own layer {own}"))
                }
                Some(_) => {}
            }
        }
    }
    problems
}

/// Every module's imports, read from src/. A directory with its own Cargo.toml (src/patch/…) is a
/// package of its own, not a module of the crate.
fn crate_imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = common::repo().join("src");
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        if file
            .ancestors()
            .take_while(|d| *d != src)
            .any(|d| d.join("Cargo.toml").is_file() || d == src.join(BUILD_SCRIPT_DIR))
        {
            continue;
        }
        let Some(module) = module_of(&src, &file) else { continue };
        let text = std::fs::read_to_string(&file).expect("source file");
        let prefix = if module == "main" { "stream::" } else { "crate::" };
        uses.entry(module).or_default().extend(imports(&text, prefix));
    }
    uses
}

/// Arrows only point down: the crate doc's layer map holds for every import in src/.
#[test]
fn imports_follow_the_layer_map() {
    let lib = std::fs::read_to_string(common::repo().join("src/lib.rs")).expect("lib.rs");
    let map = layer_map(&lib);
    assert!(map.len() >= 20, "the map lists the modules: {map:?}");
    let uses = crate_imports();
    let problems = layer_violations(&map, &uses);
    assert!(problems.is_empty(), "layer map broken:\n{}", problems.join("\n"));
    // Every module declared in lib.rs is on the map.
    for line in lib.lines().filter_map(|l| l.strip_prefix("pub mod ")) {
        let name = line.trim_end_matches(';');
        assert!(map.contains_key(name), "`{name}` is declared in lib.rs but missing from the layer map");
    }
}

/// The checker itself catches an upward import, a sideways one, and a module missing from the map.
#[test]
fn the_layer_check_can_fail() {
    let map: BTreeMap<String, usize> = [("cli", 2), ("deploy", 3), ("produce", 3), ("error", 9)]
        .into_iter()
        .map(|(m, l)| (m.to_string(), l))
        .collect();
    let uses = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, BTreeSet<String>> {
        pairs.iter().map(|(m, i)| (m.to_string(), i.iter().map(|s| s.to_string()).collect())).collect()
    };
    assert!(layer_violations(&map, &uses(&[("deploy", &["error"]), ("cli", &["deploy"])])).is_empty());
    let up = layer_violations(&map, &uses(&[("error", &["cli"])]));
    assert!(up.len() == 1 && up[0].contains("above it"), "{up:?}");
    let sideways = layer_violations(&map, &uses(&[("deploy", &["produce"])]));
    assert!(sideways.len() == 1 && sideways[0].contains("its own layer"), "{sideways:?}");
    let unmapped = layer_violations(&map, &uses(&[("newthing", &[])]));
    assert!(unmapped.len() == 1 && unmapped[0].contains("not on the layer map"), "{unmapped:?}");
    assert_eq!(
        imports("use crate::kinesis::{self, Entry};\nuse crate::{retry, error::Error};\n// crate::nope\n", "crate::"),
        ["error", "kinesis", "retry"].into_iter().map(String::from).collect()
    );
}

/// (file, function name, lines) of every function in `text` before its tests longer than `max`.
fn long_functions(text: &str, max: usize) -> Vec<(String, usize)> {
    let lines: Vec<&str> = code_lines(text).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let head = trimmed
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("pub ")
            .trim_start_matches("const ")
            .trim_start_matches("async ");
        let Some(rest) = head.strip_prefix("fn ") else { continue };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        // A declaration without a body (in a trait) ends with `;` before any `{`.
        let closing = format!("{}}}", " ".repeat(indent));
        let Some(end) = lines[i..].iter().position(|l| {
            *l == closing
                || (l.trim_end().ends_with('}') && l.len() - l.trim_start().len() == indent && l.contains('{'))
        }) else {
            continue;
        };
        let before_body =
            lines[i..=i + end].iter().take_while(|l| !l.contains('{')).any(|l| l.trim_end().ends_with(';'));
        if before_body {
            continue;
        }
        if end + 1 > max {
            out.push((name, end + 1));
        }
    }
    out
}

/// No function outside tests grows past 80 lines: past that, split it into named steps.
#[test]
fn no_function_is_longer_than_80_lines() {
    let src = common::repo().join("src");
    let mut long = Vec::new();
    for file in rust_files(&src) {
        let text = std::fs::read_to_string(&file).expect("source file");
        for (name, n) in long_functions(&text, MAX_FUNCTION_LINES) {
            long.push(format!(
                "{}: fn {name} is {n} lines",
                file.strip_prefix(common::repo()).expect("in repo").display()
            ));
        }
    }
    assert!(long.is_empty(), "functions over {MAX_FUNCTION_LINES} lines:\n{}", long.join("\n"));
    // The measure itself: a 3-line function, a long one, a trait declaration.
    let body = format!(
        "fn short() {{\n    x();\n}}\n\npub async fn long() {{\n{}}}\n\n    fn decl(&self);\n",
        "    x();\n".repeat(90)
    );
    assert_eq!(long_functions(&body, MAX_FUNCTION_LINES), vec![("long".to_string(), 92)]);
}

/// Every source file says what it owns in a `//!` header at its top.
#[test]
fn every_file_starts_with_its_module_header() {
    let repo = common::repo();
    let mut files = rust_files(&repo.join("src"));
    files.extend(rust_files(&repo.join("tests/it")));
    files.extend(rust_files(&repo.join("tests/bench")));
    files.push(repo.join("build.rs"));
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).expect("source file");
            !text.lines().find(|l| !l.trim().is_empty() && !l.starts_with("#![")).is_some_and(|l| l.starts_with("//!"))
        })
        .map(|f| f.strip_prefix(repo).expect("in repo").display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a //! header: {missing:?}");
}

/// Integration tests are one crate: helpers are modules, not files included by path.
#[test]
fn tests_are_one_crate_without_path_includes() {
    let repo = common::repo();
    let entries: Vec<String> = std::fs::read_dir(repo.join("tests"))
        .expect("tests/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(entries.is_empty(), "test files outside tests/it (each would be its own binary): {entries:?}");
    let files = rust_files(&repo.join("tests"));
    let needle = concat!("#[", "path");
    for f in files {
        let text = std::fs::read_to_string(&f).expect("file");
        let included = text.lines().any(|l| l.trim_start().starts_with(needle));
        assert!(!included, "{} includes a file by path", f.display());
    }
}

/// The top level is the design's: Cargo.toml, src, template, scripts, tests, LICENSE, with README,
/// Cargo.lock, build.rs and .ci beside them, and dot files (git's and tools' settings). What git
/// tracks is checked, so a stray local directory (target/, .venv/) does not count.
#[test]
fn the_top_level_is_the_designs() {
    let design =
        ["Cargo.toml", "src", "template", "scripts", "tests", "LICENSE", "README.md", "Cargo.lock", "build.rs", ".ci"];
    let out = std::process::Command::new("git")
        .args(["ls-files", "--cached", "--others", "--exclude-standard"])
        .current_dir(common::repo())
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files: {}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8(out.stdout).expect("utf8");
    let extra: BTreeSet<&str> = listed
        .lines()
        .filter_map(|path| path.split('/').next())
        .filter(|top| !top.starts_with('.') || *top == ".ci")
        .filter(|top| !design.contains(top))
        .collect();
    assert!(extra.is_empty(), "outside the design's top level (move them into src, scripts or tests): {extra:?}");
}

/// The hash crates in the lock file, by name: (version, from crates.io).
fn locked(lock: &str, names: &[&str]) -> BTreeMap<String, Vec<(String, bool)>> {
    let mut out: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for package in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            package.lines().find_map(|l| l.strip_prefix(&format!("{key} = \""))).map(|v| v.trim_end_matches('"'))
        };
        if let Some(name) = field("name").filter(|n| names.contains(n)) {
            let from_registry = field("source").is_some_and(|s| s.starts_with("registry+"));
            out.entry(name.to_string()).or_default().push((field("version").unwrap_or_default().into(), from_registry));
        }
    }
    out
}

/// One implementation of each hash in the binary: each hash crate (and `digest`) comes from
/// crates.io in one version. A second package of the name may only be a stand-in in src/patch
/// (sha1 0.10's API for aws-config's SSO cache and tungstenite's handshake, over sha1 0.11).
#[test]
fn each_hash_crate_comes_in_one_version() {
    let repo = common::repo();
    let lock = std::fs::read_to_string(repo.join("Cargo.lock")).expect("Cargo.lock");
    let names = ["md-5", "sha1", "sha2", "digest"];
    let found = locked(&lock, &names);
    let stand_ins: Vec<String> = std::fs::read_dir(repo.join("src/patch"))
        .expect("src/patch")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("Cargo.toml")).ok())
        .filter_map(|toml| {
            toml.lines().find_map(|l| l.strip_prefix("name = \"")).map(|n| n.trim_end_matches('"').into())
        })
        .collect();
    for name in names {
        let versions = found.get(name).cloned().unwrap_or_default();
        let registry: Vec<&String> = versions.iter().filter(|(_, r)| *r).map(|(v, _)| v).collect();
        assert_eq!(registry.len(), 1, "{name} from crates.io in one version: {versions:?}");
        let local = versions.iter().filter(|(_, r)| !r).count();
        assert!(local == 0 || stand_ins.iter().any(|s| s == name), "{name}: {versions:?}");
    }
    // The check itself: two versions from crates.io are caught.
    let two = "[[package]]\nname = \"sha1\"\nversion = \"0.10.7\"\nsource = \"registry+x\"\n\
               [[package]]\nname = \"sha1\"\nversion = \"0.11.0\"\nsource = \"registry+x\"\n";
    assert_eq!(locked(two, &["sha1"])["sha1"].len(), 2);
}

/// SHA-1 as its 0.10 users (aws-config's SSO token cache names, the websocket handshake) compute
/// it: FIPS 180 and RFC 6455's examples.
#[test]
fn sha1_through_its_0_10_api_is_sha1() {
    use sha1_010::Digest;
    assert_eq!(hex::encode(sha1_010::Sha1::digest(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/// The record path is compiled at opt-level 3 and the rest of the binary at "z": the JSON walk's
/// package (src/json, where serde_json's parser is compiled for it) and the crates each record or
/// call hashes, encodes and serializes with. Each is measured in scripts/bench (issue 21); the
/// zipped artifact's size (scripts/build) bounds the list.
#[test]
fn the_record_path_is_compiled_for_speed_and_the_rest_for_size() {
    let repo = common::repo();
    let manifest: toml::Table =
        std::fs::read_to_string(repo.join("Cargo.toml")).expect("Cargo.toml").parse().expect("Cargo.toml is TOML");
    let release = &manifest["profile"]["release"];
    assert_eq!(release["opt-level"].as_str(), Some("z"), "the binary is built for size");
    let fast: BTreeSet<&str> = release["package"]
        .as_table()
        .expect("[profile.release.package]")
        .iter()
        .filter(|(_, p)| p.get("opt-level").and_then(toml::Value::as_integer) == Some(3))
        .map(|(name, _)| name.as_str())
        .collect();
    for name in ["stream-json", "stream-time", "sha2", "md-5", "base64-simd", "aws-smithy-json", "simdutf8", "memchr"] {
        assert!(fast.contains(name), "{name} is not at opt-level 3: {fast:?}");
    }
    // The walk is in that package, not in the crate, whose opt-level is "z".
    let walk = std::fs::read_to_string(repo.join("src/json/decode.rs")).expect("src/json/decode.rs");
    assert!(walk.contains("pub fn walk<'a>(plan: &Plan"), "the walk is in src/json/decode.rs");
    assert!(!repo.join("src/schema/decode.rs").exists(), "a second walk in src/schema");
    // So are the event times; `time` only re-exports them (and tests them).
    let times = std::fs::read_to_string(repo.join("src/time/lib.rs")).expect("src/time/lib.rs");
    assert!(times.contains("pub fn parse(text: &str"), "the event times are in src/time/lib.rs");
    let module = std::fs::read_to_string(repo.join("src/time.rs")).expect("src/time.rs");
    assert!(!module.contains("pub fn parse("), "a second time parser in src/time.rs");
}
