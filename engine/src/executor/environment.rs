//! What agents get in their environment beyond the run's context, as the workspace's
//! `.murmur/murmur.yaml` says (`environment.pass`, `secrets`), and the secrets themselves,
//! opened from the store only for the moment they are sealed to the attempt's machine.

use std::sync::Arc;

use murmur_vault::{Keyring, SecretSet};

use crate::secrets::Secrets;
use crate::store::Store;

/// The agents' environment settings of one workspace.
#[derive(Clone)]
pub struct AgentEnvironment {
    /// Variables of the machine's environment every agent keeps besides the documented base.
    pub pass: Vec<String>,
    /// The tenant's secrets every agent of this workspace gets as environment variables.
    pub secrets: Vec<String>,
    /// Variables every agent of this workspace gets as given (a stored workspace's
    /// `defaults.environment`), over the machine's; the run's context and secrets win.
    pub variables: Vec<(String, String)>,
    /// Opens the secrets; else why there is no key, which an attempt that needs secrets
    /// fails with.
    pub keyring: Result<Arc<Keyring>, String>,
    /// The developer's own credentials (`murmur setup`, `crate::profile`), opened once at
    /// start: agents get them as they get secrets (sealed to the machine, masked), the
    /// workspace's secrets winning on a name.
    pub profile: Option<Arc<SecretSet>>,
}

impl Default for AgentEnvironment {
    fn default() -> Self {
        Self {
            pass: Vec::new(),
            secrets: Vec::new(),
            variables: Vec::new(),
            keyring: Err("no key-encryption key is configured: set MURMUR_KEK or \
                          MURMUR_KEY_FILE as for `murmur secret set`"
                .to_owned()),
            profile: None,
        }
    }
}

impl std::fmt::Debug for AgentEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentEnvironment")
            .field("pass", &self.pass)
            .field("secrets", &self.secrets)
            .field("variables", &self.variables)
            .field("keyring", &self.keyring.as_ref().map(|k| k.current_id()))
            .finish()
    }
}

impl AgentEnvironment {
    /// These settings with `extra` secrets too: a run's own (`murmur spawn -e`).
    pub fn with_secrets(&self, extra: &[String]) -> Self {
        let mut environment = self.clone();
        for name in extra {
            if !environment.secrets.contains(name) {
                environment.secrets.push(name.clone());
            }
        }
        environment
    }

    /// Whether an attempt needs its secrets opened before it starts.
    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty() || self.profile.is_some()
    }

    /// The workspace's secrets in plaintext, in memory; the error says what to do.
    pub async fn open(&self, store: &Store) -> Result<SecretSet, String> {
        let mut opened = self.open_secrets(store).await?;
        for (name, value) in self.profile.iter().flat_map(|profile| profile.iter()) {
            if opened.get(name).is_none() {
                opened
                    .insert(name, value.clone())
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(opened)
    }

    async fn open_secrets(&self, store: &Store) -> Result<SecretSet, String> {
        if self.secrets.is_empty() {
            return Ok(SecretSet::new());
        }
        let keyring = self.keyring.as_ref().map_err(|why| {
            format!(
                "the workspace gives its agents secrets ({}) but cannot open them: {why}",
                self.secrets.join(", ")
            )
        })?;
        let names: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        Secrets::new(store, keyring)
            .open(&names)
            .await
            .map_err(|e| format!("cannot open the agent's secrets: {e}"))
    }
}
