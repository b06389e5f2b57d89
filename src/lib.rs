//! `stream`: real-time stream processing on AWS in one static binary. A producer puts events —
//! tweets by default, or any JSON an event schema describes — into a Kinesis stream; a Lambda
//! function (this same binary, run as `bootstrap`) writes each one into the DynamoDB table
//! `<stack>-EventData`; one CloudFormation stack holds it all.
//!
//! # Layers
//! Top to bottom. A module imports only from layers below its own — never from a layer above, never
//! from another module of its own layer — so there is no import cycle. `tests/it/tidy.rs` reads this
//! list and fails when the code disagrees with it, or when a module is missing from it.
//! 1. `main`: detects the mode, parses, runs one command, prints, exits.
//! 2. `cli`: the command line: global flags, the subcommand enum, clap's refusals as our two lines.
//! 3. Commands, each with its own clap arguments and a `run`: `deploy` (deploy and destroy: flow,
//!    params, artifact, events, plan, producer_key, destroy), `produce` (source, live,
//!    delivery, deadletter), `local` (mapping, reader, checkpoint, stats), `capacity` (stream plan:
//!    model and how it reads, prices), `tail` (the stream's records), `logs` (the
//!    function's log: cloud, file, pattern, render), `scan`, `status`, `replay`, `redrive`
//!    (failed batches through the function again), `schemas` (stream schema check and show).
//! 4. Domain: `process` (the Lambda handler: event, store, lambda, metrics), `stack` (a deployed
//!    stack: finding it, whether it is ours, what its status allows, its outputs, function, mapping)
//!    and `sandbox` (Lambda's execution environment on this machine: function, limits, the Runtime
//!    API), which the local and redrive commands run the function in.
//! 5. AWS helpers by service, shared by every command that needs them: `kinesis` (limits, entries,
//!    the batcher, ListShards, PutRecords with partial resend; shards: the shard map and the order
//!    of shards across a reshard; reader: GetRecords, paced) and `dynamo`
//!    (BatchWriteItem with its unprocessed items, table existence).
//! 6. `retry`: the backoff and the one loop that resends only what failed.
//! 7. `aws`: one SdkConfig and the service clients.
//! 8. `synthetic`: seeded events of each kind (tweets, clickstream, IoT telemetry, orders) for
//!    stream produce, stream plan and the tests.
//! 9. `tweet`: the v1.1 tweet every tweet source maps to, and its item in tweet terms.
//! 10. `schema`: event schemas — the one place that knows what a record is: the file (checked,
//!     every problem named: `spec`, its `read`er and `sections`), compiling it (`compile`), loading
//!     it (`load`), the key of an event, the item of an event, why one is refused; the
//!     built-in `tweets` schema is one more value of that data. Its one-pass walk and JSON Pointers
//!     are the package `stream-json` (src/json), below every layer, compiled at opt-level 3.
//! 11. Leaves, with no AWS calls: `time` (event times and their formats; the package
//!     `stream-time`, src/time, compiled at opt-level 3), `elf` (what an executable
//!     needs: its architecture, glibc versions and libraries), `kpl` (the KPL aggregate
//!     format), `template` (the embedded template and schemas, as YAML and as data), `filter`
//!     (Lambda's event filter patterns: checked, and matched against a record), `credentials` (the
//!     producer's profile), `net` (TCP/TLS for the live sources), `progress` (what people see on
//!     stderr), `output` (stdout), `args` (flag value parsers), `mode`, `shutdown`.
//! 12. `error`: the one error type, and the one reading of a failed call (`Disposition`).
//!
//! # Architecture invariants
//! - The code that runs in Lambda (`process`) is the code `stream local` runs: `local` starts the
//!   uploaded bootstrap and serves it the Runtime API, never calls the handler directly.
//! - Resource names come from the stack's outputs (`stack`), or from the template before the stack
//!   exists (`template::physical_name`); they are never formatted by hand.
//! - Whether a failed AWS call is worth repeating is decided once, by `Error::disposition`.

#![forbid(unsafe_code)]

pub mod args;
pub mod aws;
pub mod capacity;
pub mod cli;
pub mod credentials;
pub mod deploy;
pub mod dynamo;
pub mod elf;
pub mod error;
pub mod filter;
pub mod kinesis;
pub mod kpl;
pub mod local;
pub mod logs;
pub mod mode;
pub mod net;
pub mod output;
pub mod process;
pub mod produce;
pub mod progress;
pub mod redrive;
pub mod replay;
pub mod retry;
pub mod sandbox;
pub mod scan;
pub mod schema;
pub mod schemas;
pub mod shutdown;
pub mod stack;
pub mod status;
pub mod synthetic;
pub mod tail;
pub mod template;
pub mod time;
pub mod tweet;
