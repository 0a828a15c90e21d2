//! moto's server (the real AWS wire protocol, EC2 and KMS) on a free port, for the cloud tests.
//! `.ci/run` installs it; without one the caller skips, saying so.

use std::io::{BufRead, BufReader};
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
