//! Wire format of the Anthropic Messages API, as far as the scripted server speaks it.
//!
//! Kept apart from the server so the byte-level shape of an answer (event order, field names)
//! can be read and checked in one place against the API reference.

use serde_json::{Value, json};

/// Token counts reported for every answer. Fixed so that the `total_cost_usd` the CLI derives
/// from them is the same on every run, which keeps recorded transcripts comparable.
pub const INPUT_TOKENS: u64 = 100;
/// See [`INPUT_TOKENS`].
pub const OUTPUT_TOKENS: u64 = 20;

/// What one assistant message holds: the scripted server only ever answers with one block.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Content<'a> {
    Text(&'a str),
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
}

impl Content<'_> {
    fn stop_reason(&self) -> &'static str {
        match self {
            Content::Text(_) => "end_turn",
            Content::ToolUse { .. } => "tool_use",
        }
    }

    /// The block as it appears in a complete (non-streamed) message.
    fn full_block(&self) -> Value {
        match *self {
            Content::Text(text) => json!({"type": "text", "text": text}),
            Content::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        }
    }
}

fn usage(output_tokens: u64) -> Value {
    json!({
        "input_tokens": INPUT_TOKENS,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    })
}

fn message_envelope(id: &str, model: &str, content: Vec<Value>, stop: Option<&str>) -> Value {
    let output_tokens = if stop.is_some() { OUTPUT_TOKENS } else { 1 };
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": usage(output_tokens),
    })
}

/// A complete message, for requests made with `stream: false`.
pub(crate) fn message(id: &str, model: &str, content: Content<'_>) -> Value {
    message_envelope(
        id,
        model,
        vec![content.full_block()],
        Some(content.stop_reason()),
    )
}

/// The same message as a server-sent event stream, in the order the real API sends it:
/// `message_start`, `ping`, `content_block_start`, one or more deltas, `content_block_stop`,
/// `message_delta` (stop reason and final usage), `message_stop`.
pub(crate) fn event_stream(id: &str, model: &str, content: Content<'_>) -> String {
    let mut out = String::new();
    let mut event = |name: &str, data: Value| {
        out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    event(
        "message_start",
        json!({"type": "message_start", "message": message_envelope(id, model, vec![], None)}),
    );
    event("ping", json!({"type": "ping"}));
    // Deltas are split in two so that clients are exercised on concatenating them, as they
    // must with the real API, which streams text in many small pieces.
    let (start_block, deltas) = match content {
        Content::Text(text) => (
            json!({"type": "text", "text": ""}),
            halves(text)
                .map(|piece| json!({"type": "text_delta", "text": piece}))
                .collect::<Vec<_>>(),
        ),
        Content::ToolUse { id, name, input } => {
            let input_json = input.to_string();
            (
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                halves(&input_json)
                    .map(|piece| json!({"type": "input_json_delta", "partial_json": piece}))
                    .collect(),
            )
        }
    };
    event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": start_block}),
    );
    for delta in deltas {
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        );
    }
    event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    );
    event(
        "message_delta",
        json!({
            "type": "message_delta",
            "delta": {"stop_reason": content.stop_reason(), "stop_sequence": null},
            "usage": {"output_tokens": OUTPUT_TOKENS},
        }),
    );
    event("message_stop", json!({"type": "message_stop"}));
    out
}

/// The error body the API sends with a non-2xx status.
pub(crate) fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// Splits `s` in two at a character boundary near the middle; empty halves are dropped.
pub(crate) fn halves(s: &str) -> impl Iterator<Item = &str> {
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid += 1;
    }
    let (a, b) = s.split_at(mid);
    [a, b].into_iter().filter(|piece| !piece.is_empty())
}

/// A server-sent event stream as (event name, JSON data) pairs, for the wire tests.
#[cfg(test)]
pub(crate) fn events(stream: &str) -> Vec<(String, Value)> {
    stream
        .split("\n\n")
        .filter(|chunk| !chunk.is_empty())
        .map(|chunk| {
            let (event, data) = chunk.split_once('\n').expect("event and data lines");
            let name = event.strip_prefix("event: ").expect("event line");
            let data = data.strip_prefix("data: ").expect("data line");
            (
                name.to_owned(),
                serde_json::from_str(data).expect("data is JSON"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stream_has_the_api_event_order_and_reassembles() {
        let stream = event_stream("msg_1", "m", Content::Text("héllo wörld"));
        let evs = events(&stream);
        let names: Vec<_> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        for (name, data) in &evs {
            assert_eq!(
                data["type"],
                name.as_str(),
                "the data repeats the event name"
            );
        }
        let text: String = evs
            .iter()
            .filter_map(|(_, d)| d["delta"]["text"].as_str())
            .collect();
        assert_eq!(text, "héllo wörld");
        assert_eq!(evs[6].1["delta"]["stop_reason"], "end_turn");
    }

    #[test]
    fn tool_use_stream_carries_the_input_as_partial_json() {
        let input = json!({"command": "echo hi"});
        let content = Content::ToolUse {
            id: "toolu_1",
            name: "Bash",
            input: &input,
        };
        let evs = events(&event_stream("msg_1", "m", content));
        assert_eq!(evs[2].1["content_block"]["name"], "Bash");
        let json: String = evs
            .iter()
            .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), input);
        assert_eq!(evs[6].1["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn full_message_matches_the_streamed_one() {
        let msg = message("msg_1", "m", Content::Text("hi"));
        assert_eq!(msg["content"][0]["text"], "hi");
        assert_eq!(msg["stop_reason"], "end_turn");
        assert_eq!(msg["usage"]["output_tokens"], OUTPUT_TOKENS);
    }
}
