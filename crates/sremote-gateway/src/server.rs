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
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

use crate::auth::LogUser;
use crate::config::Config;
use crate::error::GatewayError;
use crate::state::AppState;
use crate::{auth, command, files, log};

/// Every route, under the configured base path, with the access log.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route(
            "/auth",
            post(auth::login).get(auth::status).delete(auth::logout),
        )
        .route("/command/{machine}", post(command::handler))
        .route(
            "/file/{machine}/{*path}",
            get(files::get).put(files::put).delete(files::delete),
        )
        .layer(DefaultBodyLimit::max(state.config.limits.max_form_bytes));
    let app = if state.config.base_path.is_empty() {
        api
    } else {
        Router::new().nest(&state.config.base_path, api)
    };
    app.layer(middleware::from_fn(access_log)).with_state(state)
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

/// Bind, print `listening on URL`, and serve until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<(), GatewayError> {
    // ring is this crate's rustls provider; a second install (tests) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let state = Arc::new(AppState::new(config)?);
    let cfg = &state.config;
    let listener = std::net::TcpListener::bind(cfg.listen)
        .map_err(|e| GatewayError::Serve(format!("cannot listen on {}: {e}", cfg.listen)))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| GatewayError::Serve(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| GatewayError::Serve(e.to_string()))?;
    let handle: Handle<SocketAddr> = Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
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
    });
    let server = axum_server::from_tcp(listener)
        .map_err(|e| GatewayError::Serve(e.to_string()))?
        .handle(handle);
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let banner = format!(
        "listening on {scheme}://{addr}{} (machines: {}; roots: {}; {} users)",
        cfg.base_path,
        cfg.machines.join(", "),
        cfg.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        state.users.current().len()
    );
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
            let acceptor = RustlsAcceptor::new(rustls).acceptor(NoDelayAcceptor::new());
            server.acceptor(acceptor).serve(app).await
        }
        None => {
            plain_http_warning(addr);
            log::event(&banner);
            server.acceptor(NoDelayAcceptor::new()).serve(app).await
        }
    };
    result.map_err(|e| GatewayError::Serve(format!("serving failed: {e}")))
}
