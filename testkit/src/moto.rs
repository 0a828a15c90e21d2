//! moto's server (the real AWS wire protocol, EC2 and KMS) on a free port, for the cloud tests.
//! `.ci/run` installs it; without one the caller skips, saying so.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `moto_server`; dropping it stops it.
pub struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    /// Starts moto on a port of its choosing and waits (at most 60 s) for it to say which.
    /// `None`, with a line on stderr, when no `moto_server` is installed.
    pub fn start() -> Option<Moto> {
        Self::start_with(&[])
    }

    /// A moto that checks credentials and IAM policies once `unchecked` requests were served
    /// (for the test's own set-up: an image lookup, an IAM user and its policy). Unknown access
    /// keys then get `AuthFailure`, and actions a user's policy does not allow `AccessDenied`.
    pub fn start_checking_credentials(unchecked: u32) -> Option<Moto> {
        Self::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", &unchecked.to_string())])
    }

    fn start_with(env: &[(&str, &str)]) -> Option<Moto> {
        let Some(binary) = binary() else {
            eprintln!(
                "skipped: no moto_server on PATH (pip install 'moto[server]', or set MURMUR_MOTO_SERVER)"
            );
            return None;
        };
        let mut child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moto_server");
        let stderr = child.stderr.take().expect("stderr");
        let (found, port) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("Running on ").nth(1) {
                    let _ = found.send(url.trim().to_owned());
                }
            }
        });
        let url = port
            .recv_timeout(Duration::from_secs(60))
            .expect("moto_server says where it listens within 60 s");
        Some(Moto { child, url })
    }

    /// e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One call of a query-protocol API (`service` `ec2` or `iam`, at API `version`), its
    /// parameters form-encoded and unsigned: moto routes by the credential scope, and does not
    /// check the signature of its unchecked requests. The status and the XML answer.
    pub fn query(&self, service: &str, version: &str, params: &[(&str, &str)]) -> (u16, String) {
        let mut body = format!("Version={version}");
        for (key, value) in params {
            body.push_str(&format!("&{key}={}", form_encode(value)));
        }
        let address = self.url.trim_start_matches("http://");
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host, Signature=00"
        );
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {address}\r\nAuthorization: {auth}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = std::net::TcpStream::connect(address).expect("moto answers");
        stream.write_all(request.as_bytes()).expect("sent to moto");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("moto's answer");
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map_or_else(String::new, |(_, body)| body.to_owned());
        (status, body)
    }
}

/// `text` as a form value: everything but unreserved characters percent-encoded.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("MURMUR_MOTO_SERVER") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
}
