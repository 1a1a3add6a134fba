//! The `amico` application: configuration, the server (SIP, media, the ACD core, HTTP API,
//! metrics, storage), reports, the simulator and the staffing calculator, behind the
//! command line of the `amico` binary ([`main`]).
//!
//! Everything here is the binary's; the library target exists so that tools outside the
//! package (the fuzz targets in `fuzz/`) can reach the few entry points made public:
//! [`main`] and [`check_config`].

mod call;
mod cli;
mod config;
mod ops;
mod records;
mod runner;
mod server;

pub use cli::main;

/// Parses and validates a configuration file's text, as `amico check-config` and the server
/// do before binding any port; the error names the field and the reason.
pub fn check_config(text: &str) -> Result<(), String> {
    config::Config::parse(text)
        .map(|_| ())
        .map_err(|error| error.to_string())
}
