//! The domain: what the service does, with no HTTP and no SQL in it. Both faces (`api`,
//! `web`) and the CLI call these modules; they reach the database only through `store`.

pub mod account_settings;
pub mod accounts;
pub mod billing;
pub mod error;
pub mod fmus;
pub mod ids;
pub mod keys;
pub mod password_reset;
pub mod runs;
pub mod showcase;
pub mod signup;
pub mod states;
pub mod sweeps;
pub mod usage;
pub mod values;
pub mod webhooks;

pub use values::*;
