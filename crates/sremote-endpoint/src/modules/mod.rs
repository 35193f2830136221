//! The built-in modules: `os`, `fs`, `subprocess`, `sys` (pure Rust, no Python).
//!
//! Errors from the operating system are reported as kind `Raised` with a message naming
//! the function, the path and the OS error, e.g.
//! `os.remove("/x"): No such file or directory (os error 2)`.

use crate::endpoint::Endpoint;
use crate::module::ModuleKind;

pub(crate) mod fs;
pub(crate) mod os;
pub(crate) mod subprocess;
pub(crate) mod sys;

impl Endpoint {
    /// An endpoint with the built-in modules `os`, `fs`, `subprocess` and `sys`.
    pub fn with_builtins() -> Self {
        Endpoint::new()
            .add_module("os", ModuleKind::Builtin, os::register)
            .add_module("fs", ModuleKind::Builtin, fs::register)
            .add_module("subprocess", ModuleKind::Builtin, subprocess::register)
            .add_module("sys", ModuleKind::Builtin, sys::register)
    }
}
