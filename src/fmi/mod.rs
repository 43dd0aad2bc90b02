//! FMUs: opening uploaded archives safely, reading their model descriptions, and the
//! built-in library of demo models this project builds from its own C sources (`fmus/`).

pub mod archive;
pub mod describe;
pub mod library;
pub mod ls_ref;
pub mod validation;
