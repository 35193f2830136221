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
//! | `GET /auth`, `DELETE /auth` | session status, log out |
//! | `POST /command/<machine>` (form `executable`, optional `timeout` seconds) | `{output, error, status, exit_code, signal}`; 504 on timeout |
//! | `GET /file/<machine>/<path>?view=read` | the file's bytes (`X-Sremote-Mode`: its mode) |
//! | `GET /file/<machine>/<path>` | listing JSON |
//! | `PUT /file/<machine>/<path>[?mode=755]` | write the raw body atomically, parents created |
//! | `DELETE /file/<machine>/<path>` | remove a file or an empty directory |
//!
//! Errors are JSON `{"status": "ERROR", "error": message, "code": code}` with 401, 403,
//! 404, 413, 422, 500 or 504. See [`config`] for the configuration file.

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
