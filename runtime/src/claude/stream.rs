//! Claude Code's `--output-format stream-json` lines, read one at a time. Only what the
//! engine uses is typed; anything else is kept as `Other` so new CLI versions do not break us.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The first line: the session this conversation lives in.
    Init {
        session_id: String,
    },
    Text(String),
    ToolUse {
        name: String,
        input: String,
    },
    ToolResult {
        text: String,
        is_error: bool,
    },
    Result(Summary),
    Other,
}

/// The final `result` line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Summary {
    #[serde(default)]
    pub subtype: String,
    #[serde(default)]
    pub is_error: bool,
    #[serde(default)]
    pub result: String,
    #[serde(default)]
    pub num_turns: u32,
    #[serde(default)]
    pub total_cost_usd: f64,
    #[serde(default)]
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a stream-json line ({reason}): {excerpt}")]
pub struct Malformed {
    pub reason: String,
    pub excerpt: String,
}

/// One line; several events when an assistant message holds several blocks.
pub fn parse_line(line: &str) -> Result<Vec<StreamEvent>, Malformed> {
    let malformed = |reason: String| Malformed {
        reason,
        excerpt: line.chars().take(120).collect(),
    };
    let value: Value = serde_json::from_str(line).map_err(|e| malformed(e.to_string()))?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no `type`".into()))?;
    Ok(match kind {
        "system" if value.get("subtype").and_then(Value::as_str) == Some("init") => {
            let session_id = text_field(&value, "session_id")
                .ok_or_else(|| malformed("init without `session_id`".into()))?;
            vec![StreamEvent::Init { session_id }]
        }
        "assistant" => blocks(&value).iter().filter_map(assistant_block).collect(),
        "user" => blocks(&value).iter().filter_map(tool_result).collect(),
        "result" => vec![StreamEvent::Result(
            serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?,
        )],
        _ => vec![StreamEvent::Other],
    })
}

fn text_field(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn blocks(value: &Value) -> Vec<Value> {
    value
        .pointer("/message/content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn assistant_block(block: &Value) -> Option<StreamEvent> {
    match block.get("type").and_then(Value::as_str)? {
        "text" => Some(StreamEvent::Text(text_field(block, "text")?)),
        "tool_use" => Some(StreamEvent::ToolUse {
            name: text_field(block, "name").unwrap_or_default(),
            input: block.get("input").map(Value::to_string).unwrap_or_default(),
        }),
        _ => None,
    }
}

fn tool_result(block: &Value) -> Option<StreamEvent> {
    if block.get("type").and_then(Value::as_str)? != "tool_result" {
        return None;
    }
    let text = match block.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| text_field(p, "text"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    let is_error = block
        .get("is_error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some(StreamEvent::ToolResult { text, is_error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_lines_the_engine_needs() {
        let init = r#"{"type":"system","subtype":"init","session_id":"s-1","tools":["Bash"]}"#;
        assert_eq!(
            parse_line(init),
            Ok(vec![StreamEvent::Init {
                session_id: "s-1".into()
            }])
        );
        let assistant = r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Let me look."},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}}]}}"#;
        assert_eq!(
            parse_line(assistant),
            Ok(vec![
                StreamEvent::Text("Let me look.".into()),
                StreamEvent::ToolUse {
                    name: "Bash".into(),
                    input: r#"{"command":"ls"}"#.into()
                }
            ])
        );
        let user = r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"a.txt"}]}]}}"#;
        assert_eq!(
            parse_line(user),
            Ok(vec![StreamEvent::ToolResult {
                text: "a.txt".into(),
                is_error: false
            }])
        );
        let result = r#"{"type":"result","subtype":"success","is_error":false,"result":"Done","num_turns":2,"total_cost_usd":0.012,"session_id":"s-1"}"#;
        let Ok(events) = parse_line(result) else {
            panic!("parses")
        };
        assert!(
            matches!(&events[0], StreamEvent::Result(s) if s.result == "Done" && s.num_turns == 2 && s.session_id == "s-1")
        );
    }

    #[test]
    fn unknown_lines_pass_and_broken_ones_are_reported() {
        assert_eq!(
            parse_line(r#"{"type":"stream_event","x":1}"#),
            Ok(vec![StreamEvent::Other])
        );
        let broken = parse_line("{not json").unwrap_err();
        assert!(
            broken.to_string().starts_with("not a stream-json line"),
            "{broken}"
        );
        assert!(parse_line(r#"{"no":"type"}"#).is_err());
        assert!(parse_line(r#"{"type":"system","subtype":"init"}"#).is_err());
    }
}

/// Real transcripts of Claude Code 2.1.332 (recorded by `testkit`), read line by line.
#[cfg(test)]
mod recorded {
    use super::*;

    fn events(transcript: &str) -> Vec<StreamEvent> {
        transcript
            .lines()
            .flat_map(|line| parse_line(line).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    fn summary(events: &[StreamEvent]) -> &Summary {
        events
            .iter()
            .find_map(|e| match e {
                StreamEvent::Result(summary) => Some(summary),
                _ => None,
            })
            .expect("a result line")
    }

    #[test]
    fn a_successful_turn() {
        let events = events(include_str!(
            "../../../testkit/fixtures/claude-stream.jsonl"
        ));
        let Some(StreamEvent::Init { session_id }) = events.first() else {
            panic!("init first: {events:?}")
        };
        assert!(
            events
                .iter()
                .any(|e| matches!(e, StreamEvent::ToolUse { name, .. } if name == "Bash"))
        );
        assert!(events.iter().any(|e| matches!(
            e,
            StreamEvent::ToolResult {
                is_error: false,
                ..
            }
        )));
        let result = summary(&events);
        assert!(!result.is_error);
        assert_eq!(result.result, "Done: created hello.txt");
        assert_eq!(&result.session_id, session_id);
        assert!(
            result.num_turns >= 2 && result.total_cost_usd > 0.0,
            "{result:?}"
        );
    }

    #[test]
    fn an_api_error_is_an_error_whatever_the_subtype_says() {
        let events = events(include_str!(
            "../../../testkit/fixtures/claude-stream-api-error.jsonl"
        ));
        let result = summary(&events);
        assert_eq!(result.subtype, "success");
        assert!(result.is_error);
        assert!(result.result.contains("529"), "{}", result.result);
    }

    #[test]
    fn a_retried_turn_still_ends_in_its_result() {
        let events = events(include_str!(
            "../../../testkit/fixtures/claude-stream-retry.jsonl"
        ));
        assert_eq!(summary(&events).result, "recovered");
    }
}
