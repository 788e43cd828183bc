//! One file per subcommand: the glue between the CLI and the library.

pub mod api;
pub mod audit;
pub mod check;
pub mod completions;
pub mod consumers;
pub mod doc;
pub mod due;
pub mod exec;
pub mod list;
pub mod new;
pub mod runs;
pub mod sandbox;
pub mod show;
