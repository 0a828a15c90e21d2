//! Logs on stderr through `tracing`: human lines by default, one JSON object per line with
//! `murmur serve --log-format json` (or `MURMUR_LOG_FORMAT=json`). The level comes from
//! `MURMUR_LOG`, else `RUST_LOG`, else `info` for the server and `warn` for every other command,
//! whose own output (the live view, tables) shares stderr and must not drown in log lines.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// `TIME LEVEL target: message key=value`, for people.
    #[default]
    Human,
    /// One JSON object per line (`timestamp`, `level`, `target`, `message` and the fields), for
    /// log collectors.
    Json,
}

/// Installs the subscriber for this process's command.
pub fn init(cli: &Cli) {
    let (format, level) = match &cli.command {
        Command::Serve(args) => (args.log_format, "info"),
        // A worker's registrations, attempts and reconnects are what its log is for.
        Command::Worker(_) => (format_from_env(), "info"),
        _ => (format_from_env(), "warn"),
    };
    let filter = filter(level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second subscriber (tests that call this twice) is refused; the first one stays.
    let _ = match format {
        LogFormat::Human => builder.with_ansi(colour()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init(),
    };
}

fn format_from_env() -> LogFormat {
    std::env::var("MURMUR_LOG_FORMAT")
        .ok()
        .and_then(|text| LogFormat::from_str(&text, true).ok())
        .unwrap_or_default()
}

/// `MURMUR_LOG`, else `RUST_LOG`, else `level`. A directive that does not parse is reported
/// and replaced by `level`, so a typo never silences the logs.
fn filter(level: &str) -> EnvFilter {
    let given = std::env::var("MURMUR_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .filter(|text| !text.trim().is_empty());
    let Some(given) = given else {
        return EnvFilter::new(level);
    };
    EnvFilter::try_new(&given).unwrap_or_else(|error| {
        eprintln!("murmur: ignoring the log filter `{given}` ({error}); logging at {level}");
        EnvFilter::new(level)
    })
}

fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
