//! The function's artifact: a Linux executable zipped as `bootstrap` (mode 0755) beside its event
//! schema (`schema.json`, read once at init), the zip's SHA-256 and the Lambda architecture read
//! from the ELF header. Where it is uploaded: [`super::bucket`].

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::elf::{Arch, Linkage, lambda_arch};
use crate::error::Error;
use crate::progress;
use crate::schema::Schema;
use crate::template::SCHEMA_IN_CODE;

/// A zipped function ready to upload.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The zip: `bootstrap` (mode 0755) and `schema.json`.
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

/// A Linux executable read and checked, ready to be zipped with a schema.
#[derive(Debug, Clone)]
pub struct Executable {
    bytes: Vec<u8>,
    arch: Arch,
    source: PathBuf,
}

impl Executable {
    /// Its architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Zips it with `schema`.
    pub fn package(self, schema: &Schema) -> Result<Artifact, Error> {
        let zip = zip_code(&self.bytes, &schema.spec().canonical()).map_err(|e| Error::io("zipping bootstrap", e))?;
        let sha256 = hex::encode(Sha256::digest(&zip));
        Ok(Artifact { zip, sha256, arch: self.arch, binary_len: self.bytes.len(), source: self.source })
    }
}

/// Reads the executable at `path` — or, when `None`, the one for `arch` (`locate`) — and checks
/// that Lambda can run it: an ELF for x86_64 or arm64 (for `arch`, when given) that needs nothing
/// provided.al2023 lacks.
pub fn read_executable(path: Option<&Path>, arch: Option<Arch>) -> Result<Executable, Error> {
    let source = match path {
        Some(p) => p.to_path_buf(),
        None => locate(arch)?,
    };
    let bytes = std::fs::read(&source).map_err(|e| Error::io(source.display().to_string(), e))?;
    let found = lambda_arch(&bytes).map_err(|why| {
        Error::usage(
            format!("{} is {why}", source.display()),
            "pass --bootstrap a Linux executable built for x86_64 or arm64 (e.g. scripts/build's output)",
        )
    })?;
    let arch = match arch {
        Some(want) if want != found => {
            return Err(Error::usage(
                format!("{} is built for {}, not {}", source.display(), found.as_str(), want.as_str()),
                format!(
                    "give --arch {}, or a build for {} (scripts/build --arch {})",
                    found.as_str(),
                    want.as_str(),
                    want.as_str()
                ),
            ));
        }
        _ => found,
    };
    check_runs_on_al2023(&source, &bytes)?;
    Ok(Executable { bytes, arch, source })
}

/// The executable for `arch`: this binary when it is a Linux executable of that architecture (or
/// no architecture is asked for), else the build scripts/build puts beside it, `stream-<arch>`.
/// Read before any call: a missing build is one line and the command that makes it.
fn locate(arch: Option<Arch>) -> Result<PathBuf, Error> {
    let me = std::env::current_exe().map_err(|e| Error::io("this executable's path", e))?;
    let mut header = [0u8; 64];
    let read = std::fs::File::open(&me).and_then(|mut f| std::io::Read::read(&mut f, &mut header));
    // None when this binary is no Linux executable (a CLI built for macOS): its sibling is needed.
    let mine = read.ok().and_then(|n| lambda_arch(&header[..n]).ok());
    let host = if cfg!(target_arch = "aarch64") { Arch::Arm64 } else { Arch::X86_64 };
    let want = arch.or(mine).unwrap_or(host);
    if mine == Some(want) {
        return Ok(me);
    }
    let sibling = me.with_file_name(format!("stream-{}", want.as_str()));
    if sibling.is_file() {
        return Ok(sibling);
    }
    Err(Error::usage(
        format!("no {} build of stream beside {} (looked for {})", want.as_str(), me.display(), sibling.display()),
        format!(
            "build it with `scripts/build --arch {}` and deploy with the stream it prints beside it, or give --bootstrap FILE",
            want.as_str()
        ),
    ))
}

/// Refuses (on a terminal: asks about) an executable that needs what provided.al2023 lacks: a
/// glibc newer than its 2.34, or another shared library. It would run here and fail at start there.
fn check_runs_on_al2023(source: &Path, bytes: &[u8]) -> Result<(), Error> {
    let missing = Linkage::read(bytes).missing_on_al2023();
    if missing.is_empty() {
        return Ok(());
    }
    let what = format!("{} needs {}, which provided.al2023 lacks", source.display(), missing.join(" and "));
    if progress::stdin_is_tty() {
        progress::status(format!("warning: {what}"));
        if progress::confirm("Upload it anyway? It would fail at start in Lambda") {
            return Ok(());
        }
    }
    Err(Error::usage(
        what,
        "build with scripts/build (a static binary that needs nothing of the machine), or link against glibc 2.34 or older",
    ))
}

/// The function's zip: `bootstrap` (0755) and the event schema as `schema.json` (0644). The fixed
/// timestamps make the zip, and so its hash, depend only on the executable and the schema: the
/// same pair is never uploaded twice, and a new schema is new code.
pub fn zip_code(executable: &[u8], schema_json: &str) -> std::io::Result<Vec<u8>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::with_capacity(executable.len() / 2)));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::DEFAULT);
    zip.start_file("bootstrap", options.unix_permissions(0o755)).map_err(std::io::Error::other)?;
    zip.write_all(executable)?;
    zip.start_file(SCHEMA_IN_CODE, options.unix_permissions(0o644)).map_err(std::io::Error::other)?;
    zip.write_all(schema_json.as_bytes())?;
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
    fn zip_holds_an_executable_bootstrap_and_its_schema_and_is_reproducible() {
        use std::io::Read;
        let exe = elf(2, 1, 3, 62);
        let a = zip_code(&exe, r#"{"name":"x"}"#).expect("zip");
        let b = zip_code(&exe, r#"{"name":"x"}"#).expect("zip");
        assert_eq!(a, b, "same input, same bytes");
        assert_ne!(a, zip_code(&exe, r#"{"name":"y"}"#).expect("zip"), "another schema is other code");
        let mut archive = zip::ZipArchive::new(Cursor::new(a)).expect("readable zip");
        assert_eq!(archive.len(), 2);
        let entry = archive.by_name("bootstrap").expect("bootstrap entry");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        drop(entry);
        let mut schema = String::new();
        archive.by_name(SCHEMA_IN_CODE).expect("schema entry").read_to_string(&mut schema).expect("text");
        assert_eq!(schema, r#"{"name":"x"}"#);
    }

    /// A reflected CRC computed bit by bit, the definition the tables must agree with.
    fn bitwise_crc(poly: u64, width: u32, data: &[u8]) -> Vec<u8> {
        let (mask, rpoly) = (u64::MAX >> (64 - width), poly.reverse_bits() >> (64 - width));
        let mut crc = mask;
        for byte in data {
            crc ^= u64::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ rpoly } else { crc >> 1 };
            }
        }
        let crc = crc ^ mask;
        crc.to_be_bytes()[(8 - width as usize / 8)..].to_vec()
    }

    /// S3's flexible checksums go through src/patch/crc_fast: the SDK's own checksum objects give the
    /// catalogue's check values, and agree with the bitwise definition on long, split inputs.
    #[test]
    fn the_sdks_checksums_give_the_catalogues_check_values() {
        use aws_smithy_checksums::ChecksumAlgorithm;
        let long: Vec<u8> = (0..10_007u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let cases: [(&str, u64, u32, &[u8]); 3] = [
            ("crc32", 0x04C1_1DB7, 32, &0xCBF4_3926u32.to_be_bytes()),
            ("crc32c", 0x1EDC_6F41, 32, &0xE306_9283u32.to_be_bytes()),
            ("crc64nvme", 0xAD93_D235_94C9_3659, 64, &0xAE8B_1486_0A79_9888u64.to_be_bytes()),
        ];
        for (name, poly, width, check) in cases {
            let algorithm: ChecksumAlgorithm = name.parse().expect("known algorithm");
            let mut one = algorithm.into_impl();
            one.update(b"123456789");
            assert_eq!(one.finalize().as_ref(), check, "{name} check value");
            let mut split = algorithm.into_impl();
            split.update(&long[..4_099]);
            split.update(&long[4_099..]);
            assert_eq!(split.finalize().to_vec(), bitwise_crc(poly, width, &long), "{name} on 10,007 bytes");
        }
    }

    #[test]
    fn this_test_binary_packages_as_x86_64() {
        let artifact = read_executable(None, None).expect("read self").package(Schema::tweets()).expect("package self");
        assert_eq!(artifact.arch, Arch::X86_64);
        assert_eq!(artifact.sha256.len(), 64);
    }
}
