//! A throwaway nats-server per measurement (the conformance suite's
//! harness), plus what the server itself counts: `in_msgs` from `/varz`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tidings_conformance::nats_server::{nats_server_bin, NatsServer};

/// A nats-server on random loopback ports, killed when dropped.
pub struct Server {
    pub nats: NatsServer,
    monitor_port: u16,
}

impl Server {
    /// Starts a server with JetStream and finds its monitoring port.
    pub fn start() -> Server {
        let nats = NatsServer::start();
        let monitor_port = monitor_port(&nats).expect("the server's monitoring port");
        Server { nats, monitor_port }
    }

    pub fn url(&self) -> String {
        self.nats.url()
    }

    /// Messages the server received from clients so far.
    pub fn in_msgs(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(n) = varz(self.monitor_port).and_then(|v| v["in_msgs"].as_u64()) {
                return n;
            }
            assert!(Instant::now() < deadline, "/varz did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the server received at least `target` messages, or until
    /// the count stops moving for `quiet`; returns the count.
    pub fn wait_in_msgs(&self, target: u64, quiet: Duration) -> u64 {
        let mut last = self.in_msgs();
        let mut since = Instant::now();
        while last < target {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.in_msgs();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                break;
            }
        }
        last
    }
}

/// The monitoring port from the ports file the harness asked the server to
/// write (`<dir>/ports-0/<bin>_<pid>.ports`).
fn monitor_port(server: &NatsServer) -> Option<u16> {
    let bin = nats_server_bin();
    let name = bin.file_name()?.to_str()?.to_owned();
    let file: PathBuf = server
        .dir()
        .join("ports-0")
        .join(format!("{name}_{}.ports", server.pid()?));
    let text = std::fs::read_to_string(file).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = v.get("monitoring")?.as_array()?.first()?.as_str()?;
    url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
}

fn varz(port: u16) -> Option<serde_json::Value> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /varz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let body = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    serde_json::from_slice(&buf[body..]).ok()
}
