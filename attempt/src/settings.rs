//! How a machine reaches the agent runtimes and GitHub.

use std::path::PathBuf;

/// Everything an attempt's runtimes need from the machine they run on.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub claude: ClaudeSettings,
    pub codex: CodexSettings,
    pub github: GitHubSettings,
}

/// Where pull requests for GitHub remotes are opened.
#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// `https://api.github.com`, or a GitHub Enterprise API root.
    pub api_url: String,
    /// A token that may open pull requests; `out: pr` on a GitHub remote needs one.
    pub token: Option<String>,
}

impl Default for GitHubSettings {
    fn default() -> Self {
        Self {
            api_url: "https://api.github.com".to_owned(),
            token: None,
        }
    }
}

/// How `codex` agents run on this machine.
#[derive(Debug, Clone)]
pub struct CodexSettings {
    /// The Codex CLI (`codex` on PATH unless configured).
    pub binary: PathBuf,
    /// `-c key=value` settings for every run (a model provider, a sandbox mode, ...).
    pub config: Vec<String>,
}

impl Default for CodexSettings {
    fn default() -> Self {
        Self {
            binary: "codex".into(),
            config: Vec::new(),
        }
    }
}

/// How `claude` agents run on this machine.
#[derive(Debug, Clone)]
pub struct ClaudeSettings {
    /// The Claude Code CLI (`claude` on PATH unless configured).
    pub binary: PathBuf,
    /// First wait after the model answered "overloaded" or "rate limited"; doubles each time.
    pub overload_backoff: std::time::Duration,
}

impl Default for ClaudeSettings {
    fn default() -> Self {
        Self {
            binary: "claude".into(),
            overload_backoff: std::time::Duration::from_secs(30),
        }
    }
}
