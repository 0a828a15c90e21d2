//! Murmur's own MCP server (`murmur mcp`) in every Codex session that has an agent identity,
//! as `-c mcp_servers.murmur.*` overrides: the model then has `mcp__murmur__spawn`,
//! `…__wait` and the rest. Codex starts MCP servers with a minimal environment of its own
//! (PATH, HOME, …), not its whole one, so the overrides name the identity's variables in
//! `env_vars`, which Codex copies from its environment into the server's: the values never
//! reach a command line or a config file.

/// The variables of the agent identity (`murmur_engine::identity`), passed on to the server.
const IDENTITY: [&str; 2] = ["MURMUR_AGENT_TOKEN", "MURMUR_API_URL"];

/// The `-c` values (without the `-c`) that configure the `murmur` MCP server, when `env`
/// has an agent identity and this program's path is known (the program driving the
/// attempt is `murmur` itself).
pub fn config(env: &[(String, String)]) -> Vec<String> {
    let has_identity = env
        .iter()
        .any(|(name, value)| name == IDENTITY[0] && !value.is_empty());
    if !has_identity {
        return Vec::new();
    }
    let Ok(program) = std::env::current_exe() else {
        return Vec::new();
    };
    // JSON strings and arrays of strings are valid TOML values.
    let quoted = serde_json::Value::from(program.display().to_string()).to_string();
    let names = serde_json::Value::from(IDENTITY.to_vec()).to_string();
    vec![
        format!("mcp_servers.murmur.command={quoted}"),
        "mcp_servers.murmur.args=[\"mcp\"]".to_owned(),
        format!("mcp_servers.murmur.env_vars={names}"),
        // Nobody is there to approve a tool call: the agent's own tools need no approval.
        "mcp_servers.murmur.default_tools_approval_mode=\"approve\"".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_session_with_an_identity_gets_the_server_and_no_secret_is_in_it() {
        assert!(config(&[]).is_empty());
        let env = [
            (IDENTITY[0].to_owned(), "mrma1.secret".to_owned()),
            (IDENTITY[1].to_owned(), "http://127.0.0.1:1".to_owned()),
        ];
        let values = config(&env);
        assert!(
            values
                .iter()
                .any(|v| v == "mcp_servers.murmur.args=[\"mcp\"]")
        );
        assert!(
            values
                .iter()
                .any(|v| v.contains("env_vars=[\"MURMUR_AGENT_TOKEN\",\"MURMUR_API_URL\"]")),
            "{values:?}"
        );
        let text = values.join(" ");
        assert!(
            !text.contains("secret") && !text.contains("127.0.0.1"),
            "{text}"
        );
    }
}
