//! A real git host over HTTP for the workspace tests: `git http-backend` (git's own smart-HTTP
//! server, run as CGI) behind a listener that takes one token only, as a forge's HTTPS
//! endpoint does. It clones, fetches and takes pushes; every request without the token
//! answers 401. Each request notes whether it held the token and whether any process's
//! command line held it meanwhile.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;

/// What the host saw of one request.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub authorized: bool,
    pub token_on_a_command_line: bool,
}

/// A git host serving the bare repositories below `root` at `http://ADDRESS/NAME.git`.
pub struct GitHost {
    pub address: String,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl GitHost {
    /// Serves `root`'s repositories to requests that present `token` as git presents a
    /// forge token (`x-access-token:TOKEN`, basic authentication); pushes are taken.
    pub fn serve(root: &Path, token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
        );
        let (root, token, noted) = (root.to_owned(), token.to_owned(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let host = Host {
                    root: root.clone(),
                    expected: expected.clone(),
                    token: token.clone(),
                    seen: noted.clone(),
                };
                std::thread::spawn(move || host.answer(stream));
            }
        });
        Self { address, seen }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}.git", self.address)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

struct Host {
    root: PathBuf,
    expected: String,
    token: String,
    seen: Arc<Mutex<Vec<Request>>>,
}

/// One HTTP request as read off the connection.
struct Incoming {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

impl Host {
    fn answer(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream);
        let Some(incoming) = read_request(&mut reader) else {
            return;
        };
        let authorized = incoming.header("authorization") == Some(self.expected.as_str());
        let (path, _) = incoming
            .target
            .split_once('?')
            .unwrap_or((&incoming.target, ""));
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Request {
                path: path.to_owned(),
                authorized,
                token_on_a_command_line: on_a_command_line(&self.token),
            });
        let mut stream = reader.into_inner();
        let response = if authorized {
            self.backend(&incoming)
        } else {
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        };
        let _ = stream.write_all(&response);
    }

    /// Runs `git http-backend` for the request (CGI) and turns its answer into HTTP.
    fn backend(&self, incoming: &Incoming) -> Vec<u8> {
        let (path, query) = incoming
            .target
            .split_once('?')
            .unwrap_or((&incoming.target, ""));
        let mut command = Command::new("git");
        command
            .arg("http-backend")
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REQUEST_METHOD", &incoming.method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("REMOTE_USER", "x-access-token")
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("CONTENT_LENGTH", incoming.body.len().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (header, variable) in [
            ("content-type", "CONTENT_TYPE"),
            ("content-encoding", "HTTP_CONTENT_ENCODING"),
            ("git-protocol", "GIT_PROTOCOL"),
        ] {
            if let Some(value) = incoming.header(header) {
                command.env(variable, value);
            }
        }
        let mut child = command.spawn().expect("git http-backend runs");
        let mut stdin = child.stdin.take().expect("stdin");
        let body = incoming.body.clone();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let output = child.wait_with_output().expect("git http-backend ends");
        let _ = feeder.join();
        http_of_cgi(&output.stdout)
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Incoming> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut incoming = Incoming {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if incoming
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
    {
        incoming.body = read_chunked(reader)?;
    } else if let Some(length) = incoming.header("content-length") {
        let mut body = vec![0; length.parse().ok()?];
        reader.read_exact(&mut body).ok()?;
        incoming.body = body;
    }
    Some(incoming)
}

/// A chunked body (git sends one for a pack larger than its post buffer).
fn read_chunked(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// CGI output (headers, a blank line, the body) as an HTTP/1.1 response.
fn http_of_cgi(output: &[u8]) -> Vec<u8> {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, 2))
        });
    let Some((at, gap)) = split else {
        return b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec();
    };
    let head = String::from_utf8_lossy(&output[..at]);
    let body = &output[at + gap..];
    let mut status = "200 OK".to_owned();
    let mut response = Vec::new();
    let mut headers = String::new();
    for line in head.lines() {
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => {
                status = value.trim().to_owned();
            }
            Some(_) => headers.push_str(&format!("{}\r\n", line.trim_end())),
            None => {}
        }
    }
    response.extend_from_slice(
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    response.extend_from_slice(body);
    response
}

/// Whether any process's command line holds `token` or the header form that carries it.
pub fn on_a_command_line(token: &str) -> bool {
    let header =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return false;
    };
    processes.flatten().any(|process| {
        let text = std::fs::read(process.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        text.contains(token) || text.contains(&header)
    })
}
