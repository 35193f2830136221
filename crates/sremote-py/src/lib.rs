//! `sremote._sremote`: the native part of the Python package `sremote`, a binding over
//! the Rust client (`sremote-core`), the connectors (`sremote-ssh`, `sremote-rest`,
//! local) and the host syntax and hosts config (`sremote-hosts`) the CLI uses.
//!
//! The pure-Python modules in `python/sremote/` add what reads better in Python (`map`,
//! `acall`, the namespace helpers, the original sremote API in `sremote.api`).
//! Waiting always releases the GIL; a panic becomes a Python exception (PyO3).

mod asyncres;
mod client;
mod connectors;
mod errors;
mod jobs;
mod ops;
mod placement;
mod runtime;
mod values;

use pyo3::prelude::*;

#[pymodule]
fn _sremote(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::Reference>()?;
    m.add_class::<asyncres::AsyncResult>()?;
    m.add_class::<asyncres::CallOutput>()?;
    m.add_class::<ops::ExecResult>()?;
    m.add_class::<connectors::PyConnector>()?;
    m.add_class::<connectors::PyLocalConnector>()?;
    m.add_class::<connectors::PySshConnector>()?;
    m.add_class::<connectors::PyNewtConnector>()?;
    jobs::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
