//! A real browser for the console's tests: Debian's `chromium`, headless, driven over
//! WebDriver by `chromedriver`, both started by the test on free loopback ports with a fresh
//! profile; a real OpenID Connect provider (npm `oidc-provider`, run by node from
//! tests/console/oidc-provider.mjs); and axe-core (npm) injected into pages.
//!
//! Everything outside Cargo comes from the machine: `chromium` and `chromedriver` from apt,
//! the npm packages from `$HOME/.cache/countersign-npm` (or `COUNTERSIGN_NPM_MODULES`, a
//! `node_modules` directory), all installed by .ci/run. [`Tools::find`] says what is missing;
//! the tests skip with that reason, except under CI=true, where they fail.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};

/// The programs and packages the browser tests need.
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
    pub node: PathBuf,
    /// The `node_modules` holding `oidc-provider` and `axe-core`.
    pub node_modules: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

impl Tools {
    /// What is installed, or every reason it is not.
    pub fn find() -> Result<Tools, String> {
        let mut missing = Vec::new();
        let mut program = |name: &str, install: &str| {
            on_path(name).unwrap_or_else(|| {
                missing.push(format!("`{name}` is not on PATH ({install})"));
                PathBuf::new()
            })
        };
        let chromium = program("chromium", "apt-get install chromium");
        let chromedriver = program("chromedriver", "apt-get install chromium-driver");
        let node = program("node", "apt-get install nodejs");
        let node_modules = std::env::var_os("COUNTERSIGN_NPM_MODULES").map_or_else(
            || {
                let home =
                    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
                home.join(".cache/countersign-npm/node_modules")
            },
            PathBuf::from,
        );
        for (package, file) in [
            ("oidc-provider", "package.json"),
            ("axe-core", "axe.min.js"),
        ] {
            if !node_modules.join(package).join(file).is_file() {
                missing.push(format!(
                    "{} is missing (npm install --prefix \"$HOME/.cache/countersign-npm\" \
                     {package}, as .ci/run does)",
                    node_modules.join(package).join(file).display()
                ));
            }
        }
        if missing.is_empty() {
            Ok(Tools {
                chromium,
                chromedriver,
                node,
                node_modules,
            })
        } else {
            Err(missing.join("; "))
        }
    }

    /// [`Tools::find`], or `None` after printing why the test is skipped; under CI=true a
    /// missing tool fails the test.
    pub fn or_skip() -> Option<Tools> {
        match Tools::find() {
            Ok(tools) => Some(tools),
            Err(reason) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{reason}; .ci/run installs them"
                );
                eprintln!("skipped: {reason}");
                None
            }
        }
    }

    /// axe-core's script, to inject into pages.
    pub fn axe_source(&self) -> String {
        std::fs::read_to_string(self.node_modules.join("axe-core/axe.min.js")).unwrap()
    }
}

/// Kills the child (and reaps it) when dropped, so a failing test leaves no process behind.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a child's stream line by line until `found` returns something; panics with what it
/// read when the stream ends first. The rest of the stream is copied to the test's stderr,
/// each line prefixed with `what`.
pub fn wait_for_line<T>(
    stream: impl std::io::Read + Send + 'static,
    what: &str,
    found: impl Fn(&str) -> Option<T>,
) -> T {
    let mut seen = String::new();
    let mut lines = BufReader::new(stream).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(value) = found(&line) {
            // The rest is drained in the background, so the child never blocks on a full pipe.
            let what = what.to_owned();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    eprintln!("[{what}] {line}");
                }
            });
            return value;
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    panic!("{what} did not start:\n{seen}");
}

/// The OpenID Connect provider: node running tests/console/oidc-provider.mjs.
pub struct OidcProvider {
    pub issuer: String,
    stdin: Option<ChildStdin>,
    _child: Reaped,
}

impl OidcProvider {
    /// Starts the provider; it answers 503 until [`OidcProvider::configure`].
    pub fn start(tools: &Tools) -> OidcProvider {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/oidc-provider.mjs");
        let mut child = Command::new(&tools.node)
            .arg(&script)
            .env("NODE_PATH", &tools.node_modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let issuer = wait_for_line(stdout, "the OIDC provider", |line| {
            line.strip_prefix("issuer ").map(str::to_owned)
        });
        OidcProvider {
            issuer,
            stdin,
            _child: Reaped(child),
        }
    }

    /// Registers the console as a client and the people who may sign in (login → email).
    /// Waits until the provider serves its discovery document.
    pub fn configure(
        &mut self,
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
        users: &[(&str, &str)],
    ) {
        let users: serde_json::Map<String, Value> = users
            .iter()
            .map(|(login, email)| ((*login).to_owned(), json!(email)))
            .collect();
        let config = json!({
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uri": redirect_uri,
            "users": users,
        });
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{config}").unwrap();
        stdin.flush().unwrap();
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer);
        for _ in 0..100 {
            if let Ok(response) = http_status::get(&discovery)
                && response == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the OIDC provider does not serve {discovery}");
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // Closing its stdin stops the script; the kill is the backstop.
        self.stdin.take();
    }
}

/// A tiny blocking GET (status only) without a runtime of its own.
mod http_status {
    pub fn get(url: &str) -> std::io::Result<u16> {
        use std::io::{Read as _, Write as _};
        let rest = url.strip_prefix("http://").expect("an http:// URL");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stream = std::net::TcpStream::connect(host)?;
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {answer:.80}")))
    }
}

/// A WebDriver command of chromedriver's own, outside the W3C protocol fantoccini speaks:
/// `POST /session/{id}/{path}` with a JSON body.
#[derive(Debug)]
struct ChromeCommand {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for ChromeCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/{}", session_id.unwrap(), self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// One axe-core violation, as its report gives it.
#[derive(Debug)]
pub struct Violation {
    pub id: String,
    pub impact: String,
    pub help: String,
    pub targets: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}: {}", self.impact, self.id, self.help)?;
        for target in &self.targets {
            write!(f, "\n      at {target}")?;
        }
        Ok(())
    }
}

/// Headless Chromium under chromedriver with a profile of its own.
pub struct Browser {
    pub client: fantoccini::Client,
    _driver: Reaped,
    _profile: tempfile::TempDir,
}

/// The laptop viewport the light-theme screenshots are taken at.
pub const LAPTOP: (u32, u32) = (1366, 900);
/// A phone's viewport (CSS pixels).
pub const PHONE: (u32, u32) = (390, 844);

impl Browser {
    pub async fn start(tools: &Tools) -> Browser {
        let mut driver = Command::new(&tools.chromedriver)
            .args(["--port=0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("chromedriver runs");
        let stdout = driver.stdout.take().unwrap();
        let driver = Reaped(driver);
        let port: u16 = wait_for_line(stdout, "chromedriver", |line| {
            line.strip_prefix("ChromeDriver was started successfully on port ")
                .and_then(|rest| rest.trim_end_matches('.').parse().ok())
        });
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": tools.chromium,
                "args": [
                    "--headless=new",
                    // The tests run as root in a container, where the sandbox cannot start.
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--lang=en-US",
                    format!("--window-size={},{}", LAPTOP.0, LAPTOP.1),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        // The browser's console, read by `console_errors`.
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with chromium");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Ends the session (the driver and the browser stop with the test).
    pub async fn close(self) {
        let Browser {
            client,
            _driver,
            _profile,
        } = self;
        let _ = client.close().await;
    }

    /// Sizes the viewport (not the window) to `width` × `height` CSS pixels.
    pub async fn viewport(&self, (width, height): (u32, u32)) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
        )
        .await;
    }

    /// Makes the page see `prefers-color-scheme: dark` (or light).
    pub async fn color_scheme(&self, dark: bool) {
        let value = if dark { "dark" } else { "light" };
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": value}]}),
        )
        .await;
    }

    /// A Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.client
            .issue_cmd(ChromeCommand {
                path: "goog/cdp/execute",
                body: json!({"cmd": cmd, "params": params}),
            })
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"))
    }

    /// The browser console's entries since the last call (chromedriver drains them).
    pub async fn console_entries(&self) -> Vec<Value> {
        let entries = self
            .client
            .issue_cmd(ChromeCommand {
                path: "se/log",
                body: json!({"type": "browser"}),
            })
            .await
            .expect("the browser log");
        entries.as_array().cloned().unwrap_or_default()
    }

    /// The console's SEVERE entries since the last call: errors, failed loads, CSP reports.
    pub async fn console_errors(&self) -> Vec<String> {
        self.console_entries()
            .await
            .into_iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Runs axe-core on the current page: every violation of impact serious or critical.
    pub async fn axe(&self, axe_source: &str) -> Vec<Violation> {
        // Injected as a script of the page's own, so the page's CSP does not apply to it.
        self.client
            .execute(&format!("{axe_source}\n;return true;"), vec![])
            .await
            .expect("axe-core injects");
        let report = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']})
                   .then(r => done(r.violations.map(v => ({
                       id: v.id, impact: v.impact, help: v.help,
                       targets: v.nodes.map(n => n.target.join(' ') + ' — ' + n.failureSummary)}))))
                   .catch(e => done({error: String(e)}));",
                vec![],
            )
            .await
            .expect("axe-core runs");
        if let Some(error) = report.get("error") {
            panic!("axe-core failed: {error}");
        }
        report
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| Violation {
                id: v["id"].as_str().unwrap_or_default().to_owned(),
                impact: v["impact"].as_str().unwrap_or_default().to_owned(),
                help: v["help"].as_str().unwrap_or_default().to_owned(),
                targets: v["targets"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .map(|s| s.as_str().unwrap_or_default().to_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// A PNG of the whole page (not only the viewport) at the current width.
    pub async fn screenshot(&self, path: &Path) {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
                }),
            )
            .await;
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("a screenshot"))
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}
