//! Test harnesses shared by windsock's test suites:
//! - [`WindsockProcess`]: the real `windsock` binary as a child process (so tests can
//!   `kill -9` it and start it again on the same data directory);
//! - [`tansu`]: a real Kafka-protocol broker for the Kafka tests;
//! - [`free_port`].

pub mod tansu;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// The workspace's shared test data folder (`../shared/data` beside the repository).
pub fn shared_data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(file)
}

/// A `windsock` child process with its own data directory and HTTP port.
pub struct WindsockProcess {
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub data_dir: PathBuf,
    pub port: u16,
    log_path: PathBuf,
    child: Option<Child>,
}

impl WindsockProcess {
    /// Prepares (does not start) `binary args...` listening on a free port, with `data_dir`.
    /// `WINDSOCK_HTTP__LISTEN` and `WINDSOCK_DATA_DIR` are set; add more with [`Self::env`].
    pub fn new(binary: impl Into<PathBuf>, args: &[&str], data_dir: &Path) -> Self {
        let port = free_port();
        let log_path = data_dir.with_extension(format!("{port}.log"));
        Self {
            binary: binary.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![
                ("WINDSOCK_HTTP__LISTEN".into(), format!("127.0.0.1:{port}")),
                ("WINDSOCK_DATA_DIR".into(), data_dir.display().to_string()),
                ("RUST_BACKTRACE".into(), "1".into()),
            ],
            data_dir: data_dir.to_path_buf(),
            port,
            log_path,
            child: None,
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (stdout and stderr appended to a log file beside the data dir)
    /// and waits until `/healthz` answers.
    pub fn start(&mut self) -> anyhow::Result<()> {
        assert!(self.child.is_none(), "already running");
        std::fs::create_dir_all(&self.data_dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let mut command = Command::new(&self.binary);
        command
            .args(&self.args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        self.child = Some(command.spawn()?);
        self.wait_healthy(Duration::from_secs(60))
    }

    fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let health = format!("{}/healthz", self.base_url());
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                anyhow::bail!(
                    "windsock exited with {status} before it was healthy:\n{}",
                    self.logs()
                );
            }
            if http_get(&health).is_ok_and(|(status, _)| status == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!(
            "windsock was not healthy within {timeout:?}:\n{}",
            self.logs()
        )
    }

    /// `kill -9`: no chance to flush or commit anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit (up to `timeout`); returns whether it exited cleanly.
    pub fn stop(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// The child's process id while it runs (the scale bench reads its CPU time and peak
    /// memory from `/proc/<pid>`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Everything the process printed so far (all runs).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for WindsockProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `check` every 50 ms until it holds; past `within`, fails the test saying what was
/// awaited, with `logs()` (the processes' output) to see why. A hang guard, not a timed
/// assertion.
pub fn wait_until(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> bool,
    logs: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; logs:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A bare HTTP/1.1 GET over std (no client library, no runtime), for readiness polling and
/// simple assertions: the status code and the body (chunked bodies are decoded).
pub fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("only http:// URLs: {url}"))?;
    let (address, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response from {url}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}
