//! The router, the access log, and serving over TLS or loopback plain HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

use crate::auth::LogUser;
use crate::config::Config;
use crate::conn::{ConnLimiter, LimitAcceptor};
use crate::error::{ApiError, GatewayError};
use crate::state::AppState;
use crate::{auth, command, files, log};

/// Every route, under the configured base path, with the access log. Each route also
/// answers with a trailing slash; `/login` is another name of `/auth` (as in NEWT).
pub fn router(state: Arc<AppState>) -> Router {
    let limits = &state.config.limits;
    // Login forms are tiny: a small body limit keeps unauthenticated requests cheap.
    let login = post(auth::login)
        .get(auth::status)
        .delete(auth::logout)
        .layer(DefaultBodyLimit::max(limits.max_auth_bytes));
    let command = post(command::handler).layer(DefaultBodyLimit::max(limits.max_form_bytes));
    let file = get(files::get).put(files::put).delete(files::delete);
    let mut api = Router::new();
    for path in ["/auth", "/auth/", "/login", "/login/"] {
        api = api.route(path, login.clone());
    }
    let api = api
        .route("/command/{machine}", command.clone())
        .route("/command/{machine}/", command)
        .route("/file/{machine}", file.clone())
        .route("/file/{machine}/", file.clone())
        .route("/file/{machine}/{*path}", file)
        .fallback(no_route)
        .method_not_allowed_fallback(no_method);
    let app = if state.config.base_path.is_empty() {
        api
    } else {
        Router::new().nest(&state.config.base_path, api)
    };
    app.fallback(no_route)
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

/// A known route with another method: JSON too.
async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Unknown routes get a JSON error too: NEWT clients parse every answer.
async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {}: the API has /auth (or /login), /command/<machine>, /file/<machine>/<path>",
        uri.path()
    ))
}

async fn access_log(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let user = LogUser::default();
    req.extensions_mut().insert(user.clone());
    let resp = next.run(req).await;
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    log::access(
        &method,
        &path,
        resp.status().as_u16(),
        bytes,
        start.elapsed(),
        user.0.get().map(String::as_str),
    );
    resp
}

fn plain_http_warning(addr: SocketAddr) {
    let bar = "!".repeat(78);
    eprintln!(
        "{bar}\n!! WARNING: sremote-gateway serves PLAIN HTTP on {addr} (no [tls] configured).\n\
         !! Passwords and session ids cross the connection unencrypted. This is allowed\n\
         !! only on a loopback address; add a [tls] section before exposing the gateway.\n{bar}"
    );
}

/// File descriptors kept free for files, pipes and the users file beside connections.
const SPARE_FDS: u64 = 64;

/// Raise the open-files limit to its hard limit, and fit the connection cap under it.
fn connection_cap(configured: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let raised = rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            lim = raised;
        }
    }
    let Some(fds) = lim.current else {
        return configured;
    };
    let fit = usize::try_from(fds.saturating_sub(SPARE_FDS).max(8)).unwrap_or(usize::MAX);
    if fit < configured {
        log::event(&format!(
            "limits.max_connections = {configured} lowered to {fit}: the open-files limit is \
             {fds} (raise it with `ulimit -n` to allow more)"
        ));
    }
    configured.min(fit)
}

/// A non-blocking listener on `listen` and the address it got.
fn bind(listen: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), GatewayError> {
    let fail = |e: std::io::Error| GatewayError::Serve(format!("cannot listen on {listen}: {e}"));
    let listener = std::net::TcpListener::bind(listen).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    let addr = listener.local_addr().map_err(fail)?;
    Ok((listener, addr))
}

/// Shut the server down gracefully (5 s for requests in flight) on SIGINT or SIGTERM.
async fn shut_down_on_signal(shutdown: Handle<SocketAddr>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    log::event("shutting down");
    shutdown.graceful_shutdown(Some(Duration::from_secs(5)));
}

/// The line logged once the server listens.
fn banner(state: &AppState, scheme: &str, addr: SocketAddr) -> String {
    let cfg = &state.config;
    let roots: Vec<String> = cfg.roots.iter().map(|r| r.display().to_string()).collect();
    format!(
        "listening on {scheme}://{addr}{} (machines: {}; roots: {}; {} users)",
        cfg.base_path,
        cfg.machines.join(", "),
        roots.join(", "),
        state.users.current().len()
    )
}

/// Bind, print `listening on URL`, and serve until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<(), GatewayError> {
    // ring is this crate's rustls provider; a second install (tests) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let state = Arc::new(AppState::new(config)?);
    let cfg = &state.config;
    let (listener, addr) = bind(cfg.listen)?;
    let handle: Handle<SocketAddr> = Handle::new();
    tokio::spawn(shut_down_on_signal(handle.clone()));
    let mut server = axum_server::from_tcp(listener)
        .map_err(|e| GatewayError::Serve(e.to_string()))?
        .handle(handle)
        .http1_only();
    // A request head must arrive within the timeout, after connecting and between requests
    // on a kept-alive connection (hyper starts the timer whenever it waits for a head).
    let header_timeout = Duration::from_secs_f64(cfg.limits.header_read_timeout_secs);
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    // hyper's timer starts with a head's first byte; the limiter closes silent connections.
    let limiter = ConnLimiter::new(connection_cap(cfg.limits.max_connections), header_timeout);
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let banner = banner(&state, scheme, addr);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        log::event(
            "WARNING: running as root: every user's commands and file operations run as root",
        );
    }
    let app = router(state.clone()).into_make_service();
    let result = match &state.config.tls {
        Some(tls) => {
            let rustls = RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .map_err(|e| {
                    GatewayError::Serve(format!(
                        "TLS cert {} / key {}: {e}",
                        tls.cert.display(),
                        tls.key.display()
                    ))
                })?;
            log::event(&banner);
            let tls = RustlsAcceptor::new(rustls).acceptor(DefaultAcceptor::new());
            server
                .acceptor(LimitAcceptor::new(limiter, tls))
                .serve(app)
                .await
        }
        None => {
            plain_http_warning(addr);
            log::event(&banner);
            server
                .acceptor(LimitAcceptor::new(limiter, DefaultAcceptor::new()))
                .serve(app)
                .await
        }
    };
    result.map_err(|e| GatewayError::Serve(format!("serving failed: {e}")))
}
