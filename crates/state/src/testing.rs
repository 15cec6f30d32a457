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
        // A free port can be taken by another test's server between the check and the
        // start: the start then fails (the process that answers is not ours), and
        // another port is tried.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port().map_err(|e| format!("no free port: {e}"))?;
            let mut server = KvServer {
                binary: PathBuf::from(&binary),
                backend,
                port,
                child: None,
            };
            match server.start() {
                Ok(()) => return Ok(Some(server)),
                Err(e) => last = e,
            }
        }
        Err(last)
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
        let pid = child.id();
        self.child = Some(child);
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!(
                    "{} on port {} exited at start ({status}): the port is taken?",
                    self.backend, self.port
                ));
            }
            if process_id(address) == Some(pid) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(format!(
            "{} did not answer on {address} within 10 s",
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

/// The process id of the server answering at `address` (`INFO server`), if one does.
fn process_id(address: SocketAddr) -> Option<u32> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(100)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    stream.write_all(b"INFO server\r\n").ok()?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while answer.len() < 64 * 1024 {
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some(rest) = text.split("process_id:").nth(1)
            && let Some((pid, _)) = rest.split_once("\r\n")
        {
            return pid.trim().parse().ok();
        }
    }
    None
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
