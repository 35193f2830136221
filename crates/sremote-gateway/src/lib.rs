//! # sremote-gateway
//!
//! A server that speaks the NEWT REST API (the subset `sremote-rest`'s `NewtConnector` uses)
//! on a host: users with argon2 password hashes, sessions that expire, optional bearer
//! tokens, commands run as the gateway's OS user without a shell, files confined to
//! configured roots, size and time limits, TLS (rustls) or plain HTTP on loopback only.
//!
//! | route | what |
//! |---|---|
//! | `POST /auth` (form `username`, `password`) | log in: JSON `{auth, username, session_lifetime, newt_sessionid, home}` and cookie `newt_sessionid` |
//! | `GET /auth`, `DELETE /auth` | session status (`{"auth": true\|false, …}`), log out |
//! | `POST /command/<machine>` (form `executable`, optional `timeout` seconds) | `{output, error, status, exit_code, signal}`; 504 on timeout |
//! | `GET /file/<machine>/<path>?view=read` | a regular file's bytes; `X-Sremote-Mode`: its mode without setuid/setgid/sticky (octal), `X-Sremote-Mtime`: its modification time (whole seconds since the epoch) |
//! | `GET /file/<machine>/<path>` | listing JSON |
//! | `PUT /file/<machine>/<path>[?mode=755]` | write the raw body atomically, parents created, mode masked to `0o777` |
//! | `DELETE /file/<machine>/<path>` | remove a file or an empty directory |
//!
//! The `X-Sremote-*` headers, the `exit_code`/`signal` answer fields and the `timeout`,
//! `mode` and `fsync` parameters are sremote's extensions of NEWT; the header names are
//! shared with the client in [`sremote_core::newt`].
//!
//! `/login` is another name of `/auth`, and every route also answers with a trailing slash.
//! Errors are JSON `{"status": "ERROR", "error": message, "code": code}` with 401, 403,
//! 404, 405, 413, 422, 429, 500 or 504. See [`config`] for the configuration file.
//!
//! Hardening: file paths are opened beneath the roots' directory handles ([`beneath`],
//! [`paths`]); logins are throttled per user name counting attempts before checking them
//! ([`throttle`]); connections are capped and timed out before any HTTP is parsed
//! ([`conn`]); a users file others can write is refused ([`users::check_permissions`]).

#![warn(missing_docs)]

pub mod auth;
pub mod beneath;
pub mod command;
pub mod config;
pub mod conn;
pub mod error;
pub mod files;
pub mod log;
pub mod paths;
pub mod server;
pub mod state;
pub mod throttle;
pub mod users;

pub use config::Config;
pub use error::{ApiError, GatewayError};
