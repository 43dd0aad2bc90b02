//! Integration tests: the real service on a random port, driven over HTTP.

#[path = "../common/mod.rs"]
mod common;

mod accounts;
mod billing;
mod charging;
mod first_run;
mod fmus;
mod keys;
mod openapi;
mod results;
mod runs;
mod security;
mod usage;
