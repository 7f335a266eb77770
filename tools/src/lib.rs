//! Library side of the `metis` command: pieces shared by its subcommands
//! and usable from tests.

pub mod progress;
