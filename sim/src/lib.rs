//! `snoopsim`: the engine, system assembly, scenarios and the CLI's library half.
//!
//! * [`engine`]: the event queue (ordered by tick, then sequence) and the run loop with its
//!   limits. The only code that advances time.
//! * [`system`]: builds the models a scenario describes and routes each event between them.
//! * [`scenario`]: the scenario file format, its checks and error messages, sweeps.
//! * [`workload`]: per-device descriptor feeds.
//! * [`check`]: the coherent reference memory and corruption classification.
//! * [`run`]: runs variants (in parallel) and builds the report.
//! * [`bench`]: the engine micro-benchmark behind `snoopsim bench engine`.
#![forbid(unsafe_code)]

pub mod bench;
pub mod check;
pub mod engine;
pub mod run;
pub mod scenario;
pub mod slab;
pub mod system;
pub mod tlp_cli;
pub mod workload;
