//! `stream`: real-time stream processing on AWS in one static binary. A producer puts tweets into
//! a Kinesis stream; a Lambda function (this same binary, run as `bootstrap`) writes each one into
//! the DynamoDB table `<stack>-EventData`; one CloudFormation stack holds it all.
//!
//! # Layout
//! Top to bottom; arrows only point down.
//! - `cli`: clap types only. `main` detects the mode, parses, and calls one command.
//! - Commands: `deploy` (deploy, destroy; `plan` shows and confirms a change set), `produce`
//!   (PutRecords producer, `produce::source` for tweets), `scan` (scan-table), `local` (the deployed
//!   bootstrap run as Lambda would: `local::runtime` the execution environment and Runtime API,
//!   `local::mapping` the event source mapping, `local::checkpoint` persisted positions),
//!   `replay` (quarantined records back into the stream), `status` (stack, mapping, counts, metrics).
//! - Domain: `process` (the Lambda handler and its runtime loop), `stack` (a deployed stack's
//!   status and outputs).
//! - Infrastructure: `aws` (one SdkConfig, the clients), `package` (zip of the bootstrap),
//!   `credentials` (the producer's profile file), `net` (TCP/TLS for the live sources).
//! - Leaves without AWS: `tweet` (record shape and table item), `kpl` (the KPL aggregate format),
//!   `error`, `progress`, `mode`,
//!   `template` (the embedded stack template), `shutdown`.

#![forbid(unsafe_code)]

pub mod aws;
pub mod cli;
pub mod credentials;
pub mod deploy;
pub mod error;
pub mod kpl;
pub mod local;
pub mod mode;
pub mod net;
pub mod package;
pub mod plan;
pub mod process;
pub mod produce;
pub mod progress;
pub mod replay;
pub mod scan;
pub mod shutdown;
pub mod stack;
pub mod status;
pub mod template;
pub mod tweet;
