//! A TCP proxy in front of the server that can cut every open connection at once, as a
//! network that drops them would: the page must resume its streams where they broke off.

use std::io::copy;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub struct Proxy {
    pub address: String,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(server: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let address = listener.local_addr().expect("address").to_string();
        let open = Arc::new(Mutex::new(Vec::new()));
        let tracked = open.clone();
        let server = server.to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(&server) else {
                    continue;
                };
                if let (Ok(a), Ok(b)) = (client.try_clone(), upstream.try_clone()) {
                    tracked.lock().expect("lock").extend([a, b]);
                }
                pipe(client, upstream);
            }
        });
        Self { address, open }
    }

    /// Cuts every connection open now; new ones go through as before.
    pub fn cut(&self) {
        for stream in self.open.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Copies both ways until either side closes.
fn pipe(client: TcpStream, upstream: TcpStream) {
    let (Ok(mut client_in), Ok(mut upstream_in)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let (mut client_out, mut upstream_out) = (client, upstream);
    std::thread::spawn(move || {
        let _ = copy(&mut client_in, &mut upstream_out);
        let _ = upstream_out.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let _ = copy(&mut upstream_in, &mut client_out);
        let _ = client_out.shutdown(Shutdown::Write);
    });
}
