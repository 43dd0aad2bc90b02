//! The simulation engine end to end: the real worker process, the real sandbox, the demo
//! FMUs this project builds, and a corpus of hostile FMUs.

#[path = "../common/mod.rs"]
mod common;

mod accuracy;
mod batch;
mod cli;
mod hostile;
mod inputs;
mod progress;
mod reference;
mod stiff;
mod support;
