//! sha1 0.10's names over sha1 0.11: `Sha1` and the `Digest` trait, which is all its users in this
//! binary call (`Sha1::digest`, `default`, `update`, `finalize`). The output is digest 0.11's
//! array, which derefs to `[u8]` as 0.10's `GenericArray` did.
#![forbid(unsafe_code)]

pub use sha1_011::{Digest, Sha1, digest};
