//! Wire format of the OpenAI Responses API (`POST /v1/responses`), as far as the scripted server
//! speaks it for the Codex CLI.
//!
//! Kept apart from the server, like [`crate::anthropic`], so the byte-level shape of an answer
//! can be read and checked in one place. Codex 0.169 parses `response.output_item.done` items as
//! its `ResponseItem`s and needs `response.completed` (with `response.id`) before the stream
//! ends, or it reports "stream closed before response.completed"; the other events are sent
//! because the real API sends them, in its order, with increasing `sequence_number`s.

use serde_json::{Value, json};

use crate::anthropic::{INPUT_TOKENS, OUTPUT_TOKENS, halves};

/// What one model response holds: the scripted server only ever answers with one output item.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Output<'a> {
    /// An assistant `message` item with one `output_text` part.
    Text(&'a str),
    /// A `function_call` item; `arguments` is sent JSON-encoded, as a string.
    FunctionCall {
        call_id: &'a str,
        name: &'a str,
        arguments: &'a Value,
    },
}

/// Ids of one response: `resp_testkit_<n>`, with its item `msg_`/`fc_testkit_<n>`.
struct Ids {
    response: String,
    item: String,
}

impl Ids {
    fn new(tag: &str, output: &Output<'_>) -> Ids {
        let kind = match output {
            Output::Text(_) => "msg",
            Output::FunctionCall { .. } => "fc",
        };
        Ids {
            response: format!("resp_testkit_{tag}"),
            item: format!("{kind}_testkit_{tag}"),
        }
    }
}

fn usage() -> Value {
    json!({
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    })
}

/// The item as it is once complete (`output_item.done`, `response.completed`).
fn full_item(id: &str, output: &Output<'_>) -> Value {
    match *output {
        Output::Text(text) => json!({
            "type": "message", "id": id, "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }),
        Output::FunctionCall {
            call_id,
            name,
            arguments,
        } => {
            let mut item = json!({
                "type": "function_call", "id": id, "status": "completed",
                "call_id": call_id, "name": name, "arguments": arguments.to_string(),
            });
            // Codex 0.169 names an MCP tool by its server's namespace and the tool's own name:
            // a flat `mcp__SERVER__TOOL` is an "unsupported call".
            if let Some((namespace, tool)) = mcp_tool(name) {
                item["namespace"] = namespace.into();
                item["name"] = tool.into();
            }
            item
        }
    }
}

/// `mcp__SERVER__TOOL` as (`mcp__SERVER`, `TOOL`), the way Claude Code spells an MCP tool.
fn mcp_tool(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("mcp__")?;
    let (server, tool) = rest.split_once("__")?;
    Some((&name[..5 + server.len()], tool))
}

/// The item as it is announced (`output_item.added`): in progress, nothing streamed yet.
fn started_item(id: &str, output: &Output<'_>) -> Value {
    let mut item = full_item(id, output);
    item["status"] = "in_progress".into();
    match output {
        Output::Text(_) => item["content"] = json!([]),
        Output::FunctionCall { .. } => item["arguments"] = "".into(),
    }
    item
}

fn envelope(ids: &Ids, model: &str, status: &str, output: Vec<Value>, usage: Value) -> Value {
    json!({
        "id": ids.response,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": status,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "usage": usage,
    })
}

/// A complete response, for requests made with `stream: false` (Codex never does).
pub(crate) fn response(tag: &str, model: &str, output: Output<'_>) -> Value {
    let ids = Ids::new(tag, &output);
    let item = full_item(&ids.item, &output);
    envelope(&ids, model, "completed", vec![item], usage())
}

/// The same response as a server-sent event stream, in the order the real API sends it:
/// `response.created`, `response.in_progress`, `response.output_item.added`, the item's
/// content events (text: `content_part.added`, `output_text.delta`s, `output_text.done`,
/// `content_part.done`; function call: `function_call_arguments.delta`s and `.done`),
/// `response.output_item.done`, `response.completed` with usage.
pub(crate) fn event_stream(tag: &str, model: &str, output: Output<'_>) -> String {
    let ids = Ids::new(tag, &output);
    let mut out = String::new();
    let mut sequence = 0;
    let mut event = |name: &str, mut data: Value| {
        data["type"] = name.into();
        data["sequence_number"] = sequence.into();
        sequence += 1;
        out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    let in_progress = envelope(&ids, model, "in_progress", vec![], Value::Null);
    event("response.created", json!({"response": in_progress}));
    event("response.in_progress", json!({"response": in_progress}));
    let at = json!({"item_id": ids.item, "output_index": 0});
    let with = |extra: Value| {
        let mut data = at.clone();
        for (key, value) in extra.as_object().into_iter().flatten() {
            data[key] = value.clone();
        }
        data
    };
    event(
        "response.output_item.added",
        json!({"output_index": 0, "item": started_item(&ids.item, &output)}),
    );
    // Deltas are split in two so that clients are exercised on concatenating them.
    match output {
        Output::Text(text) => {
            let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
            let content = |extra: Value| {
                let mut data = with(extra);
                data["content_index"] = 0.into();
                data
            };
            event(
                "response.content_part.added",
                content(json!({"part": part("")})),
            );
            for piece in halves(text) {
                event(
                    "response.output_text.delta",
                    content(json!({"delta": piece})),
                );
            }
            event("response.output_text.done", content(json!({"text": text})));
            event(
                "response.content_part.done",
                content(json!({"part": part(text)})),
            );
        }
        Output::FunctionCall { arguments, .. } => {
            let arguments = arguments.to_string();
            for piece in halves(&arguments) {
                event(
                    "response.function_call_arguments.delta",
                    with(json!({"delta": piece})),
                );
            }
            event(
                "response.function_call_arguments.done",
                with(json!({"arguments": arguments})),
            );
        }
    }
    let item = full_item(&ids.item, &output);
    event(
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    );
    let done = envelope(&ids, model, "completed", vec![item], usage());
    event("response.completed", json!({"response": done}));
    out
}

/// The error body the API sends with a non-2xx status.
pub(crate) fn error_body(kind: &str, message: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": kind}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::events;

    #[test]
    fn text_stream_has_the_api_event_order_and_reassembles() {
        let evs = events(&event_stream("0", "m", Output::Text("héllo wörld")));
        let names: Vec<_> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, (name, data)) in evs.iter().enumerate() {
            assert_eq!(
                data["type"],
                name.as_str(),
                "the data repeats the event name"
            );
            assert_eq!(data["sequence_number"], i);
        }
        let text: String = evs
            .iter()
            .filter(|(n, _)| n == "response.output_text.delta")
            .filter_map(|(_, d)| d["delta"].as_str())
            .collect();
        assert_eq!(text, "héllo wörld");
        let done = &evs[8].1["item"];
        assert_eq!(done["content"][0]["text"], "héllo wörld");
        let completed = &evs[9].1["response"];
        assert_eq!(completed["id"], "resp_testkit_0");
        assert_eq!(completed["status"], "completed");
        assert_eq!(
            completed["usage"]["total_tokens"],
            INPUT_TOKENS + OUTPUT_TOKENS
        );
        assert_eq!(completed["output"][0], *done);
    }

    #[test]
    fn function_call_stream_carries_the_arguments_as_a_json_string() {
        let arguments = json!({"cmd": "echo hi"});
        let call = Output::FunctionCall {
            call_id: "call_1",
            name: "exec_command",
            arguments: &arguments,
        };
        let evs = events(&event_stream("1", "m", call));
        assert_eq!(evs[2].1["item"]["arguments"], "");
        let streamed: String = evs
            .iter()
            .filter(|(n, _)| n == "response.function_call_arguments.delta")
            .filter_map(|(_, d)| d["delta"].as_str())
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&streamed).unwrap(), arguments);
        let done = &evs[evs.len() - 2].1["item"];
        assert_eq!(
            (&done["type"], &done["name"], &done["call_id"], &done["id"]),
            (
                &"function_call".into(),
                &"exec_command".into(),
                &"call_1".into(),
                &"fc_testkit_1".into()
            )
        );
        let parsed: Value = serde_json::from_str(done["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(parsed, arguments);
    }

    #[test]
    fn full_response_matches_the_streamed_one() {
        let full = response("2", "m", Output::Text("hi"));
        let evs = events(&event_stream("2", "m", Output::Text("hi")));
        assert_eq!(full, evs.last().unwrap().1["response"]);
        assert_eq!(
            error_body("server_error", "x")["error"]["code"],
            "server_error"
        );
    }
}
