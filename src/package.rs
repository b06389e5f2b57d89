//! The function's artifact: a Linux executable zipped as `bootstrap` (mode 0755), the zip's
//! SHA-256 and the Lambda architecture read from the ELF header. No AWS calls: `deploy` uploads.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::error::Error;

/// The instruction sets Lambda runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86_64 (ELF machine 62).
    X86_64,
    /// arm64 / aarch64 (ELF machine 183).
    Arm64,
}

impl Arch {
    /// The name CloudFormation's `Architectures` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// Why a file cannot be a Lambda `bootstrap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotBootstrap {
    /// No ELF magic.
    NotElf,
    /// Not a 64-bit little-endian ELF file.
    Not64BitLittleEndian,
    /// ELF, but an object file or core dump rather than an executable.
    NotExecutable(u16),
    /// An executable for a machine Lambda does not run.
    UnsupportedMachine(u16),
}

impl std::fmt::Display for NotBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotBootstrap::NotElf => f.write_str("not a Linux ELF executable"),
            NotBootstrap::Not64BitLittleEndian => f.write_str("not a 64-bit little-endian ELF file"),
            NotBootstrap::NotExecutable(t) => {
                write!(f, "an ELF file of type {t}, not an executable")
            }
            NotBootstrap::UnsupportedMachine(m) => {
                write!(f, "an executable for ELF machine {m}; Lambda runs x86_64 (62) and arm64 (183)")
            }
        }
    }
}

/// Reads the ELF header: Lambda runs 64-bit little-endian Linux executables for x86_64 or arm64.
pub fn lambda_arch(bytes: &[u8]) -> Result<Arch, NotBootstrap> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return Err(NotBootstrap::NotElf);
    }
    // e_ident[EI_CLASS] = 2 (64-bit), e_ident[EI_DATA] = 1 (little-endian).
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(NotBootstrap::Not64BitLittleEndian);
    }
    let e_type = u16::from_le_bytes([bytes[16], bytes[17]]);
    // ET_EXEC = 2; ET_DYN = 3 covers position-independent executables (static-pie included).
    if e_type != 2 && e_type != 3 {
        return Err(NotBootstrap::NotExecutable(e_type));
    }
    match u16::from_le_bytes([bytes[18], bytes[19]]) {
        62 => Ok(Arch::X86_64),
        183 => Ok(Arch::Arm64),
        m => Err(NotBootstrap::UnsupportedMachine(m)),
    }
}

/// A zipped function ready to upload.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The zip: one entry, `bootstrap`, mode 0755.
    pub zip: Vec<u8>,
    /// Hex SHA-256 of `zip`.
    pub sha256: String,
    /// Architecture of the executable.
    pub arch: Arch,
    /// Size of the executable before zipping.
    pub binary_len: usize,
    /// Where the executable came from.
    pub source: PathBuf,
}

/// Zips the executable at `path` (this process's own file when `None`).
pub fn package(path: Option<&Path>) -> Result<Artifact, Error> {
    let source = match path {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe().map_err(|e| Error::io("this executable's path", e))?,
    };
    let bytes = std::fs::read(&source).map_err(|e| Error::io(source.display().to_string(), e))?;
    let arch = lambda_arch(&bytes).map_err(|why| {
        Error::usage(
            format!("{} is {why}", source.display()),
            "pass --bootstrap a Linux executable built for x86_64 or arm64 (e.g. scripts/build's output)",
        )
    })?;
    let zip = zip_bootstrap(&bytes).map_err(|e| Error::io("zipping bootstrap", e))?;
    let sha256 = hex::encode(Sha256::digest(&zip));
    Ok(Artifact { zip, sha256, arch, binary_len: bytes.len(), source })
}

/// One-entry zip holding `bootstrap` (0755). The fixed timestamp makes the zip, and so its hash,
/// depend only on the executable: the same binary is never uploaded twice.
pub fn zip_bootstrap(executable: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::with_capacity(executable.len() / 2)));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::DEFAULT);
    zip.start_file("bootstrap", options).map_err(std::io::Error::other)?;
    zip.write_all(executable)?;
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(class: u8, data: u8, e_type: u16, machine: u16) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = class;
        b[5] = data;
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b
    }

    #[test]
    fn lambda_architectures_are_recognised() {
        assert_eq!(lambda_arch(&elf(2, 1, 3, 62)), Ok(Arch::X86_64));
        assert_eq!(lambda_arch(&elf(2, 1, 2, 183)), Ok(Arch::Arm64));
    }

    #[test]
    fn non_lambda_files_are_refused() {
        assert_eq!(lambda_arch(b"#!/bin/sh\necho hi\n"), Err(NotBootstrap::NotElf));
        assert_eq!(lambda_arch(&elf(1, 1, 2, 3)), Err(NotBootstrap::Not64BitLittleEndian));
        assert_eq!(lambda_arch(&elf(2, 1, 1, 62)), Err(NotBootstrap::NotExecutable(1)));
        assert_eq!(lambda_arch(&elf(2, 1, 2, 40)), Err(NotBootstrap::UnsupportedMachine(40)));
    }

    #[test]
    fn zip_holds_an_executable_bootstrap_and_is_reproducible() {
        let exe = elf(2, 1, 3, 62);
        let a = zip_bootstrap(&exe).expect("zip");
        let b = zip_bootstrap(&exe).expect("zip");
        assert_eq!(a, b, "same input, same bytes");
        let mut archive = zip::ZipArchive::new(Cursor::new(a)).expect("readable zip");
        assert_eq!(archive.len(), 1);
        let entry = archive.by_name("bootstrap").expect("bootstrap entry");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
    }

    #[test]
    fn this_test_binary_packages_as_x86_64() {
        let artifact = package(None).expect("package self");
        assert_eq!(artifact.arch, Arch::X86_64);
        assert_eq!(artifact.sha256.len(), 64);
    }
}
