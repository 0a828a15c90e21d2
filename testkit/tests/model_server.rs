//! The scripted server's own rules, checked over plain HTTP without the CLI: which calls take
//! a script turn, and what the others are answered with.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use murmur_testkit::{HELPER_REPLY, ModelServer, RequestKind, Turn};
use serde_json::{Value, json};

/// One HTTP/1.1 exchange with `Connection: close`; returns the status and the body.
fn http(server: &ModelServer, method: &str, path: &str, body: &Value) -> (u16, String) {
    let addr = server.url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).expect("connect");
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().expect("status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn agent_call(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "stream": stream,
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "go"}],
    })
}

#[test]
fn only_calls_with_tools_take_script_turns() {
    let server = ModelServer::start(vec![Turn::text("scripted")]);
    let helper =
        json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]});

    let (status, body) = http(&server, "POST", "/v1/messages", &helper);
    assert_eq!(status, 200);
    let message: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(message["content"][0]["text"], HELPER_REPLY);
    assert_eq!(
        server.remaining_turns(),
        1,
        "a helper call leaves the script alone"
    );

    let (status, body) = http(
        &server,
        "POST",
        "/v1/messages?beta=true",
        &agent_call(false),
    );
    assert_eq!(status, 200);
    let message: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(message["content"][0]["text"], "scripted");
    assert_eq!(message["stop_reason"], "end_turn");

    let (status, body) = http(&server, "POST", "/v1/messages", &agent_call(true));
    assert_eq!(
        status, 400,
        "an exhausted script answers a non-retryable error"
    );
    assert!(body.contains("script is exhausted"));

    let kinds: Vec<_> = server.log().iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RequestKind::Helper,
            RequestKind::Scripted(0),
            RequestKind::Exhausted
        ]
    );
    assert_eq!(server.requests().len(), 3);
    assert_eq!(server.scripted_requests(), [agent_call(false)]);
}

#[test]
fn streamed_tool_use_and_errors_follow_the_script() {
    let server = ModelServer::start(vec![
        Turn::bash("ls"),
        Turn::error(529, "overloaded_error", "Overloaded"),
    ]);
    let (status, body) = http(&server, "POST", "/v1/messages", &agent_call(true));
    assert_eq!(status, 200);
    assert!(body.starts_with("event: message_start\n"));
    assert!(body.contains(r#""stop_reason":"tool_use""#));
    assert!(body.contains(r#""name":"Bash""#));
    assert!(
        body.trim_end()
            .ends_with(r#"data: {"type":"message_stop"}"#)
    );

    let (status, body) = http(&server, "POST", "/v1/messages", &agent_call(true));
    assert_eq!(status, 529);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        error,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
}

#[test]
fn side_endpoints_are_answered_and_unknown_ones_logged() {
    let server = ModelServer::start(vec![]);
    assert_eq!(http(&server, "HEAD", "/api/hello", &Value::Null).0, 200);
    let (status, body) = http(
        &server,
        "POST",
        "/v1/messages/count_tokens",
        &agent_call(false),
    );
    assert_eq!(status, 200);
    assert!(body.contains("input_tokens"));
    let (status, _) = http(&server, "GET", "/v1/whatever", &Value::Null);
    assert_eq!(status, 404);
    let unknown: Vec<_> = server
        .log()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Unknown)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(unknown, ["GET /v1/whatever"]);
}

#[test]
fn a_hang_is_observable_and_dropping_the_server_ends_it() {
    let server = ModelServer::start(vec![Turn::Hang]);
    let addr = server.url().trim_start_matches("http://").to_owned();
    let body = agent_call(true).to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /v1/messages HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    assert!(server.wait_for_scripted(1, Duration::from_secs(30)));
    drop(server);
    // The server's runtime is gone, so the connection closes without any answer.
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert_eq!(response, "");
}

#[test]
fn the_responses_api_answers_from_the_same_script_in_its_own_format() {
    let server = ModelServer::start(vec![
        Turn::exec_command("ls"),
        Turn::error(503, "server_error", "busy"),
    ]);
    let call = |stream: bool, tools: bool| {
        let tools = if tools {
            json!([{"type": "function", "name": "exec_command", "parameters": {}}])
        } else {
            json!([])
        };
        json!({"model": "gpt-5.5", "stream": stream, "tools": tools, "input": []})
    };

    let (status, body) = http(&server, "POST", "/v1/responses", &call(false, false));
    assert_eq!(status, 200);
    let helper: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(helper["output"][0]["content"][0]["text"], HELPER_REPLY);

    let (status, body) = http(&server, "POST", "/v1/responses", &call(true, true));
    assert_eq!(status, 200);
    assert!(body.starts_with("event: response.created\n"), "{body}");
    let done = body
        .split("\n\n")
        .find(|e| e.starts_with("event: response.output_item.done"))
        .expect("an output_item.done event");
    let item: Value = serde_json::from_str(done.split_once("data: ").unwrap().1).unwrap();
    assert_eq!(item["item"]["type"], "function_call");
    assert_eq!(item["item"]["call_id"], "call_testkit_0");
    assert_eq!(item["item"]["arguments"], r#"{"cmd":"ls"}"#);
    let last = body.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: response.completed\n"), "{last}");

    let (status, body) = http(&server, "POST", "/v1/responses", &call(true, true));
    assert_eq!(status, 503);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&error["error"]["code"], &error["error"]["message"]),
        (&"server_error".into(), &"busy".into())
    );

    let (status, _) = http(&server, "POST", "/v1/responses", &call(true, true));
    assert_eq!(
        status, 400,
        "an exhausted script answers a non-retryable error"
    );
    let kinds: Vec<_> = server.log().iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RequestKind::Helper,
            RequestKind::Scripted(0),
            RequestKind::Scripted(1),
            RequestKind::Exhausted
        ]
    );
}
