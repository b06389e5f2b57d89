//! What an executable needs from the machine it runs on, read from its ELF headers: the
//! architecture (Lambda runs x86_64 and arm64), and for a dynamically linked one the shared
//! libraries and glibc versions it asks for — provided.al2023 ships glibc 2.34, so a binary linked
//! on a newer laptop can fail at start in Lambda while it runs fine here.

/// The newest glibc symbol version provided.al2023 has.
pub const AL2023_GLIBC: (u32, u32) = (2, 34);

/// Shared libraries every provided.al2023 environment has: glibc's own and libgcc's.
const AL2023_LIBRARIES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libresolv.so.2",
    "libutil.so.1",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];

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
            NotBootstrap::NotExecutable(t) => write!(f, "an ELF file of type {t}, not an executable"),
            NotBootstrap::UnsupportedMachine(m) => {
                write!(f, "an executable for ELF machine {m}; Lambda runs x86_64 (62) and arm64 (183)")
            }
        }
    }
}

/// Reads the ELF header: Lambda runs 64-bit little-endian Linux executables for x86_64 or arm64.
pub fn lambda_arch(bytes: &[u8]) -> Result<Arch, NotBootstrap> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(NotBootstrap::NotElf);
    }
    // e_ident[EI_CLASS] = 2 (64-bit), e_ident[EI_DATA] = 1 (little-endian).
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(NotBootstrap::Not64BitLittleEndian);
    }
    // ET_EXEC = 2; ET_DYN = 3 covers position-independent executables (static-pie included).
    match u16_at(bytes, 16) {
        Some(2 | 3) => {}
        t => return Err(NotBootstrap::NotExecutable(t.unwrap_or(0))),
    }
    match u16_at(bytes, 18) {
        Some(62) => Ok(Arch::X86_64),
        Some(183) => Ok(Arch::Arm64),
        m => Err(NotBootstrap::UnsupportedMachine(m.unwrap_or(0))),
    }
}

/// What a (64-bit little-endian) executable asks of the dynamic linker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Linkage {
    /// Shared libraries it needs (DT_NEEDED), in order.
    pub needed: Vec<String>,
    /// Symbol versions it requires (`GLIBC_2.34`, …).
    pub versions: Vec<String>,
}

impl Linkage {
    /// Reads the dynamic section and the version requirements; a static executable needs nothing.
    pub fn read(bytes: &[u8]) -> Linkage {
        let mut out = Linkage::default();
        for sh in sections(bytes) {
            let strings = sections(bytes).nth(sh.link as usize);
            let name = |offset: u64| strings.as_ref().and_then(|s| c_string(bytes, s.offset.checked_add(offset)?));
            match sh.kind {
                SHT_DYNAMIC => {
                    for entry in sh.data(bytes).chunks_exact(16) {
                        let (tag, value) = (u64_at(entry, 0).unwrap_or(0), u64_at(entry, 8).unwrap_or(0));
                        if tag == DT_NEEDED {
                            out.needed.extend(name(value));
                        }
                    }
                }
                SHT_GNU_VERNEED => out.versions.extend(verneed_names(sh.data(bytes), sh.info).filter_map(name)),
                _ => {}
            }
        }
        out.versions.sort();
        out.versions.dedup();
        out
    }

    /// What provided.al2023 lacks for this executable, one line each (empty: it runs there).
    pub fn missing_on_al2023(&self) -> Vec<String> {
        let mut missing: Vec<String> = self
            .needed
            .iter()
            .filter(|lib| !AL2023_LIBRARIES.contains(&lib.as_str()))
            .map(|lib| format!("the shared library {lib}"))
            .collect();
        let newest = self.versions.iter().filter_map(|v| Some((glibc_version(v)?, v))).max();
        if let Some((version, name)) = newest.filter(|(v, _)| *v > AL2023_GLIBC) {
            let _ = version;
            missing.push(format!("{name} (provided.al2023 has glibc {}.{})", AL2023_GLIBC.0, AL2023_GLIBC.1));
        }
        missing
    }
}

/// `GLIBC_2.36` as (2, 36).
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let (major, minor) = name.strip_prefix("GLIBC_")?.split_once('.')?;
    let minor = minor.split('.').next()?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

const SHT_DYNAMIC: u32 = 6;
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
const DT_NEEDED: u64 = 1;

/// One section header.
struct Section {
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
}

impl Section {
    fn data<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        let start = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(self.size).unwrap_or(0));
        bytes.get(start..end).unwrap_or_default()
    }
}

/// The section headers of a 64-bit little-endian ELF file (none when they cannot be read).
fn sections(bytes: &[u8]) -> impl Iterator<Item = Section> + '_ {
    let (offset, size, count) = (u64_at(bytes, 0x28), u16_at(bytes, 0x3A), u16_at(bytes, 0x3C));
    let (offset, size, count) = match (offset, size, count) {
        (Some(o), Some(s), Some(n)) if s >= 64 => (o as usize, s as usize, n as usize),
        _ => (0, 64, 0),
    };
    (0..count).filter_map(move |i| {
        let h = bytes.get(offset.checked_add(i * size)?..)?.get(..64)?;
        Some(Section {
            kind: u32_at(h, 4)?,
            offset: u64_at(h, 24)?,
            size: u64_at(h, 32)?,
            link: u32_at(h, 40)?,
            info: u32_at(h, 44)?,
        })
    })
}

/// The name offsets of every Vernaux entry of a version-needed section of `count` Verneed entries.
fn verneed_names(data: &[u8], count: u32) -> impl Iterator<Item = u64> + '_ {
    let mut names = Vec::new();
    let mut need = 0usize;
    for _ in 0..count.min(1024) {
        let (Some(cnt), Some(aux), Some(next)) =
            (u16_at(data, need + 2), u32_at(data, need + 8), u32_at(data, need + 12))
        else {
            break;
        };
        let mut a = need + aux as usize;
        for _ in 0..cnt.min(1024) {
            let (Some(name), Some(next_aux)) = (u32_at(data, a + 8), u32_at(data, a + 12)) else { break };
            names.push(u64::from(name));
            if next_aux == 0 {
                break;
            }
            a += next_aux as usize;
        }
        if next == 0 {
            break;
        }
        need += next as usize;
    }
    names.into_iter()
}

fn c_string(bytes: &[u8], offset: u64) -> Option<String> {
    let rest = bytes.get(usize::try_from(offset).ok()?..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok().map(str::to_string)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
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
    fn glibc_versions_are_compared_as_numbers() {
        let needs = |versions: &[&str], needed: &[&str]| Linkage {
            needed: needed.iter().map(|s| s.to_string()).collect(),
            versions: versions.iter().map(|s| s.to_string()).collect(),
        };
        assert!(
            needs(&["GLIBC_2.2.5", "GLIBC_2.34", "GCC_3.0"], &["libc.so.6", "libgcc_s.so.1"])
                .missing_on_al2023()
                .is_empty()
        );
        let newer = needs(&["GLIBC_2.9", "GLIBC_2.36"], &["libc.so.6"]).missing_on_al2023();
        assert_eq!(newer, ["GLIBC_2.36 (provided.al2023 has glibc 2.34)"]);
        let lib = needs(&[], &["libssl.so.3"]).missing_on_al2023();
        assert_eq!(lib, ["the shared library libssl.so.3"]);
    }

    /// The machine's own programs are dynamically linked against its glibc: read one for real.
    #[test]
    fn the_linkage_of_a_real_executable_is_read() {
        let bytes = std::fs::read("/bin/sh").expect("/bin/sh");
        let linkage = Linkage::read(&bytes);
        assert!(linkage.needed.iter().any(|l| l == "libc.so.6"), "{linkage:?}");
        assert!(linkage.versions.iter().any(|v| v.starts_with("GLIBC_2.")), "{linkage:?}");
        assert_eq!(Linkage::read(&elf(2, 1, 3, 62)), Linkage::default(), "no sections, nothing needed");
    }
}
