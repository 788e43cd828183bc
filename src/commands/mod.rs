//! One file per subcommand: the glue between the CLI and the library.

pub mod api;
pub mod check;
pub mod doc;
pub mod exec;
pub mod list;
pub mod new;
pub mod sandbox;
pub mod show;
