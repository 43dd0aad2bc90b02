//! `/api/v1`: the versioned, described API. One module per resource; each handler takes the
//! caller and the parsed request, calls one domain function and shapes the answer.

pub mod account;
pub mod billing;
pub mod fmus;
pub mod keys;
pub mod runs;
pub mod usage;
