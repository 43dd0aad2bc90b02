//! Integration tests: the real service on a random port, driven over HTTP.

#[path = "../common/mod.rs"]
mod common;

mod access_log;
mod account;
mod accounts;
mod aliases;
mod billing;
mod call_log;
mod charging;
mod contract;
mod dashboard;
mod database;
mod deploy;
mod disk;
mod first_run;
mod fmus;
mod formats;
mod hostile;
mod hostile_requests;
mod inputs;
mod keys;
mod metrics;
mod non_finite;
mod object_store;
mod openapi;
mod plots;
mod reference;
mod results;
mod run_types;
mod runs;
mod scale;
mod security;
mod states;
mod stiff;
mod sweep_pages;
mod sweeps;
mod sweeps_many_servers;
mod types;
mod usage;
mod validation;
mod webhooks;
mod wire;
mod workspace;
