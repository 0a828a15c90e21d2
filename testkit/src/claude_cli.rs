//! Finding and isolating the real Claude Code CLI for tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment that keeps the CLI off every host but the scripted server.
///
/// `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC` is the one that matters: without it the CLI
/// probes `HEAD /api/hello` and resolves `api.anthropic.com` (MCP registry, event logging);
/// with it the only connection is the model call. The others are belt and braces for
/// settings the CLI may grow.
pub const QUIET_ENV: &[(&str, &str)] = &[
    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ("DISABLE_TELEMETRY", "1"),
    ("DISABLE_ERROR_REPORTING", "1"),
    ("DISABLE_AUTOUPDATER", "1"),
];

/// Path of `node_modules/.bin/claude` in the repository root.
///
/// # Panics
/// When the CLI is not installed: tests that need it must fail, not skip, so a missing
/// `npm install` never passes as green.
pub fn claude_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node_modules/.bin/claude");
    assert!(
        bin.exists(),
        "Claude Code CLI not found at {}: run npm install in the repository root",
        bin.display()
    );
    bin
}

/// A `claude` command talking only to `base_url`, with its config and session files under
/// `home` (also its `TMPDIR`), and no environment inherited except `PATH` (the CLI's Bash tool
/// needs it).
///
/// The inherited environment is cleared because a developer's own `ANTHROPIC_*` or
/// `CLAUDE_CODE_*` variables would otherwise change what the CLI does.
pub fn claude_command(base_url: &str, home: &Path) -> Command {
    let mut cmd = Command::new(claude_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        // The CLI keeps a messaging socket under $TMPDIR/cc-socks; a killed CLI cannot remove
        // it, so it goes under `home` to be deleted with the test's temp dir.
        .env("TMPDIR", home)
        .env("ANTHROPIC_BASE_URL", base_url)
        .env("ANTHROPIC_API_KEY", "test-key")
        .envs(QUIET_ENV.iter().copied());
    cmd
}
