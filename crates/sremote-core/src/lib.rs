//! # sremote-core
//!
//! Run functions and commands on other machines and get back typed values, output and
//! errors.
//!
//! - [`Connector`] — the three operations a transport implements (exec, push, pull).
//!   [`connector`] also holds the contract and the pieces to build one with
//!   ([`connector::support`], [`connector::script`], [`CommandTransport`](connector::CommandTransport)).
//! - [`LocalConnector`] — this machine, no setup.
//! - [`RemoteClient`] — serialises calls, deploys the endpoint, decodes typed results.
//! - [`protocol`] — the JSON wire format shared with the endpoint.
//! - [`Error`] — one error type, matched by variant.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sremote_core::Error> {
//! use sremote_core::{args, LocalConnector, RemoteClient};
//! let client = RemoteClient::new(LocalConnector::new());
//! let out = client.do_remote_call::<String>("os", "getenv", args!["HOME"]).await?;
//! println!("{} (took {} µs on {})", out.value, out.meta.timing.elapsed_us, out.meta.host);
//! # Ok(()) }
//! ```
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]

pub mod protocol;
pub use protocol::Blob;

mod error;
pub use error::{
    ConnectorError, ConnectorErrorKind, DecodeError, Error, ModulesMissingError, NotSetupError,
    ProtocolError, RemoteExecError, SetupError, UsageError,
};

#[cfg(feature = "client")]
pub mod connector;
#[cfg(feature = "client")]
pub use connector::{
    Connector, Dest, ExecOutput, RemoteCommand, RemotePath, RemoteProcess, Source,
};

#[cfg(feature = "client")]
mod exec_to;
#[cfg(feature = "client")]
pub use exec_to::exec_to;
#[cfg(feature = "client")]
mod local;
#[cfg(feature = "client")]
mod reach;
#[cfg(feature = "client")]
pub use local::LocalConnector;
#[cfg(feature = "client")]
pub use reach::Reach;

pub mod civil;
pub mod frame;
pub mod newt;
pub mod setup;
pub mod units;
pub use setup::Setup;
pub mod shell;

#[cfg(test)]
fn testsuite_strings() -> Vec<String> {
    [
        "", " ", "a b", "'", "\"", "\\", "$HOME", "$(id)", "`id`", ";", "|", "&", "*", "~", "\n",
        "\t", "é🦀", "-n", "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[cfg(feature = "client")]
mod session;

#[cfg(feature = "client")]
mod answer;
#[cfg(feature = "client")]
mod call;
#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
mod pipe;
#[cfg(feature = "client")]
pub use client::{
    AsyncCall, CallArgs, CallBuilder, CallCanceller, CallMeta, CallMode, CallOutput, CallWait, Ref,
    RemoteClient,
};

#[cfg(feature = "client")]
mod pool;
#[cfg(feature = "client")]
pub use pool::{HostPool, HostResult};

#[cfg(feature = "client")]
mod install;
#[cfg(feature = "client")]
pub mod ship;
#[cfg(feature = "client")]
pub use install::InstallReport;
#[cfg(feature = "client")]
mod venv;
#[cfg(feature = "client")]
pub use venv::{VENV_ENV, VenvInfo, valid_venv_name};

#[cfg(feature = "client")]
pub mod bootstrap;
#[cfg(feature = "client")]
mod trust;
#[cfg(feature = "client")]
pub use bootstrap::{BootstrapReport, EndpointArtifact, EndpointSource};

#[cfg(feature = "testsuite")]
pub mod testsuite;

/// Build call arguments from expressions that implement `Serialize`:
/// `args!["HOME"]`, `args![1, 2.5, vec![1, 2]]`. A value that cannot be represented as
/// JSON makes the call fail with [`Error::Usage`]; nothing panics.
#[cfg(feature = "client")]
#[macro_export]
macro_rules! args {
    () => { $crate::CallArgs(::std::result::Result::Ok(::std::vec::Vec::new())) };
    ($($x:expr),+ $(,)?) => {
        $crate::CallArgs((|| -> ::std::result::Result<::std::vec::Vec<$crate::__private::Value>, ::std::string::String> {
            ::std::result::Result::Ok(::std::vec![$($crate::__private::to_value(&$x).map_err(|e| e.to_string())?),+])
        })())
    };
}

#[doc(hidden)]
pub mod __private {
    pub use serde_json::{Value, to_value};
}
