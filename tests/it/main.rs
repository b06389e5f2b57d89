//! The integration tests, one test binary (as ripgrep's `tests/`): every module below links the
//! SDK once. Tests that need the emulator are `#[ignore = "needs moto: scripts/test"]`; plain
//! `cargo test` runs the rest offline. `scripts/test` starts a fresh moto server and runs them all.
//! Shared helpers are modules: `common` (run the real binary, read what landed), `fault_proxy`
//! (faults moto cannot produce) and `split_stream` (a stream split as Kinesis splits it, which the
//! fault proxy serves in moto's place).

mod common;
mod fault_proxy;
mod split_stream;

mod arm64;
mod build_script;
mod cli;
mod conventions;
mod deploy;
mod deploy_flags;
mod e2e;
mod endpoints;
mod faults;
mod fuzz_decode;
mod identity;
mod kpl_interop;
mod lambda_mode;
mod live_sources;
mod local;
mod logs;
mod mapping;
mod output;
mod plan;
mod poison;
mod produce;
mod redrive;
mod schema_model;
mod schemas;
mod shell;
mod soak;
mod static_binary;
mod tail;
mod template_lint;
mod terminal;
mod tidy;
mod trust;
