//! `.murmur/murmur.yaml`: the repository's local configuration. Every key has a default, so a
//! repository with only a flight file works.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store, as `--db` takes it.
    pub database_url: Option<String>,
    #[serde(default)]
    pub pools: BTreeMap<String, Pool>,
    #[serde(default)]
    pub runtimes: Runtimes,
    #[serde(default)]
    pub github: GitHub,
    #[serde(default)]
    pub checks: Checks,
    #[serde(default)]
    pub server: Server,
    /// What agents keep of the machine's environment besides the documented base.
    #[serde(default)]
    pub environment: AgentVariables,
    /// The tenant's secrets every agent of this workspace gets as environment variables.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Limits on agents that spawn agents.
    #[serde(default)]
    pub agents: Spawning,
    /// Where cloud pools' machines run: an account, region or project and its network.
    #[serde(default)]
    pub placements: BTreeMap<String, crate::cloud::PlacementConfig>,
    /// Machine shapes per provider, for cloud pools.
    #[serde(default)]
    pub environments: BTreeMap<String, crate::cloud::EnvironmentConfig>,
}

/// `agents:`: how deep children may nest and how many one agent may spawn.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spawning {
    pub max_depth: Option<u32>,
    pub max_children: Option<u32>,
}

impl Spawning {
    pub fn limits(&self) -> murmur_engine::children::Limits {
        let default = murmur_engine::children::Limits::default();
        murmur_engine::children::Limits {
            max_depth: self.max_depth.unwrap_or(default.max_depth),
            max_children: self.max_children.unwrap_or(default.max_children),
        }
    }
}

/// `environment:`: `pass: [NAME, …]` keeps those variables of the machine's environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentVariables {
    #[serde(default)]
    pub pass: Vec<String>,
}

/// `murmur serve`'s settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Requests per API token; 50 per second with bursts of 200 unless set.
    pub rate_limit: Option<RateLimit>,
    /// What cloud machines' workers connect back to.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests a token gets back per second; 0 turns the limit off.
    pub per_second: u32,
    /// Requests a token may make at once; four seconds' worth unless set.
    pub burst: Option<u32>,
}

/// The rate limit when `server.rate_limit` is not set.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    per_second: murmur_server::limit::DEFAULT_PER_SECOND,
    burst: Some(murmur_server::limit::DEFAULT_BURST),
};

/// The workspace's checks: what the `ci` gate runs on an agent's branch.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// A shell command run in the agent's worktree; exit status 0 passes.
    pub command: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHub {
    /// API root for GitHub Enterprise; `https://api.github.com` when not set.
    pub api_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtimes {
    #[serde(default)]
    pub claude: RuntimeBinary,
    #[serde(default)]
    pub codex: CodexConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodexConfig {
    /// Path to the CLI; `codex` on PATH when not set.
    pub binary: Option<std::path::PathBuf>,
    /// `-c key=value` settings passed on every run (a model provider, a sandbox mode, ...).
    #[serde(default)]
    pub config: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeBinary {
    /// Path to the CLI; `claude` on PATH when not set.
    pub binary: Option<std::path::PathBuf>,
    /// First wait when the model is overloaded (`30s` unless set); doubles on each try.
    pub overload_backoff: Option<murmur_parser::Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// How many agents may run at once on this pool.
    pub max_vms: Option<usize>,
    /// How many of those one tenant's agents may hold at once (all of them unless set).
    pub max_vms_per_tenant: Option<usize>,
    /// Warm machines the pool keeps ready; local slots need no warm-up.
    pub min_idle: Option<usize>,
    /// Where the pool's machines run (`local`, `workers`, a placement's name); accepted as the
    /// platform writes it, and run on this host's slots until placements exist here.
    pub placement: Option<String>,
    /// The machine shape (`environments:`) of a cloud pool.
    pub environment: Option<String>,
    /// How long an agent whose turn is done stays idle on its machine before it sleeps.
    pub sleep_after: Option<murmur_parser::Duration>,
    /// A cloud pool's idle machines beyond `min_idle` are destroyed after this.
    pub idle_timeout: Option<murmur_parser::Duration>,
    /// A cloud VM whose worker has not registered by then is terminated and made again (5m).
    pub boot_timeout: Option<murmur_parser::Duration>,
}

pub const FILE: &str = ".murmur/murmur.yaml";

impl Config {
    pub fn load(repo: &Path) -> anyhow::Result<Self> {
        let path = repo.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let config: Self = serde_saphyr::from_str(&text)
            .with_context(|| format!("{} is not a valid configuration", path.display()))?;
        // Broken placements and environments are refused here, naming the key.
        crate::cloud::cloud_pools(&config)?;
        config.check_tenant_caps()?;
        Ok(config)
    }

    /// `max_vms_per_tenant`: at least 1 and at most the pool's `max_vms`.
    fn check_tenant_caps(&self) -> anyhow::Result<()> {
        for (name, pool) in &self.pools {
            let Some(cap) = pool.max_vms_per_tenant else {
                continue;
            };
            let key = format!("{FILE}: `pools.{name}.max_vms_per_tenant`");
            let max_vms = self.max_vms_of(name);
            if cap == 0 {
                anyhow::bail!(
                    "{key} must be at least 1 (leave it out to let one tenant use every machine)"
                );
            }
            if cap > max_vms {
                anyhow::bail!(
                    "{key} ({cap}) is more than the pool's max_vms ({max_vms}); set it to {max_vms} or less"
                );
            }
        }
        Ok(())
    }

    /// The Claude Code CLI: configured, else `MURMUR_CLAUDE_BIN`, else `claude` on PATH.
    pub fn claude(&self) -> murmur_engine::executor::ClaudeSettings {
        let configured = &self.runtimes.claude;
        let defaults = murmur_engine::executor::ClaudeSettings::default();
        murmur_engine::executor::ClaudeSettings {
            binary: configured
                .binary
                .clone()
                .or_else(|| std::env::var_os("MURMUR_CLAUDE_BIN").map(Into::into))
                .unwrap_or(defaults.binary),
            overload_backoff: configured
                .overload_backoff
                .map_or(defaults.overload_backoff, |d| d.as_std()),
        }
    }

    /// The Codex CLI: configured, else `MURMUR_CODEX_BIN`, else `codex` on PATH.
    pub fn codex(&self) -> murmur_engine::executor::CodexSettings {
        let configured = &self.runtimes.codex;
        murmur_engine::executor::CodexSettings {
            binary: configured
                .binary
                .clone()
                .or_else(|| std::env::var_os("MURMUR_CODEX_BIN").map(Into::into))
                .unwrap_or_else(|| "codex".into()),
            config: configured.config.clone(),
        }
    }

    /// GitHub's API root (configured, else `MURMUR_GITHUB_API_URL`, else api.github.com) and
    /// the token from `MURMUR_GITHUB_TOKEN` or `GITHUB_TOKEN` (never from a file).
    pub fn github(&self) -> murmur_engine::executor::GitHubSettings {
        let defaults = murmur_engine::executor::GitHubSettings::default();
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        murmur_engine::executor::GitHubSettings {
            api_url: self
                .github
                .api_url
                .clone()
                .or_else(|| env("MURMUR_GITHUB_API_URL"))
                .unwrap_or(defaults.api_url),
            token: env("MURMUR_GITHUB_TOKEN").or_else(|| env("GITHUB_TOKEN")),
        }
    }

    /// The pools a flight may name: `local`, which always exists, and those of `pools:`.
    pub fn pool_names(&self) -> std::collections::BTreeSet<String> {
        let mut names: std::collections::BTreeSet<String> = self.pools.keys().cloned().collect();
        names.insert("local".to_owned());
        names
    }

    /// What preflight checks a flight of the repository at `repo` against.
    pub fn facts(&self, repo: Option<&Path>) -> murmur_engine::preflight::Facts {
        murmur_engine::preflight::Facts {
            repository: repo.map(Path::to_path_buf),
            pools: Some(self.pool_names()),
            check_command: self.checks.command.is_some(),
        }
    }

    /// `server.rate_limit` as `(per_second, burst)`; `per_second` 0 means no limit.
    pub fn rate_limit(&self) -> anyhow::Result<(u32, u32)> {
        let limit = self.server.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT);
        let burst = limit
            .burst
            .unwrap_or_else(|| limit.per_second.saturating_mul(4));
        if limit.per_second > 0 && burst == 0 {
            anyhow::bail!(
                "{FILE}: server.rate_limit.burst must be at least 1 (or set per_second: 0 to turn the limit off)"
            );
        }
        Ok((limit.per_second, burst))
    }

    /// What the driver applies of each pool: its `max_vms`, `max_vms_per_tenant` and
    /// `sleep_after`.
    pub fn pool_settings(&self) -> murmur_engine::executor::Pools {
        let pools = self.pools.iter();
        murmur_engine::executor::Pools {
            sleep_after: pools
                .clone()
                .filter_map(|(name, pool)| Some((name.clone(), pool.sleep_after?.as_std())))
                .collect(),
            max_vms_per_tenant: pools
                .clone()
                .filter_map(|(name, pool)| Some((name.clone(), pool.max_vms_per_tenant?)))
                .collect(),
            max_vms: pools
                .map(|(name, _)| (name.clone(), self.max_vms_of(name)))
                .collect(),
        }
    }

    /// A pool's `max_vms`: `local`'s slots (`local_slots`); for another pool as configured,
    /// else as many as this host has cores, like `local`.
    pub fn max_vms_of(&self, pool: &str) -> usize {
        if pool == "local" {
            return self.local_slots();
        }
        self.pools
            .get(pool)
            .and_then(|pool| pool.max_vms)
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
    }

    /// `environment.pass` and `secrets`, their names checked; `keyring` opens the secrets.
    pub fn agent_environment(
        &self,
        keyring: impl FnOnce() -> anyhow::Result<murmur_vault::Keyring>,
    ) -> anyhow::Result<murmur_engine::executor::AgentEnvironment> {
        for name in &self.secrets {
            murmur_vault::check_name(name).with_context(|| format!("{FILE}: `secrets`"))?;
        }
        if let Some(bad) = self.environment.pass.iter().find(|n| !is_variable_name(n)) {
            anyhow::bail!(
                "{FILE}: `environment.pass`: `{}` is no environment variable name (letters, \
                 digits and `_`, not starting with a digit)",
                bad.escape_debug()
            );
        }
        let mut environment = murmur_engine::executor::AgentEnvironment {
            pass: self.environment.pass.clone(),
            secrets: self.secrets.clone(),
            ..Default::default()
        };
        if !self.secrets.is_empty() {
            environment.keyring = keyring()
                .map(std::sync::Arc::new)
                .map_err(|e| format!("{e:#}"));
        }
        Ok(environment)
    }

    /// The local pool's cap: `pools.local.max_vms`, else the number of cores.
    pub fn local_slots(&self) -> usize {
        self.pools
            .get("local")
            .and_then(|pool| pool.max_vms)
            .filter(|&slots| slots > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pools_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".murmur")).unwrap();
        assert!(Config::load(dir.path()).unwrap().local_slots() >= 1);
        std::fs::write(dir.path().join(FILE), "pools:\n  local:\n    max_vms: 3\n").unwrap();
        assert_eq!(Config::load(dir.path()).unwrap().local_slots(), 3);
        std::fs::write(
            dir.path().join(FILE),
            "pools:\n  local: { max_vms: 2 }\n  fleet: { placement: workers, max_vms: 8, min_idle: 1, sleep_after: 10m, idle_timeout: 2h }\n",
        )
        .unwrap();
        let names = Config::load(dir.path()).unwrap().pool_names();
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["fleet", "local"]);
        std::fs::write(dir.path().join(FILE), "pool:\n  local: {}\n").unwrap();
        let error = format!("{:#}", Config::load(dir.path()).unwrap_err());
        assert!(error.contains("not a valid configuration"), "{error}");
    }

    #[test]
    fn a_per_tenant_cap_is_positive_and_within_its_pools_max_vms() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".murmur")).unwrap();
        let load = |yaml: &str| {
            std::fs::write(dir.path().join(FILE), yaml).unwrap();
            Config::load(dir.path()).map_err(|e| format!("{e:#}"))
        };
        let capped = load("pools:\n  local: { max_vms: 3, max_vms_per_tenant: 1 }\n").unwrap();
        let settings = capped.pool_settings();
        assert_eq!(settings.tenant_capacity("local"), Some(1));
        assert_eq!(settings.tenant_capacity("fleet"), None);
        let fleet = load(
            "pools:\n  local: { max_vms: 2 }\n  fleet: { placement: workers, max_vms: 8, max_vms_per_tenant: 2 }\n",
        )
        .unwrap();
        let settings = fleet.pool_settings();
        assert_eq!(settings.tenant_capacity("fleet"), Some(2));
        assert_eq!(settings.capacity("fleet", 2), 8);
        assert_eq!(settings.capacity("local", 2), 2);
        for (yaml, says) in [
            (
                "pools:\n  local: { max_vms: 3, max_vms_per_tenant: 0 }\n",
                "must be at least 1",
            ),
            (
                "pools:\n  local: { max_vms: 3, max_vms_per_tenant: 4 }\n",
                "(4) is more than the pool's max_vms (3)",
            ),
            (
                "pools:\n  local: { max_vms: 2 }\n  fleet: { placement: workers, max_vms: 2, max_vms_per_tenant: 3 }\n",
                "(3) is more than the pool's max_vms (2)",
            ),
            (
                "pools:\n  local: { max_vms_per_tenant: -1 }\n",
                "not a valid configuration",
            ),
        ] {
            let error = load(yaml).unwrap_err();
            assert!(error.contains(says), "{yaml}: {error}");
            if !says.contains("valid") {
                assert!(
                    error.contains("max_vms_per_tenant"),
                    "names the key: {error}"
                );
            }
        }
    }

    #[test]
    fn the_rate_limit_has_a_default_a_derived_burst_and_an_off_switch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".murmur")).unwrap();
        let limit = |yaml: &str| {
            std::fs::write(dir.path().join(FILE), yaml).unwrap();
            Config::load(dir.path()).and_then(|config| config.rate_limit())
        };
        assert_eq!(limit("").unwrap(), (50, 200));
        let set = "server:\n  rate_limit: { per_second: 5, burst: 7 }\n";
        assert_eq!(limit(set).unwrap(), (5, 7));
        let derived = "server: { rate_limit: { per_second: 3 } }\n";
        assert_eq!(limit(derived).unwrap(), (3, 12));
        let off = "server: { rate_limit: { per_second: 0 } }\n";
        assert_eq!(limit(off).unwrap(), (0, 0));
        let empty = "server: { rate_limit: { per_second: 2, burst: 0 } }\n";
        let error = format!("{:#}", limit(empty).unwrap_err());
        assert!(error.contains("burst must be at least 1"), "{error}");
        let typo = "server: { rate_limit: { per_sec: 2 } }\n";
        assert!(limit(typo).is_err());
        let negative = "server: { rate_limit: { per_second: -1 } }\n";
        assert!(limit(negative).is_err());
    }
}
