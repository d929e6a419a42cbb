//! A real tansu broker (Kafka protocol) for the Kafka tests.
//!
//! Every [`Tansu`] is its own broker process on its own port, so tests run in parallel.
//! It keeps its data in a SQLite file in a temporary directory, so [`Tansu::stop`] then
//! [`Tansu::restart`] (same port, same file) is a broker outage that loses nothing. The
//! process is killed when the value is dropped.
//!
//! Why not tansu's `memory://` engine: in tansu 0.6.0 its ListOffsets(latest) answers the
//! base offset of the last record batch plus one, ignoring the other records of that batch,
//! so after a batched produce the high watermark a client asks for is too low (the Fetch
//! high watermark is right). The SQLite engine answers correctly.

use crate::free_port;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "cargo install tansu --locked --features dynostore,libsql";

/// Runs the broker (`$0 "$@"`) and kills it (-9) once stdin reaches end of file: when
/// [`Tansu::stop`] closes it, or when the test process dies and the OS closes it. Exits with
/// the broker, so an early broker exit is seen as the child exiting.
/// (A background job's stdin is /dev/null in `sh`, hence the copy of stdin on fd 3.)
const GUARD: &str = r#"exec 3<&0
"$0" "$@" </dev/null 3<&- &
broker=$!
(cat <&3 >/dev/null; kill -9 "$broker" 2>/dev/null) &
wait "$broker""#;

/// How long a broker may take to accept Kafka requests after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Storage {
    Memory,
    Sqlite,
}

/// A running (or stopped, see [`Tansu::stop`]) tansu broker on 127.0.0.1.
pub struct Tansu {
    binary: PathBuf,
    port: u16,
    storage: Storage,
    /// Working directory of the broker: holds the SQLite file and the log.
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Tansu {
    /// A broker keeping its data in a SQLite file that survives [`Tansu::stop`] and
    /// [`Tansu::restart`].
    pub fn start() -> Self {
        Self::launch(Storage::Sqlite)
    }

    /// A broker on tansu's `memory://` engine (see the module docs for what it gets wrong).
    pub fn start_in_memory() -> Self {
        Self::launch(Storage::Memory)
    }

    fn launch(storage: Storage) -> Self {
        let mut broker = Self {
            binary: binary(),
            port: free_port(),
            storage,
            dir: tempfile::tempdir().expect("a temporary directory for tansu"),
            child: None,
        };
        broker.spawn();
        broker
    }

    /// The bootstrap servers string for a Kafka client: `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the broker (as a crash would: no shutdown handshake). Data survives unless it
    /// was started with [`Tansu::start_in_memory`].
    pub fn stop(&mut self) {
        if let Some(mut guard) = self.child.take() {
            // Closing the guard's stdin makes it kill -9 the broker, wait for it, and exit.
            drop(guard.stdin.take());
            let _ = guard.wait();
        }
    }

    /// Starts the broker again on the same port and storage, and waits until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// What the broker printed so far (every run), for failure messages.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tansu.log")
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "tansu is already running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let storage = match self.storage {
            Storage::Memory => "memory://tansu/".to_string(),
            // tansu resolves a sqlite URL against its working directory (host + path).
            Storage::Sqlite => "sqlite://tansu.db".to_string(),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("tansu log file");
        // Through a small shell guard (see `GUARD`), so the broker dies with this process
        // even when it is killed and `Drop` never runs.
        let child = Command::new("sh")
            .args(["-c", GUARD])
            .arg(&self.binary)
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", &storage])
            .current_dir(self.dir.path())
            // TANSU_LOG (say `info`, to see a consumer group's members come and go) when
            // debugging a test; warnings only otherwise.
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("tansu log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the broker answers a Kafka ApiVersions request.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tansu exited with {status} before it was ready:\n{}",
                    self.logs()
                );
            }
            if answers_api_versions(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "tansu did not accept Kafka requests on port {} within {READY_TIMEOUT:?}:\n{}",
            self.port,
            self.logs()
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The tansu binary: on PATH, else in `$HOME/.cargo/bin`; panics with the install command.
fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"));
    let in_cargo_home = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cargo/bin/tansu"))
        .into_iter();
    on_path
        .chain(in_cargo_home)
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("the tansu broker is not installed (not on PATH nor in ~/.cargo/bin): run `{INSTALL}`")
        })
}

/// Sends ApiVersions v0 and reads a response with our correlation id: the broker speaks Kafka.
fn answers_api_versions(port: u16) -> bool {
    const API_VERSIONS: i16 = 18;
    const CORRELATION: i32 = 0x5717;
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    // Request header v1: api key, api version, correlation id, client id (nullable string).
    let mut body = Vec::new();
    body.extend_from_slice(&API_VERSIONS.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&CORRELATION.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes());
    let mut request = (body.len() as i32).to_be_bytes().to_vec();
    request.extend_from_slice(&body);
    if stream.write_all(&request).is_err() {
        return false;
    }
    let mut head = [0u8; 8];
    if stream.read_exact(&mut head).is_err() {
        return false;
    }
    let size = i32::from_be_bytes(head[0..4].try_into().unwrap());
    let correlation = i32::from_be_bytes(head[4..8].try_into().unwrap());
    size >= 4 && correlation == CORRELATION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_answers_and_comes_back_after_a_restart() {
        let mut broker = Tansu::start();
        assert!(answers_api_versions(broker.port()));
        broker.stop();
        assert!(
            !answers_api_versions(broker.port()),
            "a stopped broker must not answer"
        );
        broker.restart();
        assert!(broker.is_running());
        assert!(answers_api_versions(broker.port()));
    }
}
