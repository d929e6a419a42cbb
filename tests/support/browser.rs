//! What the browser tests share: a small WebDriver client (W3C protocol over HTTP) driving
//! headless Chromium through chromedriver, where screenshots go, and polling helpers.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use windsock_testkit::{free_port, http_get};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub fn get_json(url: &str) -> Option<Value> {
    match http_get(url) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// Polls `check` every 250 ms until it gives a value or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("ui-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- A small WebDriver client (W3C protocol over HTTP) ----

pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> anyhow::Result<Browser> {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let root = format!("http://127.0.0.1:{port}");
        let ready = async {
            for _ in 0..100 {
                if let Ok(answer) = http.get(format!("{root}/status")).send().await {
                    if let Ok(status) = answer.json::<Value>().await {
                        if status["value"]["ready"] == true {
                            return true;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        };
        anyhow::ensure!(ready.await, "chromedriver did not become ready");
        let profile = tempfile::tempdir()?;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--window-size=1366,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let answer: Value = http
            .post(format!("{root}/session"))
            .json(&capabilities)
            .send()
            .await?
            .json()
            .await?;
        let id = answer["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no session: {answer}"))?;
        Ok(Browser {
            http,
            session: format!("{root}/session/{id}"),
            driver,
            _profile: profile,
        })
    }

    /// One WebDriver command; its `value`, or the error it answered.
    pub async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.map_err(|e| json!(e.to_string()))?;
        let ok = answer.status().is_success();
        let value = answer
            .json::<Value>()
            .await
            .map_err(|e| json!(e.to_string()))?["value"]
            .take();
        if ok {
            Ok(value)
        } else {
            Err(value)
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body))
            .await
            .unwrap_or_else(|e| panic!("WebDriver POST {path}: {e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn js(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// Runs `script` with a callback as its last argument and returns what it passes.
    pub async fn execute_async(&self, script: &str) -> Value {
        self.post("/execute/async", json!({ "script": script, "args": [] }))
            .await
    }

    /// Polls `script` until it returns something truthy (up to 20 s), and returns that.
    pub async fn wait(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let value = self.js(script).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let page = self.js("return location.href + '\\n' + document.getElementById('main').innerText.slice(0, 2000)").await;
                self.save_screenshot(&format!(
                    "failed-{}",
                    what.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
                ))
                .await;
                panic!(
                    "timed out waiting for {what}; the page:\n{}",
                    page.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self
                .command(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await
            {
                Ok(element) => return element[ELEMENT_KEY].as_str().unwrap().to_string(),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("no element matches {css}: {e}"),
            }
        }
    }

    /// The first element matching `css` whose text is `text`.
    pub async fn find_by_text(&self, css: &str, text: &str) -> String {
        let elements = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        for element in elements.as_array().unwrap() {
            let id = element[ELEMENT_KEY].as_str().unwrap();
            let shown = self
                .command(reqwest::Method::GET, &format!("/element/{id}/text"), None)
                .await
                .unwrap();
            if shown == json!(text) {
                return id.to_string();
            }
        }
        panic!("no {css} reads {text}");
    }

    pub async fn click(&self, element: &str) {
        self.post(&format!("/element/{element}/click"), json!({}))
            .await;
    }

    pub async fn send_keys(&self, element: &str, text: &str) {
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// A key pressed on whatever has the focus (as a person would).
    pub async fn press_key(&self, key: &str) {
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
            ]}]}),
        )
        .await;
    }

    /// Presses the mouse at `from` pixels right of `element`'s centre, moves to `to`, releases.
    pub async fn drag(&self, element: &str, from: i64, to: i64) {
        let origin = json!({ ELEMENT_KEY: element });
        self.post("/actions", json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
            {"type": "pointerMove", "origin": origin, "x": from, "y": 0},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerMove", "origin": origin, "x": (from + to) / 2, "y": 0, "duration": 100},
            {"type": "pointerMove", "origin": origin, "x": to, "y": 0, "duration": 100},
            {"type": "pointerUp", "button": 0}
        ]}]}))
        .await;
    }

    /// The text of an open alert dialog, if one is open.
    pub async fn alert_text(&self) -> Option<String> {
        self.command(reqwest::Method::GET, "/alert/text", None)
            .await
            .ok()
            .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    pub async fn window_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    pub async fn screenshot(&self, name: &str) {
        // Every page that gets a screenshot must also have drawn without a script error.
        let error = self
            .js("const e = document.getElementById('page-error'); return e && e.textContent")
            .await;
        assert_eq!(
            error,
            Value::Null,
            "a script error on the page before screenshot {name}"
        );
        self.save_screenshot(name).await;
    }

    /// Saves what the window shows as `target/ui-artifacts/<name>.png`.
    pub async fn save_screenshot(&self, name: &str) {
        let encoded = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        let png = base64_decode(encoded.as_str().unwrap());
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
    }

    pub async fn quit(mut self) {
        let _ = self.command(reqwest::Method::DELETE, "", None).await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (WebDriver's screenshot encoding).
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let bits = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, d)| acc | (u32::from(*d) << (18 - 6 * i)));
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// One browser session against a running windsock, as every Chromium test runs it: `drive`
/// gets a fresh headless session; the browser quits whatever happens; a failure prints
/// windsock's log before failing the test; and windsock must then stop cleanly.
pub fn session(
    runtime: &tokio::runtime::Runtime,
    windsock: &mut windsock_testkit::WindsockProcess,
    drive: impl AsyncFnOnce(&Browser),
) {
    let browser = runtime
        .block_on(Browser::start())
        .expect("chromedriver and a headless Chromium session");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(drive(&browser))
    }));
    runtime.block_on(browser.quit());
    if let Err(panic) = outcome {
        eprintln!("windsock's log:\n{}", windsock.logs());
        std::panic::resume_unwind(panic);
    }
    assert!(
        windsock.stop(Duration::from_secs(30)),
        "unclean stop:\n{}",
        windsock.logs()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_padded_and_unpadded_text() {
        assert_eq!(base64_decode("aGVsbG8="), b"hello");
        assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
        assert_eq!(base64_decode("aA=="), b"h");
    }
}
