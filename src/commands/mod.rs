//! One file per subcommand: the glue between the CLI and the library.

pub mod check;
pub mod exec;
pub mod list;
pub mod sandbox;
pub mod show;
