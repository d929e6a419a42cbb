//! The real `windsock` binary as a child process whose exit status the tests read (the
//! testkit's `WindsockProcess` waits for a healthy `/healthz` and reports only success).

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

pub mod browser;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use windsock_testkit::{free_port, http_get};

pub const BIN: &str = env!("CARGO_BIN_EXE_windsock");

/// A hang guard for waits on the process, not a performance bound.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct Windsock {
    child: Child,
    pub base: String,
    log: PathBuf,
}

impl Windsock {
    /// `windsock <args>` on a free port and `data`, a collection round every 2 s, not waiting
    /// for health (a failing service makes `/healthz` a 503 from the start).
    pub fn start(args: &[&str], data: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = data.with_extension("log");
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_remove("RUST_LOG")
            .env("WINDSOCK_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("WINDSOCK_DATA_DIR", data)
            .env("WINDSOCK_COLLECTOR__SCHEDULE", "*/2 * * * * *")
            .env("WINDSOCK_COLLECTOR__BACKFILL", "0s")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (key, value) in env {
            command.env(key, value);
        }
        Self {
            child: command.spawn().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `path` until `done` accepts its answer; panics with the logs after [`PATIENCE`].
    pub fn wait_for(&mut self, path: &str, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("windsock exited with {status}:\n{}", self.logs());
            }
            if let Ok((status, body)) = http_get(&format!("{}{path}", self.base)) {
                if done(status, &body) {
                    return (status, body);
                }
            }
            assert!(
                Instant::now() < deadline,
                "{path} never answered as expected:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit status and the logs; panics if it still runs after `bound`.
    pub fn terminate(mut self, bound: Duration) -> (ExitStatus, String) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status, self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!(
            "windsock still ran {bound:?} after SIGTERM:\n{}",
            self.logs()
        );
    }
}

impl Drop for Windsock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}
