//! # sremote-hosts
//!
//! What names a host, shared by every front end (the `sremote` command, the Python
//! package): the hosts config ([`config`], `~/.config/sremote/config.toml`) and the
//! connection of one resolved host ([`connect`]): `local`, an ssh destination
//! (`user@host`, `ssh://user@host:port`, an alias), a `newt+https://…` URL, or a name
//! from the config.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sremote_core::Error> {
//! let cfg = sremote_hosts::config::Config::load(None)?;
//! let spec = cfg.host("gpu1"); // a configured host, else an ssh destination
//! let conn = sremote_hosts::connect::connect(&spec, None, &sremote_hosts::connect::NewtAuth::from_env()).await?;
//! let client = conn.client();
//! # Ok(()) }
//! ```

pub mod config;
pub mod connect;
pub mod needs;
pub mod place;
