//! # sremote-rest
//!
//! [`NewtConnector`]: the sremote [`Connector`] for hosts reached through a NEWT-style REST
//! API (NERSC's NEWT, or `sremote-gateway`, which ships with sremote).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sremote_core::ConnectorError> {
//! use sremote_core::{Connector, RemoteCommand};
//! use sremote_rest::NewtConnector;
//! let newt = NewtConnector::login("https://gw.example.org/newt", "cluster", "alice", "secret").await?;
//! let out = newt.exec(&RemoteCommand::new("uname").arg("-a")).await?;
//! # Ok(()) }
//! ```
//!
//! How the contract maps onto the API:
//! - **exec** → `POST /command/<machine>` with every word quoted (see [`quote`]); env vars
//!   and a working directory go through `env -C DIR -- K=V PROG…` on the host. The API has
//!   no stdin ([`Connector::supports_stdin`] is `false`, so calls use file mode). A timeout
//!   is sent as the form field `timeout` (the gateway kills the process group) and enforced
//!   here too. Without the gateway's `exit_code` extension the exit code is 0 for
//!   `status: "OK"`, else 1.
//! - **push** → `PUT /file/<machine>/<abs path>?mode=OCTAL`, the body streamed from the
//!   file (with `Content-Length`, so an oversized upload is refused before it is sent).
//! - **pull** → `GET …?view=read`, streamed into a temporary file next to the
//!   destination, then renamed.
//! - Relative paths are resolved against the home directory, learned at login (the
//!   gateway's `home` field) or from `printenv HOME`. Paths with `..` are refused: URLs
//!   cannot carry them.
//! - An expired session is renewed once, transparently, when the password is held; else
//!   the error is `Auth`. File requests are retried (3 tries) on connection failures and
//!   502/503; commands never are.
//! - Modes travel without setuid, setgid and sticky bits (masked to `0o777`) both ways.
//! - Redirects are never followed for a login (the form carries the password) nor to
//!   another origin; a plain `http://` base URL must be loopback unless
//!   [`NewtBuilder::allow_plain_http`] says otherwise.
#![warn(missing_docs)]

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, COOKIE, SET_COOKIE};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use sremote_core::connector::SourceData;
use sremote_core::connector::support::{
    OpenSource, PartFile, pull_action, push_action, with_progress,
};
use sremote_core::newt;
use sremote_core::{
    Connector, ConnectorError, ConnectorErrorKind as Kind, Dest, ExecOutput, RemoteCommand, Source,
};
use tokio::io::AsyncWriteExt;

mod http;
pub mod quote;
mod target;

pub use target::NewtTarget;

use http::{network_error, read_error};

/// Retries of an idempotent request (connection failures, 502, 503).
const RETRIES: u32 = 3;
/// Extra time the client waits beyond a command's timeout before giving up itself.
const GRACE: Duration = Duration::from_secs(10);

/// A password, never shown by `Debug`.
struct Secret(String);

struct Session {
    token: String,
    generation: u64,
}

/// A [`Connector`] speaking NEWT to one machine behind a REST gateway.
///
/// `Debug` and the error messages never show the password or the session id.
pub struct NewtConnector {
    http: Client,
    base: String,
    machine: String,
    label: String,
    user: Option<String>,
    password: Option<Secret>,
    session: RwLock<Session>,
    relogin: tokio::sync::Mutex<()>,
    home: tokio::sync::OnceCell<String>,
}

impl fmt::Debug for NewtConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewtConnector")
            .field("host", &self.label)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("session", &"<redacted>")
            .finish()
    }
}

/// Options for a [`NewtConnector`] before logging in: extra trusted certificates, timeouts.
#[derive(Debug)]
pub struct NewtBuilder {
    base: String,
    machine: String,
    roots: Vec<reqwest::Certificate>,
    connect_timeout: Duration,
    allow_plain_http: bool,
    error: Option<ConnectorError>,
}

impl NewtBuilder {
    /// Also trust the CA (or self-signed) certificates in this PEM data.
    pub fn root_certificates_pem(mut self, pem: &[u8]) -> Self {
        match reqwest::Certificate::from_pem_bundle(pem) {
            Ok(certs) => self.roots.extend(certs),
            Err(e) => {
                self.error = Some(
                    ConnectorError::new(Kind::InvalidInput, &self.base, "load root certificates")
                        .detail(e),
                )
            }
        }
        self
    }

    /// Allow a plain `http://` base URL to a host that is not loopback (default: refused,
    /// since the password and the session id would cross the network unencrypted). Only
    /// for networks you trust; `https://` needs no such permission.
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// How long to wait for a TCP + TLS connection (default 15 s).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    fn build(
        self,
        user: Option<&str>,
        password: Option<&str>,
        token: String,
    ) -> Result<NewtConnector, ConnectorError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let bad =
            |d: String| ConnectorError::new(Kind::InvalidInput, &self.base, "connect").detail(d);
        let url = reqwest::Url::parse(&self.base).map_err(|e| bad(format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err(bad(
                "the base URL must be http(s)://HOST[:PORT][/PATH]".into()
            ));
        }
        if self.machine.is_empty() {
            return Err(bad("the machine name is empty".into()));
        }
        if url.scheme() == "http" && !self.allow_plain_http && !is_loopback(&url) {
            return Err(bad(format!(
                "plain http:// to {} would send the password and session id unencrypted",
                url.host_str().unwrap_or("")
            ))
            .hint(
                "use https:// (newt+https://); to allow plain HTTP on a trusted network, \
                 set SREMOTE_NEWT_ALLOW_HTTP=1 (NewtBuilder::allow_plain_http(true))",
            ));
        }
        // ring is this crate's rustls provider; ignore an already installed one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = Client::builder()
            .redirect(redirect_policy())
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .tls_certs_merge(self.roots)
            .build()
            .map_err(|e| bad(format!("cannot build the HTTP client: {e}")))?;
        let authority = url
            .port()
            .map(|p| format!("{}:{p}", url.host_str().unwrap_or("")))
            .unwrap_or_else(|| url.host_str().unwrap_or("").to_string());
        let at = user.map(|u| format!("{u}@")).unwrap_or_default();
        let label = format!(
            "newt+{}://{at}{authority}{}/{}",
            url.scheme(),
            url.path().trim_end_matches('/'),
            self.machine
        );
        Ok(NewtConnector {
            http,
            base: self.base.trim_end_matches('/').to_string(),
            machine: self.machine,
            label,
            user: user.map(str::to_string),
            password: password.map(|p| Secret(p.to_string())),
            session: RwLock::new(Session {
                token,
                generation: 0,
            }),
            relogin: tokio::sync::Mutex::new(()),
            home: tokio::sync::OnceCell::new(),
        })
    }

    /// Log in with a user name and password; the password is kept to renew the session.
    pub async fn login(self, user: &str, password: &str) -> Result<NewtConnector, ConnectorError> {
        let c = self.build(Some(user), Some(password), String::new())?;
        c.renew(0).await?;
        Ok(c)
    }

    /// Use an existing session id (or a gateway bearer token); no password is held, so an
    /// expired session gives an `Auth` error.
    pub fn with_session(self, token: &str) -> Result<NewtConnector, ConnectorError> {
        self.build(None, None, token.to_string())
    }
}

/// Whether the URL's host is a loopback address (or `localhost`).
fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Redirects: never for a login (the form carries the password), never to another origin
/// (scheme, host and port), at most 5. A redirect not followed is answered as an error.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.stop();
        };
        let path = first.path().trim_end_matches('/');
        let login = path.ends_with("/auth") || path.ends_with("/login");
        let same_origin = first.origin() == attempt.url().origin();
        if login || !same_origin || attempt.previous().len() > 5 {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

impl NewtConnector {
    /// Options before logging in. `base_url` is the API root, e.g. `https://gw.example.org/newt`.
    pub fn builder(base_url: &str, machine: &str) -> NewtBuilder {
        NewtBuilder {
            base: base_url.to_string(),
            machine: machine.to_string(),
            roots: Vec::new(),
            connect_timeout: Duration::from_secs(15),
            allow_plain_http: false,
            error: None,
        }
    }

    /// Log in to `machine` at `base_url` as `user`.
    pub async fn login(
        base_url: &str,
        machine: &str,
        user: &str,
        password: &str,
    ) -> Result<Self, ConnectorError> {
        Self::builder(base_url, machine).login(user, password).await
    }

    /// Reach `machine` at `base_url` with an existing session id or bearer token.
    pub fn with_session(
        base_url: &str,
        machine: &str,
        token: &str,
    ) -> Result<Self, ConnectorError> {
        Self::builder(base_url, machine).with_session(token)
    }

    /// End the session on the server (`DELETE /auth`).
    pub async fn logout(&self) -> Result<(), ConnectorError> {
        let url = format!("{}/auth", self.base);
        let resp = self.send("logout", false, |c| Ok(c.delete(&url))).await?;
        self.check("logout", resp).await.map(drop)
    }

    fn err(&self, kind: Kind, action: &str) -> ConnectorError {
        ConnectorError::new(kind, &self.label, action)
    }

    fn current(&self) -> (String, u64) {
        let s = self.session.read().unwrap_or_else(|p| p.into_inner());
        (s.token.clone(), s.generation)
    }

    /// Log in again unless another task already did since `seen` generation.
    async fn renew(&self, seen: u64) -> Result<(), ConnectorError> {
        let _one_at_a_time = self.relogin.lock().await;
        if self.current().1 != seen {
            return Ok(());
        }
        let (Some(user), Some(password)) = (&self.user, &self.password) else {
            return Err(self
                .err(Kind::Auth, "authenticate")
                .detail("the session has expired or is not valid")
                .hint(
                    "log in again with a password (NewtConnector::login) or get a new session id",
                ));
        };
        let action = format!("log in as {user}");
        let form = [
            ("username", user.as_str()),
            ("password", password.0.as_str()),
        ];
        let resp = self
            .http
            .post(format!("{}/auth", self.base))
            .form(&form)
            .send()
            .await
            .map_err(|e| network_error(&self.label, &action, &e))?;
        let cookie = resp.headers().get_all(SET_COOKIE).iter().find_map(|v| {
            let v = v.to_str().ok()?.strip_prefix("newt_sessionid=")?;
            Some(v.split(';').next()?.to_string())
        });
        let resp = self.check(&action, resp).await?;
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| read_error(&self.label, &action, &e))?;
        let token = body["newt_sessionid"]
            .as_str()
            .map(str::to_string)
            .or(cookie)
            .filter(|t| !t.is_empty());
        let (true, Some(token)) = (body["auth"].as_bool() == Some(true), token) else {
            return Err(self
                .err(Kind::Auth, &action)
                .detail("the server did not accept the login")
                .hint("check the user name and password"));
        };
        if let Some(home) = body["home"].as_str() {
            let _ = self.home.set(home.to_string());
        }
        let mut s = self.session.write().unwrap_or_else(|p| p.into_inner());
        *s = Session {
            token,
            generation: s.generation + 1,
        };
        Ok(())
    }

    /// Send a request with the session cookie; renew the session once on 401 (when a
    /// password is held); retry idempotent requests on connection failures and 502/503.
    async fn send(
        &self,
        action: &str,
        idempotent: bool,
        make: impl Fn(&Client) -> Result<RequestBuilder, ConnectorError>,
    ) -> Result<Response, ConnectorError> {
        let (mut renewed, mut attempt) = (false, 0);
        loop {
            let (token, generation) = self.current();
            let req = make(&self.http)?.header(COOKIE, format!("newt_sessionid={token}"));
            match req.send().await {
                Ok(r)
                    if r.status() == StatusCode::UNAUTHORIZED
                        && !renewed
                        && self.password.is_some() =>
                {
                    self.renew(generation).await?;
                    renewed = true;
                    continue;
                }
                Ok(r)
                    if idempotent
                        && attempt < RETRIES
                        && matches!(r.status().as_u16(), 502 | 503) => {}
                Ok(r) => return Ok(r),
                Err(e) if idempotent && attempt < RETRIES && e.is_connect() => {}
                Err(e) => return Err(network_error(&self.label, action, &e)),
            }
            // A retry of an idempotent request, after a short backoff.
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
    }

    /// Pass a successful response; turn an error status into a typed error.
    async fn check(&self, action: &str, resp: Response) -> Result<Response, ConnectorError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(http::status_error(&self.label, action, resp).await)
    }

    /// The home directory on the host (relative paths are relative to it).
    async fn home(&self) -> Result<&str, ConnectorError> {
        let home = self
            .home
            .get_or_try_init(|| async {
                let url = format!("{}/auth", self.base);
                if let Ok(resp) = self
                    .send("find the home directory", true, |c| Ok(c.get(&url)))
                    .await
                    && let Ok(body) = resp.json::<serde_json::Value>().await
                    && let Some(home) = body["home"].as_str()
                {
                    return Ok(home.to_string());
                }
                let out = self
                    .exec(&RemoteCommand::new("printenv").arg("HOME"))
                    .await?;
                let home = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if !out.success() || !home.starts_with('/') {
                    return Err(self
                        .err(Kind::Other, "find the home directory")
                        .detail("`printenv HOME` failed"));
                }
                Ok(home)
            })
            .await?;
        Ok(home)
    }

    /// The URL of a file: relative paths in the home, every segment percent-encoded.
    async fn file_url(&self, path: &str, action: &str) -> Result<String, ConnectorError> {
        let bad = |d: &str| self.err(Kind::InvalidInput, action).detail(d.to_string());
        if path.contains('\0') {
            return Err(bad("the path contains a NUL byte"));
        }
        let abs = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{path}", self.home().await?)
        };
        let mut url = format!("{}/file/{}", self.base, http::encode(&self.machine));
        for seg in abs.split('/').filter(|s| !s.is_empty() && *s != ".") {
            if seg == ".." {
                return Err(bad(
                    "paths with `..` cannot be sent through the NEWT API; give a normalised path",
                ));
            }
            url.push('/');
            url.push_str(&http::encode(seg));
        }
        Ok(url)
    }
}

#[async_trait]
impl Connector for NewtConnector {
    fn host(&self) -> &str {
        &self.label
    }

    fn reach(&self) -> Option<sremote_core::Reach> {
        // The label is the `newt+http(s)://USER@GATEWAY/BASE/MACHINE` URL itself.
        Some(sremote_core::Reach::newt(&self.label))
    }

    fn supports_stdin(&self) -> bool {
        false
    }

    async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError> {
        let action = format!("exec {}", cmd.program);
        cmd.validate(&self.label)?;
        if cmd.stdin.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(
                ConnectorError::unsupported(&self.label, "stdin", &cmd.program)
                    .hint("the NEWT API has no stdin: push the input to a file and pass its path"),
            );
        }
        let line = quote::command_line(cmd)
            .map_err(|d| self.err(Kind::InvalidInput, &action).detail(d))?;
        let url = format!("{}/command/{}", self.base, http::encode(&self.machine));
        let mut form = vec![("executable", line)];
        if let Some(t) = cmd.timeout {
            form.push(("timeout", format!("{:.3}", t.as_secs_f64().max(0.001))));
        }
        let resp = self
            .send(&action, false, |c| {
                let req = c.post(&url).form(&form);
                Ok(match cmd.timeout {
                    Some(t) => req.timeout(t + GRACE),
                    None => req,
                })
            })
            .await?;
        let resp = self.check(&action, resp).await?;
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| read_error(&self.label, &action, &e))?;
        let out = http::exec_output(&body).ok_or_else(|| {
            self.err(Kind::Other, &action)
                .detail("the answer has no `output`/`error` text")
                .hint("is this a NEWT API?")
        })?;
        if quote::needs_env(cmd)
            && out.exit_code == Some(125)
            && out.stderr.starts_with(b"env: cannot change directory")
        {
            return Err(self
                .err(Kind::NotFound, &action)
                .detail(out.stderr_text())
                .hint("create the directory or pass another cwd"));
        }
        Ok(out)
    }

    async fn push(&self, from: Source<'_>, to: &str) -> Result<(), ConnectorError> {
        let action = push_action(&from, to);
        let local = |e: std::io::Error| {
            ConnectorError::io(&self.label, &action, &e).hint("check the local file")
        };
        let src = OpenSource::open(&from, &self.label, &action)?;
        let (len, mode) = (src.size, src.mode);
        let bytes = src
            .file
            .is_none()
            .then(|| Bytes::copy_from_slice(src.bytes));
        // A scratch file need not be fsynced by the gateway before it answers.
        let durable = if from.scratch { "&fsync=0" } else { "" };
        let url = format!(
            "{}?mode={mode:o}{durable}",
            self.file_url(to, &action).await?
        );
        let sent = Arc::new(AtomicU64::new(0));
        let make = |c: &Client| {
            let sent = sent.clone();
            sent.store(0, Ordering::Relaxed); // a retry starts again
            let count = move |chunk: &std::io::Result<Bytes>| {
                if let Ok(b) = chunk {
                    sent.fetch_add(b.len() as u64, Ordering::Relaxed);
                }
            };
            let body = match (&bytes, from.data) {
                (Some(b), _) => {
                    let chunks: Vec<std::io::Result<Bytes>> = (0..b.len())
                        .step_by(1 << 20)
                        .map(|i| Ok(b.slice(i..b.len().min(i + (1 << 20)))))
                        .collect();
                    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks).inspect(count))
                }
                (None, SourceData::File(p)) => {
                    let file = std::fs::File::open(p).map_err(local)?;
                    let stream = tokio_util::io::ReaderStream::with_capacity(
                        tokio::fs::File::from_std(file),
                        256 << 10,
                    );
                    reqwest::Body::wrap_stream(stream.inspect(count))
                }
                (None, SourceData::Bytes(_)) => unreachable!("bytes are copied above"),
            };
            Ok(c.put(&url).header(CONTENT_LENGTH, len).body(body))
        };
        let position = || sent.load(Ordering::Relaxed);
        let resp = with_progress(self.send(&action, true, make), from.progress, position).await?;
        from.progress.inspect(|p| p(position()));
        self.check(&action, resp).await.map(drop)
    }

    async fn pull(&self, from: &str, to: Dest<'_>) -> Result<(), ConnectorError> {
        let action = pull_action(from, &to);
        let url = format!("{}?view=read", self.file_url(from, &action).await?);
        let resp = self.send(&action, true, |c| Ok(c.get(&url))).await?;
        let resp = self.check(&action, resp).await?;
        let header = |name: &str| resp.headers().get(name)?.to_str().ok().map(str::to_string);
        let mode = header(newt::MODE_HEADER)
            .and_then(|v| u32::from_str_radix(&v, 8).ok())
            .unwrap_or(0o644);
        let mtime = header(newt::MTIME_HEADER)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
        let expected = resp.content_length();
        let local = |e: std::io::Error| ConnectorError::io(&self.label, &action, &e);
        let part = PartFile::create(to.path).map_err(local)?;
        let mut file = tokio::fs::File::from_std(part.file().try_clone().map_err(local)?);
        let mut stream = resp.bytes_stream();
        let mut done = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| read_error(&self.label, &action, &e))?;
            file.write_all(&chunk).await.map_err(local)?;
            done += chunk.len() as u64;
            to.progress.inspect(|p| p(done));
        }
        if expected.is_some_and(|n| n != done) {
            return Err(self
                .err(Kind::Disconnected, &action)
                .detail(format!("got {done} of {expected:?} bytes")));
        }
        file.flush().await.map_err(local)?;
        drop(file);
        part.finish(Some(mode), mtime).map_err(local)?;
        Ok(())
    }
}
