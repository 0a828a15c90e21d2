//! A local TCP port that agent and check scripts report to, so that a test waits for "it
//! runs now" instead of polling for it (and without a fifo, which blocks its writer).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use super::session::DEADLINE;

/// Reports arrive one per connection; [`Beacon::signal`] is the script's side.
pub struct Beacon {
    port: u16,
    reports: mpsc::Receiver<()>,
    /// Tells the listening thread to end at its next connection.
    closed: Arc<AtomicBool>,
}

impl Beacon {
    pub fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let port = listener.local_addr().expect("local address").port();
        let (report, reports) = mpsc::channel();
        let closed = Arc::new(AtomicBool::new(false));
        let closing = closed.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if closing.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.read_to_end(&mut Vec::new());
                let _ = report.send(());
            }
        });
        Self {
            port,
            reports,
            closed,
        }
    }

    /// A shell command that reports once.
    pub fn signal(&self) -> String {
        format!("bash -c 'echo > /dev/tcp/127.0.0.1/{}'", self.port)
    }

    pub fn wait(&self, what: &str) {
        self.reports
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("{what} did not report within {DEADLINE:?}"));
    }
}

impl Drop for Beacon {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
