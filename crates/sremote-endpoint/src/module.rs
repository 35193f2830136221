//! Modules and their functions: [`ModuleBuilder`], [`FunctionBuilder`], [`Args`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::context::CallContext;
use crate::error::CallError;
use crate::function::{ArgFailure, IntoFunction, Param, TypedFn, bind, render_signature};

/// The arguments of a call as sent, for [raw](ModuleBuilder::raw) functions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: BTreeMap<String, Value>,
}

impl Args {
    /// Fail with `BadArguments` unless the call passed no arguments at all.
    pub fn expect_none(&self, signature: &str) -> Result<(), CallError> {
        if self.args.is_empty() && self.kwargs.is_empty() {
            Ok(())
        } else {
            Err(CallError::bad_arguments(format!(
                "takes no arguments; expected {signature}"
            )))
        }
    }
}

pub(crate) type RawFn = dyn Fn(&CallContext<'_>, Args) -> Result<Value, CallError> + Send + Sync;

#[derive(Clone)]
pub(crate) enum Imp {
    Typed(Arc<TypedFn>),
    Raw(Arc<RawFn>),
}

/// A registered function.
#[derive(Clone)]
pub(crate) struct FunctionDef {
    pub params: Vec<Param>,
    pub returns: String,
    /// Signature text after the name, e.g. `(a: int) -> int`; overrides the rendered one.
    pub signature: Option<String>,
    pub doc: Option<String>,
    pub imp: Imp,
}

impl FunctionDef {
    /// `(a: int, b: int) -> int`.
    pub fn signature(&self) -> String {
        self.signature
            .clone()
            .unwrap_or_else(|| render_signature(&self.params, &self.returns))
    }

    /// Bind the arguments and run the function.
    pub fn invoke(&self, ctx: &CallContext<'_>, args: Args) -> Result<Value, CallError> {
        match &self.imp {
            Imp::Raw(f) => f(ctx, args),
            Imp::Typed(f) => {
                let signature = Signature(ctx.module(), ctx.function(), self);
                let bound = bind(&self.params, args.args, args.kwargs, &signature)?;
                f(bound).map_err(|failure| match failure {
                    ArgFailure::Call(e) => e,
                    ArgFailure::Arg(i, why) => {
                        let (name, ty) = self
                            .params
                            .get(i)
                            .map(|p| (p.name.as_str(), p.ty.as_str()))
                            .unwrap_or(("?", "?"));
                        let signature = signature.to_string();
                        CallError::bad_arguments(format!(
                            "argument `{name}` does not fit type {ty}: {why}; expected {signature}"
                        ))
                        .with_data(serde_json::json!({ "signature": signature, "argument": name }))
                    }
                })
            }
        }
    }
}

/// `module.function(a: int) -> int`, rendered only when a message needs it (not for
/// every call).
struct Signature<'a>(&'a str, &'a str, &'a FunctionDef);

impl std::fmt::Display for Signature<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}{}", self.0, self.1, self.2.signature())
    }
}

/// Where a module comes from (shown by `modules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModuleKind {
    Builtin,
    Custom,
}

impl ModuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleKind::Builtin => "builtin",
            ModuleKind::Custom => "custom",
        }
    }
}

/// A registered module.
#[derive(Clone)]
pub(crate) struct Module {
    pub kind: ModuleKind,
    pub version: Option<String>,
    pub doc: Option<String>,
    pub functions: BTreeMap<String, FunctionDef>,
}

#[derive(Default)]
struct ModuleState {
    version: Option<String>,
    doc: Option<String>,
    /// In registration order; a later definition of a name replaces an earlier one.
    functions: Vec<(String, FunctionDef)>,
}

/// Adds functions to a module; handed to the closure of
/// [`Endpoint::module`](crate::Endpoint::module).
///
/// ```
/// fn add(a: i64, b: i64) -> i64 { a + b }
/// let endpoint = sremote_endpoint::Endpoint::new()
///     .module("calc", |m| m.function("add", add).params(&["a", "b"]).doc("Sum of two integers."));
/// assert_eq!(endpoint.signature("calc", "add").unwrap(), "calc.add(a: int, b: int) -> int");
/// ```
pub struct ModuleBuilder {
    state: Rc<RefCell<ModuleState>>,
}

impl std::fmt::Debug for ModuleBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.borrow();
        let names: Vec<&str> = state.functions.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ModuleBuilder")
            .field("functions", &names)
            .finish()
    }
}

/// Checks a module or function name: `[A-Za-z0-9_.-]+`, not starting with `.`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn assert_valid(what: &str, name: &str) {
    assert!(
        valid_name(name),
        "invalid {what} name {name:?}: use [A-Za-z0-9_.-], not starting with '.'"
    );
}

impl ModuleBuilder {
    pub(crate) fn from_module(module: Option<&Module>) -> Self {
        let state = match module {
            Some(m) => ModuleState {
                version: m.version.clone(),
                doc: m.doc.clone(),
                functions: m
                    .functions
                    .iter()
                    .map(|(n, f)| (n.clone(), f.clone()))
                    .collect(),
            },
            None => ModuleState::default(),
        };
        ModuleBuilder {
            state: Rc::new(RefCell::new(state)),
        }
    }

    pub(crate) fn finish(self, kind: ModuleKind) -> Module {
        let state = match Rc::try_unwrap(self.state) {
            Ok(cell) => cell.into_inner(),
            Err(shared) => std::mem::take(&mut *shared.borrow_mut()),
        };
        Module {
            kind,
            version: state.version,
            doc: state.doc,
            functions: state.functions.into_iter().collect(),
        }
    }

    fn push(&self, name: &str, def: FunctionDef) -> FunctionBuilder {
        assert_valid("function", name);
        let mut state = self.state.borrow_mut();
        state.functions.retain(|(n, _)| n != name);
        state.functions.push((name.to_string(), def));
        FunctionBuilder {
            state: Rc::clone(&self.state),
            index: state.functions.len() - 1,
        }
    }

    /// Register a typed Rust function (0 to 6 arguments) under `name`.
    ///
    /// Arguments are deserialized from the call's JSON arguments (positional first, then
    /// keyword by parameter name); the return value is serialized (see
    /// [`IntoCallResult`](crate::IntoCallResult)). Parameters are named `arg0`, `arg1`, …
    /// until [`FunctionBuilder::params`] names them. A parameter whose type accepts
    /// `null` (`Option<T>`) may be omitted.
    ///
    /// # Panics
    /// If `name` is not a valid function name (`[A-Za-z0-9_.-]`, not starting with `.`).
    pub fn function<M, F: IntoFunction<M>>(&mut self, name: &str, f: F) -> FunctionBuilder {
        let typed = f.into_typed();
        let params = typed
            .params
            .into_iter()
            .enumerate()
            .map(|(i, (ty, optional))| Param {
                name: format!("arg{i}"),
                ty,
                optional,
                default: None,
            })
            .collect();
        self.push(
            name,
            FunctionDef {
                params,
                returns: typed.returns,
                signature: None,
                doc: None,
                imp: Imp::Typed(typed.call),
            },
        )
    }

    /// Register a low-level function that receives the raw arguments and a
    /// [`CallContext`], and binds the arguments itself. `signature` is the text shown
    /// after the name, e.g. `"(path: str = \".\") -> list[str]"`.
    ///
    /// # Panics
    /// If `name` is not a valid function name.
    pub fn raw<F>(&mut self, name: &str, signature: &str, f: F) -> FunctionBuilder
    where
        F: Fn(&CallContext<'_>, Args) -> Result<Value, CallError> + Send + Sync + 'static,
    {
        self.push(
            name,
            FunctionDef {
                params: Vec::new(),
                returns: String::new(),
                signature: Some(signature.to_string()),
                doc: None,
                imp: Imp::Raw(Arc::new(f)),
            },
        )
    }

    /// The module's version, reported by `check_modules` (default: the endpoint's version).
    pub fn version(&mut self, version: &str) -> &mut Self {
        self.state.borrow_mut().version = Some(version.to_string());
        self
    }

    /// One line describing the module (shown by `modules`).
    pub fn doc(&mut self, doc: &str) -> &mut Self {
        self.state.borrow_mut().doc = Some(doc.to_string());
        self
    }
}

/// Refines the function just registered; returned by [`ModuleBuilder::function`] and
/// [`ModuleBuilder::raw`]. Methods chain; [`FunctionBuilder::function`] registers the
/// next function of the same module.
pub struct FunctionBuilder {
    state: Rc<RefCell<ModuleState>>,
    index: usize,
}

impl std::fmt::Debug for FunctionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("FunctionBuilder")
            .field("name", &state.functions[self.index].0)
            .finish()
    }
}

impl FunctionBuilder {
    fn edit(self, f: impl FnOnce(&str, &mut FunctionDef)) -> Self {
        {
            let mut state = self.state.borrow_mut();
            let (name, def) = &mut state.functions[self.index];
            f(name, def);
        }
        self
    }

    /// Name the parameters, in order (then keyword arguments work by name).
    ///
    /// # Panics
    /// If more names are given than the function has parameters, or a name repeats.
    pub fn params(self, names: &[&str]) -> Self {
        self.edit(|fname, def| {
            assert!(
                names.len() <= def.params.len(),
                "function {fname} has {} parameter(s), {} names given",
                def.params.len(),
                names.len()
            );
            for (i, n) in names.iter().enumerate() {
                assert!(
                    !names[..i].contains(n),
                    "function {fname}: parameter name {n} given twice"
                );
                def.params[i].name = n.to_string();
            }
        })
    }

    /// The value parameter `param` takes when the call omits it.
    ///
    /// # Panics
    /// If there is no parameter of that name (call [`params`](Self::params) first), or
    /// the value does not serialize.
    pub fn default(self, param: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).expect("default value must serialize to JSON");
        self.edit(|fname, def| {
            let p = def.params.iter_mut().find(|p| p.name == param);
            p.unwrap_or_else(|| panic!("function {fname} has no parameter {param}"))
                .default = Some(value);
        })
    }

    /// One line describing the function (shown by `modules`).
    pub fn doc(self, doc: &str) -> Self {
        self.edit(|_, def| def.doc = Some(doc.to_string()))
    }

    /// Override the return type shown in the signature (e.g. `"dict"` for a struct).
    pub fn returns(self, type_text: &str) -> Self {
        self.edit(|_, def| def.returns = type_text.to_string())
    }

    /// Override the whole signature text after the name, e.g. `"(*args) -> any"`.
    pub fn signature(self, text: &str) -> Self {
        self.edit(|_, def| def.signature = Some(text.to_string()))
    }

    /// Register the next typed function of the same module.
    pub fn function<M, F: IntoFunction<M>>(self, name: &str, f: F) -> FunctionBuilder {
        ModuleBuilder { state: self.state }.function(name, f)
    }

    /// Register the next raw function of the same module.
    pub fn raw<F>(self, name: &str, signature: &str, f: F) -> FunctionBuilder
    where
        F: Fn(&CallContext<'_>, Args) -> Result<Value, CallError> + Send + Sync + 'static,
    {
        ModuleBuilder { state: self.state }.raw(name, signature, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for good in ["os", "my_mod", "a.b", "x-1", "A9"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "../x", "a b", "é", "a\0"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
