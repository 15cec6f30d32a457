//! For tests of the shared state on a real server: a Redis or Valkey server started
//! on a free loopback port, without persistence, stopped when dropped.
//! `scripts/kv-servers.sh` installs the servers; the tests find them through
//! `SWITCHYARD_REDIS_BIN` and `SWITCHYARD_VALKEY_BIN`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process the test owns.
#[derive(Debug)]
pub struct KvServer {
    binary: PathBuf,
    /// `redis` or `valkey`.
    pub backend: &'static str,
    port: u16,
    child: Option<Child>,
}

impl KvServer {
    /// The server named by `variable` (`SWITCHYARD_REDIS_BIN`, `SWITCHYARD_VALKEY_BIN`),
    /// started; None (the test is skipped, saying so) when the variable is not set,
    /// unless `SWITCHYARD_REQUIRE_KV` is set, which makes a missing server an error.
    #[allow(clippy::print_stderr)] // a skipped test says why
    pub fn from_env(variable: &str, backend: &'static str) -> Result<Option<KvServer>, String> {
        let Ok(binary) = std::env::var(variable) else {
            if std::env::var("SWITCHYARD_REQUIRE_KV").is_ok() {
                return Err(format!(
                    "SWITCHYARD_REQUIRE_KV is set but {variable} is not (scripts/test.sh sets both)"
                ));
            }
            eprintln!("skipped: set {variable} (scripts/test.sh runs scripts/kv-servers.sh)");
            return Ok(None);
        };
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let mut server = KvServer {
            binary: PathBuf::from(binary),
            backend,
            port,
            child: None,
        };
        server.start()?;
        Ok(Some(server))
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the server (again, on the same port) and waits until it accepts
    /// connections.
    pub fn start(&mut self) -> Result<(), String> {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "{} did not listen on {address} within 10 s",
            self.backend
        ))
    }

    /// Stops the server without ending it (SIGSTOP): connections are accepted by the
    /// system and nothing is answered, as a server that hangs. [`KvServer::thaw`]
    /// goes on.
    pub fn freeze(&self) -> Result<(), String> {
        self.signal("-STOP")
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) -> Result<(), String> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<(), String> {
        let pid = self.child.as_ref().ok_or("the server is not running")?.id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .map_err(|e| format!("kill {signal}: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("kill {signal} {pid}: {status}"))
    }

    /// Kills the server at once (no shutdown: as a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for KvServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
