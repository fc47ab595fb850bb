//! `clinic-server`: the `clinic` binary — configuration, logging, the command line and
//! startup. `clinic serve` runs migrations, makes the first admin token on an empty
//! database and serves the API; the other commands are for operators and scripts.

pub mod backup;
pub mod cli;
pub mod healthcheck;
pub mod serve;
pub mod settings;
pub mod telemetry;
