//! The release binaries are static: no ELF interpreter, `ldd` agrees, and the host's runs in an
//! empty root holding only itself, /etc/hosts and /etc/resolv.conf, reaching the emulator by the
//! name `localhost`; the other architecture's runs under qemu-user. Needs root (chroot), moto and
//! `scripts/build`'s output (STREAM_STATIC_BIN; `--arch all` for both).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use stream::deploy::elf::{self, Arch};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| common::repo().join("target"))
}

/// The architecture these tests run on, which `scripts/build` builds without `--arch`.
const HOST: Arch = if cfg!(target_arch = "aarch64") { Arch::Arm64 } else { Arch::X86_64 };

fn static_bin() -> PathBuf {
    let path = std::env::var_os("STREAM_STATIC_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let triple = if HOST == Arch::Arm64 { "aarch64-unknown-linux-gnu" } else { "x86_64-unknown-linux-gnu" };
        target_dir().join(triple).join("release/stream")
    });
    assert!(path.exists(), "{} missing: run scripts/build first", path.display());
    path
}

/// Static: Lambda's architecture `arch`, nothing asked of the machine, no interpreter, and `file`
/// agrees where it is installed.
fn assert_static(bin: &Path, arch: Arch) {
    let bytes = std::fs::read(bin).expect("read binary");
    assert_eq!(elf::lambda_arch(&bytes), Ok(arch));
    let linkage = elf::Linkage::read(&bytes);
    assert!(linkage.needed.is_empty() && linkage.versions.is_empty(), "needs nothing of the machine: {linkage:?}");
    const PT_INTERP: u32 = 3;
    assert!(!program_header_types(&bytes).contains(&PT_INTERP), "no dynamic loader requested");
    if let Ok(file) = Command::new("file").arg(bin).output() {
        let text = String::from_utf8_lossy(&file.stdout);
        assert!(text.contains("statically linked") || text.contains("static-pie linked"), "{text}");
    }
}

/// Program header types of a 64-bit little-endian ELF file.
fn program_header_types(bytes: &[u8]) -> Vec<u32> {
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes")) as usize;
    let (size, count) = (u16_at(54), u16_at(56));
    (0..count)
        .map(|i| u32::from_le_bytes(bytes[phoff + i * size..phoff + i * size + 4].try_into().expect("4 bytes")))
        .collect()
}

#[test]
#[ignore = "needs scripts/build, root and moto: scripts/test"]
fn release_binary_is_static_and_runs_in_an_empty_root() {
    let bin = static_bin();
    assert_static(&bin, HOST);
    let ldd = Command::new("ldd").arg(&bin).output().expect("ldd runs");
    let ldd_text = format!("{}{}", String::from_utf8_lossy(&ldd.stdout), String::from_utf8_lossy(&ldd.stderr));
    assert!(ldd_text.contains("statically linked") || ldd_text.contains("not a dynamic executable"), "{ldd_text}");

    // An empty root: the binary, /etc/hosts and /etc/resolv.conf; no libraries, no /proc.
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("etc")).expect("mkdir etc");
    std::fs::write(root.path().join("etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n").expect("hosts");
    std::fs::write(root.path().join("etc/resolv.conf"), "nameserver 127.0.0.1\n").expect("resolv.conf");
    std::fs::copy(&bin, root.path().join("stream")).expect("copy binary");
    let files: Vec<String> = walk(root.path());
    assert_eq!(files, vec!["etc/hosts", "etc/resolv.conf", "stream"]);

    let chroot = |args: &[&str]| {
        // Absolute path: the cleared environment has no PATH to search.
        Command::new(if Path::new("/usr/sbin/chroot").exists() { "/usr/sbin/chroot" } else { "/usr/bin/chroot" })
            .arg(root.path())
            .arg("/stream")
            .args(args)
            .env_clear()
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .expect("chroot runs (needs root)")
    };
    let out = chroot(&["template"]);
    common::check(&out, 0, &["template"]);

    // A round trip to the emulator by host name: DescribeStacks answers that the stack is missing.
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL set by scripts/test");
    let by_name = endpoint.replace("127.0.0.1", "localhost");
    assert!(by_name.contains("localhost"), "{by_name}");
    let args = ["scan-table", "--stack", "no-such-stack", "--region", "us-east-1", "--endpoint-url", &by_name];
    let out = chroot(&args);
    let (_, err) = common::check(&out, 1, &args);
    common::assert_error_lines(&err, "stack \"no-such-stack\" does not exist", "stream deploy --stack no-such-stack");
}

/// `scripts/build --arch all` leaves both architectures side by side in lambda/: each static, and
/// the one this machine does not run runs under qemu-user and prints the embedded template.
#[test]
#[ignore = "needs scripts/build --arch all (which installs qemu-user): scripts/test"]
fn both_architectures_are_built_static_side_by_side() {
    let dir = target_dir().join("lambda");
    for (arch, qemu) in [(Arch::X86_64, "qemu-x86_64"), (Arch::Arm64, "qemu-aarch64")] {
        let bin = dir.join(format!("stream-{}", arch.as_str()));
        assert!(bin.exists(), "{} missing: run scripts/build --arch all", bin.display());
        assert!(dir.join(format!("stream-{}.zip", arch.as_str())).exists(), "its zip beside it");
        assert_static(&bin, arch);
        let run = if arch == HOST {
            Command::new(&bin).arg("template").output()
        } else {
            Command::new(qemu).arg(&bin).arg("template").output()
        };
        let out = run.expect("it starts");
        let args = [arch.as_str(), "template"];
        let (stdout, _) = common::check(&out, 0, &args);
        assert!(stdout.starts_with("AWSTemplateFormatVersion"), "{arch:?}: {stdout:.80}");
    }
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(
                walk(&path)
                    .into_iter()
                    .map(|p| format!("{}/{p}", path.file_name().and_then(|n| n.to_str()).unwrap_or(""))),
            );
        } else {
            out.push(path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string());
        }
    }
    out.sort();
    out
}
