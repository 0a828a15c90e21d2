//! Flights that Murmur writes itself: the one-agent flight of a `murmur spawn`, whether typed at
//! the top level or called by an agent for its child.

/// What a spawned agent is given.
#[derive(Debug, Default, Clone)]
pub struct OneAgent<'a> {
    pub slug: &'a str,
    pub prompt: &'a str,
    /// Frontmatter lines of the caller's own (e.g. `inputs:`), written before the options.
    pub front: &'a str,
    pub runtime: Option<&'a str>,
    pub on_idle: Option<&'a str>,
    pub persona: Option<&'a str>,
    pub model: Option<&'a str>,
    pub out: Option<&'a str>,
}

/// A one-section flight. The prompt's lines that start with `#` are escaped, so that none of
/// them becomes a heading of the flight; an `exec` agent runs the prompt as its command.
/// Frontmatter values are quoted, so that no value becomes YAML structure.
pub fn one_agent_flight(agent: &OneAgent<'_>) -> String {
    let mut front = agent.front.to_owned();
    for (key, value) in [("runtime", agent.runtime), ("on_idle", agent.on_idle)] {
        if let Some(value) = value {
            let quoted = serde_json::Value::from(value).to_string();
            front.push_str(&format!("{key}: {quoted}\n"));
        }
    }
    let mut text = String::new();
    if !front.is_empty() {
        text.push_str(&format!("---\n{front}---\n\n"));
    }
    let slug = agent.slug;
    text.push_str(&format!("# {slug}\n\n## {slug}\n"));
    for (key, value) in [
        ("persona", agent.persona),
        ("model", agent.model),
        ("out", agent.out),
    ] {
        if let Some(value) = value {
            text.push_str(&format!("> {key}: {}\n", value.replace('\n', " ")));
        }
    }
    if agent.runtime == Some("exec") {
        text.push_str(&format!("> command: {}\n", agent.prompt.replace('\n', " ")));
        return text;
    }
    text.push('\n');
    for line in agent.prompt.lines() {
        if line.trim_start().starts_with('#') {
            text.push('\\');
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}
