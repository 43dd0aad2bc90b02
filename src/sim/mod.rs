//! Simulation: the worker protocol, the sandboxed worker process, the pool that runs workers
//! for the server, the engine the worker drives (fmi-rs), and our Model Exchange solver.

pub mod batch;
mod bdf;
pub mod call_log;
mod cs_loop;
pub mod downsample;
pub mod engine;
mod fmi_version;
pub mod fmu_state;
pub mod input_csv;
pub mod kpi;
pub mod literals;
pub mod mat;
pub mod parquet;
pub mod plan;
pub mod progress;
pub mod protocol;
pub mod recorded;
pub mod reference;
pub mod result_file;
pub mod runner;
pub mod sandbox;
pub mod smoke;
pub mod solver;
pub mod worker;
