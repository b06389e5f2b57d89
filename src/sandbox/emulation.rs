//! A bootstrap built for the other architecture — an arm64 function on an x86_64 machine, or the
//! other way round — runs here under user-mode emulation: qemu-user's `qemu-<arch>` program (or
//! its `-static` build), else the kernel's binfmt_misc when qemu is registered there. The Runtime
//! API, limits and checkpoints are the same; its CPU and durations are the emulator's, not Lambda's.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::elf::{Arch, lambda_arch};
use crate::error::Error;

/// Where binfmt_misc lists the interpreters the kernel starts foreign executables with.
const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// How the bootstrap is started here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// It is this machine's architecture (or not an ELF at all: a script): run as it is.
    Native,
    /// Under qemu-user: `program` runs it.
    Qemu {
        /// The function's architecture.
        arch: Arch,
        /// `qemu-aarch64`, `qemu-x86_64` (or their `-static` builds).
        program: PathBuf,
    },
    /// The kernel's binfmt_misc starts qemu for it: run as it is.
    Binfmt {
        /// The function's architecture.
        arch: Arch,
        /// The binfmt_misc entry that takes it.
        entry: PathBuf,
    },
}

/// This machine's architecture, in Lambda's names.
pub fn host_arch() -> Arch {
    if cfg!(target_arch = "aarch64") { Arch::Arm64 } else { Arch::X86_64 }
}

/// qemu-user's name for an architecture.
fn qemu_name(arch: Arch) -> &'static str {
    match arch {
        Arch::Arm64 => "aarch64",
        Arch::X86_64 => "x86_64",
    }
}

impl Runner {
    /// How `bootstrap` runs on this machine; an error naming what to install when it cannot.
    pub fn for_bootstrap(bootstrap: &Path) -> Result<Runner, Error> {
        let path: Vec<PathBuf> =
            std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
        resolve(bootstrap, host_arch(), &path, Path::new(BINFMT_DIR))
    }

    /// The command that starts `bootstrap`.
    pub fn command(&self, bootstrap: &Path) -> Command {
        match self {
            Runner::Qemu { program, .. } => {
                let mut c = Command::new(program);
                c.arg(bootstrap);
                c
            }
            Runner::Native | Runner::Binfmt { .. } => Command::new(bootstrap),
        }
    }

    /// For the summary: how the function ran, when emulated.
    pub fn describe(&self) -> Option<String> {
        let (arch, via) = match self {
            Runner::Native => return None,
            Runner::Qemu { arch, program } => (arch, program.display().to_string()),
            Runner::Binfmt { arch, entry } => (arch, format!("binfmt_misc ({})", entry.display())),
        };
        Some(format!(
            "the {} function ran emulated on this {} machine, under {via}: its CPU and duration figures are the emulator's, not Lambda's",
            arch.as_str(),
            host_arch().as_str()
        ))
    }
}

/// `Runner::for_bootstrap` with the machine's architecture, PATH and binfmt_misc directory given.
fn resolve(bootstrap: &Path, host: Arch, path: &[PathBuf], binfmt: &Path) -> Result<Runner, Error> {
    let mut header = [0u8; 64];
    let read = std::fs::File::open(bootstrap).and_then(|mut f| std::io::Read::read(&mut f, &mut header));
    let arch = match read.ok().and_then(|n| lambda_arch(&header[..n]).ok()) {
        Some(a) if a != host => a,
        _ => return Ok(Runner::Native),
    };
    let name = format!("qemu-{}", qemu_name(arch));
    for dir in path {
        for program in [dir.join(&name), dir.join(format!("{name}-static"))] {
            if program.is_file() {
                return Ok(Runner::Qemu { arch, program });
            }
        }
    }
    for entry in [binfmt.join(&name), binfmt.join(format!("{name}-static"))] {
        let enabled = std::fs::read_to_string(&entry).is_ok_and(|text| text.lines().next() == Some("enabled"));
        if enabled {
            return Ok(Runner::Binfmt { arch, entry });
        }
    }
    Err(Error::config(
        format!(
            "the function is {} and this machine is {}: stream local runs it under user-mode emulation, and no {name} is installed",
            arch.as_str(),
            host.as_str()
        ),
        "install qemu-user (Debian/Ubuntu: sudo apt install qemu-user; or qemu-user-static with binfmt-support), or run on a machine of the function's architecture",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The first 64 bytes of an executable ELF of machine `machine` (62 x86_64, 183 aarch64).
    fn elf(machine: u16) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b
    }

    #[test]
    fn a_foreign_bootstrap_runs_under_qemu_or_binfmt_or_is_refused_with_what_to_install() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (bin, binfmt) = (dir.path().join("bin"), dir.path().join("binfmt"));
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::create_dir_all(&binfmt).expect("binfmt");
        let arm = dir.path().join("bootstrap-arm64");
        std::fs::write(&arm, elf(183)).expect("write");
        let x86 = dir.path().join("bootstrap-x86_64");
        std::fs::write(&x86, elf(62)).expect("write");
        let script = dir.path().join("bootstrap.sh");
        std::fs::write(&script, "#!/bin/sh\n").expect("write");
        let path = [bin.clone()];

        // The machine's own architecture, and anything that is not an ELF, run as they are.
        assert_eq!(resolve(&x86, Arch::X86_64, &path, &binfmt).expect("native"), Runner::Native);
        assert_eq!(resolve(&script, Arch::X86_64, &path, &binfmt).expect("script"), Runner::Native);
        assert_eq!(
            resolve(&x86, Arch::Arm64, &[], &binfmt).map_err(|e| e.to_string()).unwrap_err(),
            "the function is x86_64 and this machine is arm64: stream local runs it under user-mode emulation, and no qemu-x86_64 is installed"
        );

        // No emulator: refused, with what to install.
        let err = resolve(&arm, Arch::X86_64, &path, &binfmt).expect_err("no qemu");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("no qemu-aarch64 is installed"), "{err}");
        assert!(err.hint().contains("apt install qemu-user"), "{}", err.hint());

        // binfmt_misc registered and enabled: the kernel starts qemu itself.
        std::fs::write(binfmt.join("qemu-aarch64"), "disabled\ninterpreter /usr/bin/qemu-aarch64\n").expect("write");
        assert!(resolve(&arm, Arch::X86_64, &path, &binfmt).is_err(), "a disabled entry does not count");
        std::fs::write(binfmt.join("qemu-aarch64"), "enabled\ninterpreter /usr/bin/qemu-aarch64\n").expect("write");
        let runner = resolve(&arm, Arch::X86_64, &path, &binfmt).expect("binfmt");
        assert_eq!(runner, Runner::Binfmt { arch: Arch::Arm64, entry: binfmt.join("qemu-aarch64") });

        // qemu-user on PATH (the -static build too) is used explicitly, before binfmt_misc.
        let qemu = bin.join("qemu-aarch64-static");
        std::fs::write(&qemu, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let runner = resolve(&arm, Arch::X86_64, &path, &binfmt).expect("qemu");
        assert_eq!(runner, Runner::Qemu { arch: Arch::Arm64, program: qemu.clone() });
        let described = runner.describe().expect("emulated");
        assert!(described.starts_with("the arm64 function ran emulated on this"), "{described}");
        assert!(described.ends_with("its CPU and duration figures are the emulator's, not Lambda's"), "{described}");
        let command = runner.command(&arm);
        let std = command.as_std();
        assert_eq!(std.get_program(), qemu.as_os_str());
        assert_eq!(std.get_args().collect::<Vec<_>>(), [arm.as_os_str()]);
    }
}
