//! `stream-json`: the JSON that every record goes through, compiled at opt-level 3 (see its
//! Cargo.toml for why it is a package of its own). `stream`'s `schema` module re-exports both
//! modules and is their only user: a `Plan` holds the JSON Pointers a schema names, `decode::walk`
//! reads one event with it in one pass. `event` is the Kinesis event as the function reads it
//! (`stream`'s `process::event` re-exports it).

#![forbid(unsafe_code)]

pub mod decode;
pub mod event;
pub mod pointer;
pub mod scan;
