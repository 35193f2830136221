//! [`Endpoint`]: the module registry (built-in, registered) and what it lists. The
//! dispatcher is in `dispatch.rs`, the command line in `cli.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use sremote_core::protocol::VERSION;

use crate::location::Location;
use crate::module::{Module, ModuleBuilder, ModuleKind, valid_name};

/// An endpoint: a set of modules, and the dispatcher that runs call requests on them.
///
/// Cheap to clone (the registry is shared) and `Send + Sync`: [`Endpoint::handle`] may be
/// called from several threads at once.
///
/// ```no_run
/// fn add(a: i64, b: i64) -> i64 { a + b }
/// fn main() {
///     sremote_endpoint::Endpoint::with_builtins()
///         .module("calc", |m| m.function("add", add).params(&["a", "b"]))
///         .run()
/// }
/// ```
#[derive(Clone)]
pub struct Endpoint {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Clone, Default)]
pub(crate) struct Inner {
    pub(crate) modules: BTreeMap<String, Module>,
    sremote_dir: Option<PathBuf>,
    /// Discovered once for a long-lived endpoint (session mode): no file reads per call.
    pub(crate) fixed_location: Option<Location>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("modules", &self.inner.modules.keys().collect::<Vec<_>>())
            .field("sremote_dir", &self.inner.sremote_dir)
            .finish()
    }
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint::new()
    }
}

impl Endpoint {
    /// An endpoint with no modules.
    pub fn new() -> Self {
        Endpoint {
            inner: Arc::new(Inner::default()),
        }
    }

    /// Add functions to module `name` (creating it). Calling it again for the same name,
    /// or for a built-in module, adds to that module; a function of the same name is
    /// replaced.
    ///
    /// # Panics
    /// If `name` is not a valid module name (`[A-Za-z0-9_.-]`, not starting with `.`).
    pub fn module<R>(self, name: &str, build: impl FnOnce(&mut ModuleBuilder) -> R) -> Self {
        self.add_module(name, ModuleKind::Custom, build)
    }

    pub(crate) fn add_module<R>(
        mut self,
        name: &str,
        kind: ModuleKind,
        build: impl FnOnce(&mut ModuleBuilder) -> R,
    ) -> Self {
        assert!(
            valid_name(name),
            "invalid module name {name:?}: use [A-Za-z0-9_.-], not starting with '.'"
        );
        let inner = Arc::make_mut(&mut self.inner);
        let existing = inner.modules.get(name);
        let kind = existing.map_or(kind, |m| m.kind);
        let mut builder = ModuleBuilder::from_module(existing);
        drop(build(&mut builder));
        inner.modules.insert(name.to_string(), builder.finish(kind));
        self
    }

    /// Use `dir` as the sremote dir (plugins in `dir/modules`, tmp in `dir/tmp`) instead
    /// of discovering it on each call (see [`Location::discover`]).
    pub fn sremote_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        Arc::make_mut(&mut self.inner).sremote_dir = Some(dir.into());
        self
    }

    /// Discover the location now and keep it for every later call (session mode).
    pub(crate) fn fix_location(mut self) -> Self {
        let loc = self.location();
        Arc::make_mut(&mut self.inner).fixed_location = Some(loc);
        self
    }

    /// Where this endpoint's files are.
    pub fn location(&self) -> Location {
        if let Some(loc) = &self.inner.fixed_location {
            return loc.clone();
        }
        match &self.inner.sremote_dir {
            Some(dir) => Location::for_dir(dir),
            None => Location::discover(),
        }
    }

    /// Names of the built-in and registered modules.
    pub fn module_names(&self) -> Vec<String> {
        self.inner.modules.keys().cloned().collect()
    }

    /// `module.function(a: int) -> int`, if the function is registered.
    pub fn signature(&self, module: &str, function: &str) -> Option<String> {
        let f = self.inner.modules.get(module)?.functions.get(function)?;
        Some(format!("{module}.{function}{}", f.signature()))
    }

    /// The module listing as JSON: `{"modules": [{"name", "kind", "version", "doc",
    /// "functions": [{"name", "signature", "doc"}]}]}`; plugins are listed with kind
    /// `"plugin"` and no functions (a plugin dispatches by itself). `"python": {"interpreter",
    /// "doc"}` describes the Python bridge (`interpreter` is `null` when the host has none).
    pub fn modules_json(&self) -> Value {
        let mut list: Vec<Value> = self
            .inner
            .modules
            .iter()
            .map(|(name, m)| {
                let functions: Vec<Value> = m
                    .functions
                    .iter()
                    .map(|(fname, f)| {
                        json!({ "name": fname, "signature": format!("{name}.{fname}{}", f.signature()), "doc": f.doc })
                    })
                    .collect();
                json!({
                    "name": name,
                    "kind": m.kind.as_str(),
                    "version": m.version.clone().unwrap_or_else(|| VERSION.to_string()),
                    "doc": m.doc,
                    "functions": functions,
                })
            })
            .collect();
        let location = self.location();
        for plugin in location.plugins() {
            if !self.inner.modules.contains_key(&plugin) {
                let path = location.modules.join(&plugin);
                list.push(
                    json!({ "name": plugin, "kind": "plugin", "path": path, "functions": [] }),
                );
            }
        }
        json!({ "modules": list, "python": crate::python::listing(&location) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn endpoint_is_send_sync_and_cheap_to_clone() {
        assert_send_sync::<Endpoint>();
        let e = Endpoint::new().module("m", |m| m.function("f", || 1));
        let copy = e.clone();
        assert!(Arc::ptr_eq(&e.inner, &copy.inner));
    }
}
