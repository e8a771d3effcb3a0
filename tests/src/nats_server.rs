//! Throwaway `nats-server` processes for tests.
//!
//! Each [`NatsServer`] runs on random loopback ports (`-a 127.0.0.1 -p -1
//! -m -1`) with JetStream storing in its own temporary directory, is ready
//! when its monitoring `/healthz` answers 200, can be SIGKILLed and
//! restarted on the same port with the same store, and is killed by PID when
//! dropped. [`NatsCluster`] runs three such servers as a JetStream cluster.
//!
//! The binary is found via `NATS_SERVER_BIN`, then `PATH`, then `/usr/sbin`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to become healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds the `nats-server` binary, or panics saying how to install it.
pub fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return p;
        }
        panic!("NATS_SERVER_BIN={} is not a file", p.display());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let sbin = PathBuf::from("/usr/sbin/nats-server");
    if sbin.is_file() {
        return sbin;
    }
    panic!(
        "nats-server not found (looked at $NATS_SERVER_BIN, $PATH, /usr/sbin). \
         Install it with `apt-get install -y nats-server`, or download it from \
         https://github.com/nats-io/nats-server/releases and set NATS_SERVER_BIN."
    )
}

/// Options for a test server.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// The server's `max_payload` (bytes); only settable via a config file.
    pub max_payload: Option<usize>,
    /// Require this user and password.
    pub user_password: Option<(String, String)>,
    /// Require this token.
    pub token: Option<String>,
    /// Disable JetStream.
    pub no_jetstream: bool,
    /// More server configuration, written into the config file as is
    /// (e.g. an `authorization { users = [...] }` block with permissions).
    pub config: Option<String>,
}

/// One throwaway nats-server process.
pub struct NatsServer {
    dir: tempfile::TempDir,
    options: ServerOptions,
    child: Option<Child>,
    port: u16,
    monitor_port: u16,
    /// Cluster settings when part of a [`NatsCluster`].
    cluster: Option<ClusterArgs>,
    restarts: u32,
}

#[derive(Clone, Debug)]
struct ClusterArgs {
    name: String,
    server_name: String,
    cluster_port: u16,
    routes: Vec<u16>,
}

impl NatsServer {
    /// Starts a server with JetStream on random loopback ports.
    pub fn start() -> NatsServer {
        Self::start_with(ServerOptions::default())
    }

    /// Starts a server with `options`.
    pub fn start_with(options: ServerOptions) -> NatsServer {
        let mut server = NatsServer {
            dir: tempfile::Builder::new()
                .prefix("tidings-nats-")
                .tempdir()
                .expect("temp dir for nats-server"),
            options,
            child: None,
            port: 0,
            monitor_port: 0,
            cluster: None,
            restarts: 0,
        };
        server.spawn_and_wait();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `nats://user:password@127.0.0.1:<port>` (for probes on a server
    /// that requires users).
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("nats://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's PID, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// SIGKILLs the server and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
        }
    }

    /// Restarts a killed (or running: it is killed first) server on the same
    /// port with the same JetStream store, and waits until it is healthy.
    pub fn restart(&mut self) {
        self.kill();
        self.restarts += 1;
        self.spawn_and_wait();
    }

    fn spawn_and_wait(&mut self) {
        let bin = nats_server_bin();
        let ports_dir = self.dir.path().join(format!("ports-{}", self.restarts));
        std::fs::create_dir_all(&ports_dir).expect("ports dir");
        let log = self
            .dir
            .path()
            .join(format!("server-{}.log", self.restarts));
        let mut cmd = Command::new(&bin);
        cmd.arg("-a").arg("127.0.0.1");
        // First start: random port; restarts: the same port.
        if self.port == 0 {
            cmd.args(["-p", "-1"]);
        } else {
            cmd.args(["-p", &self.port.to_string()]);
        }
        cmd.args(["-m", "-1"]);
        cmd.arg("--ports_file_dir").arg(&ports_dir);
        cmd.arg("-l").arg(&log);
        if !self.options.no_jetstream {
            cmd.arg("-js").arg("-sd").arg(self.store_dir());
        }
        if let Some((user, pass)) = &self.options.user_password {
            cmd.args(["--user", user, "--pass", pass]);
        }
        if let Some(token) = &self.options.token {
            cmd.args(["--auth", token]);
        }
        if self.options.max_payload.is_some() || self.options.config.is_some() {
            let mut text = String::new();
            if let Some(max) = self.options.max_payload {
                text.push_str(&format!("max_payload: {max}\n"));
            }
            if let Some(extra) = &self.options.config {
                text.push_str(extra);
                text.push('\n');
            }
            let conf = self.dir.path().join("server.conf");
            std::fs::write(&conf, text).expect("write conf");
            cmd.arg("-c").arg(&conf);
        }
        if let Some(c) = &self.cluster {
            cmd.args(["-n", &c.server_name]);
            cmd.args(["--cluster_name", &c.name]);
            cmd.args(["--cluster", &format!("nats://127.0.0.1:{}", c.cluster_port)]);
            let routes: Vec<String> = c
                .routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            cmd.args(["--routes", &routes.join(",")]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
        let pid = child.id();
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        let ports_file = ports_dir.join(format!(
            "{}_{pid}.ports",
            bin.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("nats-server")
        ));
        let (port, monitor_port) = loop {
            if let Some(ports) = read_ports(&ports_file) {
                break ports;
            }
            if !self.is_running() {
                panic!(
                    "nats-server exited during start-up; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not write {} in time",
                ports_file.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        self.port = port;
        self.monitor_port = monitor_port;
        loop {
            if healthz(monitor_port) {
                return;
            }
            if !self.is_running() {
                panic!(
                    "nats-server exited before it was healthy; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nats-server was not healthy within {READY_TIMEOUT:?}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server log of the current run (for failure messages).
    pub fn log(&self) -> String {
        let log = self
            .dir
            .path()
            .join(format!("server-{}.log", self.restarts));
        std::fs::read_to_string(log).unwrap_or_default()
    }

    /// The path of the store directory's parent (the server's temp dir).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Parses `{"nats":["nats://127.0.0.1:P"],"monitoring":["http://127.0.0.1:M"]}`.
/// The file is not written atomically: a partial read returns `None`.
fn read_ports(path: &Path) -> Option<(u16, u16)> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let port_of = |key: &str| -> Option<u16> {
        let url = v.get(key)?.as_array()?.first()?.as_str()?;
        url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
    };
    Some((port_of("nats")?, port_of("monitoring")?))
}

/// True when `GET /healthz` on the monitoring port answers 200.
fn healthz(monitor_port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], monitor_port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200")
}

/// A free loopback TCP port (bound then released: a small race, fine for
/// cluster ports that must be known before the servers start).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

/// Three nats-servers on loopback forming one JetStream cluster.
pub struct NatsCluster {
    /// The nodes.
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts a 3-node JetStream cluster and waits for every node.
    pub fn start() -> NatsCluster {
        let name = format!("tidings-{}", std::process::id());
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes: Vec<NatsServer> = (0..3)
            .map(|i| NatsServer {
                dir: tempfile::Builder::new()
                    .prefix("tidings-nats-cluster-")
                    .tempdir()
                    .expect("temp dir"),
                options: ServerOptions::default(),
                child: None,
                port: 0,
                monitor_port: 0,
                cluster: Some(ClusterArgs {
                    name: name.clone(),
                    server_name: format!("n{i}"),
                    cluster_port: cluster_ports[i],
                    routes: cluster_ports
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, p)| *p)
                        .collect(),
                }),
                restarts: 0,
            })
            .collect();
        // Start all three before waiting: JetStream in a cluster is only
        // healthy once a meta leader is elected, which needs a quorum.
        std::thread::scope(|s| {
            for node in nodes.iter_mut() {
                s.spawn(move || node.spawn_and_wait());
            }
        });
        NatsCluster { nodes }
    }

    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// The node whose server name (`-n`) is `name` (`n0`, `n1`, `n2`).
    pub fn node_named(&mut self, name: &str) -> Option<&mut NatsServer> {
        self.nodes
            .iter_mut()
            .find(|n| n.cluster.as_ref().is_some_and(|c| c.server_name == name))
    }
}
