//! A TCP proxy the test controls: it forwards one link of a cell (one node dialing another)
//! and can cut it (close every forwarded connection and refuse new ones) and heal it, so a
//! test can partition real daemons without touching them.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// A forwarder from a loopback port of its own to `target`.
pub struct Proxy {
    /// Where it listens: give this address to the dialing node.
    pub address: String,
    state: Arc<State>,
}

struct State {
    target: String,
    open: AtomicBool,
    streams: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    /// Starts forwarding to `target`.
    pub fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State {
            target: target.to_string(),
            open: AtomicBool::new(true),
            streams: Mutex::new(Vec::new()),
        });
        let accepting = state.clone();
        thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                if !accepting.open.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(&accepting.target) else {
                    continue;
                };
                let mut streams = accepting.streams.lock().unwrap();
                for stream in [&inbound, &outbound] {
                    if let Ok(clone) = stream.try_clone() {
                        streams.push(clone);
                    }
                }
                drop(streams);
                pump(&inbound, &outbound);
                pump(&outbound, &inbound);
            }
        });
        Proxy { address, state }
    }

    /// Closes every forwarded connection and refuses new ones until [`Proxy::heal`].
    pub fn cut(&self) {
        self.state.open.store(false, Ordering::SeqCst);
        for stream in self.state.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.state.open.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` on a thread until either side closes.
fn pump(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
