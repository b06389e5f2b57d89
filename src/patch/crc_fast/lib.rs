//! The part of crc-fast's API the AWS SDK's flexible checksums call (`aws-smithy-checksums`):
//! CRC-32 (ISO-HDLC, as zlib), CRC-32C (iSCSI) and CRC-64/NVME, one-shot and streaming.
//! CRC-32 uses crc32fast (SIMD where the CPU has it); the other two use the `crc` crate's 16-lane
//! tables, built at compile time for these two algorithms only.
#![forbid(unsafe_code)]

use crc::{CRC_32_ISCSI, CRC_64_NVME, Crc, Table};

static CRC32C: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);
static CRC64NVME: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_NVME);

/// The algorithms the SDK asks for, named as crc-fast names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrcAlgorithm {
    Crc32IsoHdlc,
    Crc32Iscsi,
    Crc64Nvme,
}

#[derive(Clone)]
enum State {
    Crc32(crc32fast::Hasher),
    Crc32c(crc::Digest<'static, u32, Table<16>>),
    Crc64Nvme(crc::Digest<'static, u64, Table<16>>),
}

/// A running checksum; `finalize` leaves it usable, as crc-fast's does.
#[derive(Clone)]
pub struct Digest {
    algorithm: CrcAlgorithm,
    state: State,
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl Digest {
    pub fn new(algorithm: CrcAlgorithm) -> Self {
        let state = match algorithm {
            CrcAlgorithm::Crc32IsoHdlc => State::Crc32(crc32fast::Hasher::new()),
            CrcAlgorithm::Crc32Iscsi => State::Crc32c(CRC32C.digest()),
            CrcAlgorithm::Crc64Nvme => State::Crc64Nvme(CRC64NVME.digest()),
        };
        Digest { algorithm, state }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc32(h) => h.update(data),
            State::Crc32c(d) => d.update(data),
            State::Crc64Nvme(d) => d.update(data),
        }
    }

    pub fn finalize(&self) -> u64 {
        match &self.state {
            State::Crc32(h) => u64::from(h.clone().finalize()),
            State::Crc32c(d) => u64::from(d.clone().finalize()),
            State::Crc64Nvme(d) => d.clone().finalize(),
        }
    }
}

/// The checksum of `buf` in one call.
pub fn checksum(algorithm: CrcAlgorithm, buf: &[u8]) -> u64 {
    let mut digest = Digest::new(algorithm);
    digest.update(buf);
    digest.finalize()
}
