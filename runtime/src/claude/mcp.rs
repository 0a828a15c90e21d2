//! Murmur's own MCP server (`murmur mcp`) in every Claude Code session that has an agent
//! identity: the session's tools then include `mcp__murmur__spawn`, `…__wait` and the rest.
//! The configuration names only the program: the identity (`MURMUR_AGENT_TOKEN`,
//! `MURMUR_API_URL`) stays in the environment, which Claude Code passes on to the servers it
//! starts, so no credential is ever on a command line.

/// The variable whose presence says the session acts for an agent that may spawn others.
const IDENTITY: &str = "MURMUR_AGENT_TOKEN";

/// The permission rule that lets the session call every tool of the `murmur` server.
pub const ALLOWED: &str = "mcp__murmur";

/// The `--mcp-config` JSON for a session with `env`, when it has an agent identity and this
/// program's path is known (the program driving the attempt is `murmur` itself).
pub fn config(env: &[(String, String)]) -> Option<String> {
    if !env
        .iter()
        .any(|(name, value)| name == IDENTITY && !value.is_empty())
    {
        return None;
    }
    let program = std::env::current_exe().ok()?;
    let config = serde_json::json!({
        "mcpServers": {
            "murmur": { "type": "stdio", "command": program, "args": ["mcp"] }
        }
    });
    Some(config.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_session_with_an_identity_gets_the_server_and_no_secret_is_in_it() {
        assert_eq!(config(&[]), None);
        let env = [(IDENTITY.to_owned(), "mrma1.secret".to_owned())];
        let text = config(&env).expect("a config");
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["mcpServers"]["murmur"]["args"][0], "mcp");
        assert!(!text.contains("secret"), "{text}");
    }
}
