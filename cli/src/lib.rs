//! The `unyo` command line as a library: manifest checks, calendar queries and agent
//! bootstrap, so that tests of other crates can use the same code the binary runs.

pub mod backup;
pub mod bootstrap;
pub mod calendar;
pub mod check;
pub mod patch;
pub mod report;
