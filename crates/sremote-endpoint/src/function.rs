//! Typed functions: turning plain Rust `fn`s into callable module functions.
//!
//! [`IntoFunction`] is implemented for every `Fn(A0, …, An) -> R` with `n ≤ 6` whose
//! argument types are [`DeserializeOwned`] and whose return type implements
//! [`IntoCallResult`] — any [`Serialize`] value, or a `Result` whose error is a
//! [`CallError`], a [`std::error::Error`], or a boxed `dyn Error`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::CallError;
use crate::types::pretty_type_of;

/// Marker types that keep the [`IntoCallResult`] impls apart (you never name them).
pub mod markers {
    /// Any `T: Serialize` (a serializable `Result<T, E>` has its `Err` reported as `Raised`).
    #[derive(Debug)]
    pub struct Serializable;
    /// `Result<T, E>` with `E: std::error::Error`.
    #[derive(Debug)]
    pub struct StdError;
    /// `Result<T, CallError>`: the error kind is kept.
    #[derive(Debug)]
    pub struct Call;
    /// `Result<T, Box<dyn Error + Send + Sync>>`.
    #[derive(Debug)]
    pub struct Boxed;
    /// `Result<T, Box<dyn Error>>`.
    #[derive(Debug)]
    pub struct BoxedLocal;
}

/// A function's return value, converted to the response's `ok` value or an error.
///
/// Implemented for:
/// - every `T: Serialize` — including `Result<T, E>` with a serializable `E` such as
///   `String` or `&str`, whose `Err` becomes kind `Raised` (the message is the error
///   string, or its JSON text; the JSON is also in `data.error`);
/// - `Result<T, E>` for `E: std::error::Error` (message: its `Display`);
/// - `Result<T, CallError>` (the error's kind is kept);
/// - `Result<T, Box<dyn Error + Send + Sync>>` and `Result<T, Box<dyn Error>>` (use
///   these for `anyhow::Error`: `.map_err(Into::into)`).
///
/// An error type that is both `Serialize` and `std::error::Error` makes the choice
/// ambiguous; return `Result<T, CallError>` or `Result<T, String>` then.
pub trait IntoCallResult<Marker> {
    /// The `ok` value, or the error to report.
    fn into_call_result(self) -> Result<Value, CallError>;
    /// The return type as shown in signatures.
    fn type_name() -> String;
}

impl<T: Serialize> IntoCallResult<markers::Serializable> for T {
    fn into_call_result(self) -> Result<Value, CallError> {
        let mut err = None;
        let value = self.serialize(TopLevel { err: &mut err }).map_err(|e| {
            CallError::raised(format!(
                "the return value could not be converted to JSON: {e}"
            ))
        })?;
        match err {
            None => Ok(value),
            Some(Value::String(message)) => Err(CallError::raised(message.clone())
                .with_data(serde_json::json!({ "error": Value::String(message) }))),
            Some(other) => Err(CallError::raised(other.to_string())
                .with_data(serde_json::json!({ "error": other }))),
        }
    }
    fn type_name() -> String {
        pretty_type_of::<T>()
    }
}

impl<T: Serialize, E: std::error::Error> IntoCallResult<markers::StdError> for Result<T, E> {
    fn into_call_result(self) -> Result<Value, CallError> {
        match self {
            Ok(v) => v.into_call_result(),
            Err(e) => Err(CallError::raised(e.to_string())),
        }
    }
    fn type_name() -> String {
        pretty_type_of::<T>()
    }
}

impl<T: Serialize> IntoCallResult<markers::Call> for Result<T, CallError> {
    fn into_call_result(self) -> Result<Value, CallError> {
        self.and_then(IntoCallResult::into_call_result)
    }
    fn type_name() -> String {
        pretty_type_of::<T>()
    }
}

impl<T: Serialize> IntoCallResult<markers::Boxed>
    for Result<T, Box<dyn std::error::Error + Send + Sync>>
{
    fn into_call_result(self) -> Result<Value, CallError> {
        match self {
            Ok(v) => v.into_call_result(),
            Err(e) => Err(CallError::raised(e.to_string())),
        }
    }
    fn type_name() -> String {
        pretty_type_of::<T>()
    }
}

impl<T: Serialize> IntoCallResult<markers::BoxedLocal> for Result<T, Box<dyn std::error::Error>> {
    fn into_call_result(self) -> Result<Value, CallError> {
        match self {
            Ok(v) => v.into_call_result(),
            Err(e) => Err(CallError::raised(e.to_string())),
        }
    }
    fn type_name() -> String {
        pretty_type_of::<T>()
    }
}

/// Why a typed call did not produce a value.
pub(crate) enum ArgFailure {
    /// Argument `index` did not deserialize into its parameter type.
    Arg(usize, String),
    /// The function ran and failed.
    Call(CallError),
}

pub(crate) type TypedFn = dyn Fn(Vec<Value>) -> Result<Value, ArgFailure> + Send + Sync;

/// The parts of a typed function, produced by [`IntoFunction`] (an implementation detail).
#[doc(hidden)]
pub struct TypedFunction {
    /// (display type, accepts `null`) per parameter.
    pub(crate) params: Vec<(String, bool)>,
    pub(crate) returns: String,
    pub(crate) call: Arc<TypedFn>,
}

impl std::fmt::Debug for TypedFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedFunction")
            .field("params", &self.params)
            .field("returns", &self.returns)
            .finish()
    }
}

/// A Rust function (or closure) that can be registered with
/// [`ModuleBuilder::function`](crate::ModuleBuilder::function).
///
/// Implemented for `Fn(A0, …, An) -> R + Send + Sync + 'static`, `n` from 0 to 6, with
/// `Ai: DeserializeOwned` and `R:` [`IntoCallResult`]. `Marker` only keeps the impls apart.
pub trait IntoFunction<Marker>: Send + Sync + 'static {
    /// Split into signature and type-erased call (used by the module builder).
    #[doc(hidden)]
    fn into_typed(self) -> TypedFunction;
}

/// Whether a parameter of type `T` may be omitted (it accepts `null`, e.g. `Option<_>`).
fn accepts_null<T: DeserializeOwned>() -> bool {
    serde_json::from_value::<T>(Value::Null).is_ok()
}

macro_rules! impl_into_function {
    ($($A:ident $a:ident),*) => {
        impl<Func, Ret, M, $($A,)*> IntoFunction<(M, Ret, $($A,)*)> for Func
        where
            Func: Fn($($A),*) -> Ret + Send + Sync + 'static,
            Ret: IntoCallResult<M>,
            $($A: DeserializeOwned + 'static,)*
        {
            fn into_typed(self) -> TypedFunction {
                let params: Vec<(String, bool)> = vec![$((pretty_type_of::<$A>(), accepts_null::<$A>())),*];
                #[allow(unused_mut, unused_variables, reason = "the macro binds every argument; a function may use none of them")]
                let call = move |args: Vec<Value>| -> Result<Value, ArgFailure> {
                    let mut args = args.into_iter().enumerate();
                    $(
                        let $a: $A = match args.next() {
                            Some((i, v)) => serde_json::from_value(v).map_err(|e| ArgFailure::Arg(i, e.to_string()))?,
                            None => return Err(ArgFailure::Arg(usize::MAX, "argument missing".into())),
                        };
                    )*
                    (self)($($a),*).into_call_result().map_err(ArgFailure::Call)
                };
                TypedFunction { params, returns: Ret::type_name(), call: Arc::new(call) }
            }
        }
    };
}

impl_into_function!();
impl_into_function!(A0 a0);
impl_into_function!(A0 a0, A1 a1);
impl_into_function!(A0 a0, A1 a1, A2 a2);
impl_into_function!(A0 a0, A1 a1, A2 a2, A3 a3);
impl_into_function!(A0 a0, A1 a1, A2 a2, A3 a3, A4 a4);
impl_into_function!(A0 a0, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5);

/// One parameter of a typed function.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub name: String,
    pub ty: String,
    /// The type accepts `null`, so the argument may be omitted (it is then `null`).
    pub optional: bool,
    /// Value used when the argument is omitted.
    pub default: Option<Value>,
}

impl Param {
    fn render(&self) -> String {
        match (&self.default, self.optional) {
            (Some(d), _) => format!("{}: {} = {}", self.name, self.ty, python_literal(d)),
            (None, true) => format!("{}: {} = None", self.name, self.ty),
            (None, false) => format!("{}: {}", self.name, self.ty),
        }
    }
}

/// A JSON value written the way Python would (for defaults in signatures).
fn python_literal(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

/// Render `(a: int, b: str = "x") -> int`.
pub(crate) fn render_signature(params: &[Param], returns: &str) -> String {
    let params: Vec<String> = params.iter().map(Param::render).collect();
    format!("({}) -> {returns}", params.join(", "))
}

/// Match positional and keyword arguments to `params`, filling defaults.
///
/// `signature` is the full `module.function(...) -> T` text used in messages (rendered
/// only for a message: binding runs for every call).
pub(crate) fn bind(
    params: &[Param],
    args: Vec<Value>,
    kwargs: BTreeMap<String, Value>,
    signature: impl std::fmt::Display,
) -> Result<Vec<Value>, CallError> {
    let bad = |what: String, argument: Option<&str>| {
        let signature = signature.to_string();
        CallError::bad_arguments(format!("{what}; expected {signature}"))
            .with_data(serde_json::json!({ "signature": signature, "argument": argument }))
    };
    if args.len() > params.len() {
        return Err(bad(
            format!(
                "takes {} positional argument(s) but {} were given",
                params.len(),
                args.len()
            ),
            None,
        ));
    }
    let mut slots: Vec<Option<Value>> = args.into_iter().map(Some).collect();
    slots.resize(params.len(), None);
    for (key, value) in kwargs {
        let Some(index) = params.iter().position(|p| p.name == key) else {
            return Err(bad(
                format!("unexpected keyword argument `{key}`"),
                Some(&key),
            ));
        };
        if slots[index].is_some() {
            return Err(bad(
                format!("got multiple values for argument `{key}`"),
                Some(&key),
            ));
        }
        slots[index] = Some(value);
    }
    slots
        .into_iter()
        .zip(params)
        .map(|(slot, p)| match slot {
            Some(v) => Ok(v),
            None => match (&p.default, p.optional) {
                (Some(d), _) => Ok(d.clone()),
                (None, true) => Ok(Value::Null),
                (None, false) => Err(bad(
                    format!("missing required argument `{}`", p.name),
                    Some(&p.name),
                )),
            },
        })
        .collect()
}

/// Serializes a return value to JSON, except that a top-level `Result` is unwrapped:
/// `Ok(v)` becomes `v`, `Err(e)` is stored in `err`.
struct TopLevel<'a> {
    err: &'a mut Option<Value>,
}

use serde_json::value::Serializer as J;
type JResult = Result<Value, serde_json::Error>;

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $method(self, $($arg: $ty),*) -> JResult { J.$method($($arg),*) })*
    };
}

impl Serializer for TopLevel<'_> {
    type Ok = Value;
    type Error = serde_json::Error;
    type SerializeSeq = <J as Serializer>::SerializeSeq;
    type SerializeTuple = <J as Serializer>::SerializeTuple;
    type SerializeTupleStruct = <J as Serializer>::SerializeTupleStruct;
    type SerializeTupleVariant = <J as Serializer>::SerializeTupleVariant;
    type SerializeMap = <J as Serializer>::SerializeMap;
    type SerializeStruct = <J as Serializer>::SerializeStruct;
    type SerializeStructVariant = <J as Serializer>::SerializeStructVariant;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> JResult {
        J.serialize_some(value)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> JResult {
        J.serialize_newtype_struct(name, value)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> JResult {
        match (name, variant) {
            ("Result", "Ok") => value.serialize(J),
            ("Result", "Err") => {
                *self.err = Some(value.serialize(J)?);
                Ok(Value::Null)
            }
            _ => J.serialize_newtype_variant(name, index, variant, value),
        }
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, serde_json::Error> {
        J.serialize_seq(len)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, serde_json::Error> {
        J.serialize_tuple(len)
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, serde_json::Error> {
        J.serialize_tuple_struct(name, len)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, serde_json::Error> {
        J.serialize_tuple_variant(name, index, variant, len)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, serde_json::Error> {
        J.serialize_map(len)
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, serde_json::Error> {
        J.serialize_struct(name, len)
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, serde_json::Error> {
        J.serialize_struct_variant(name, index, variant, len)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn result_of<M, R: IntoCallResult<M>>(r: R) -> Result<Value, CallError> {
        r.into_call_result()
    }

    #[test]
    fn return_values_and_errors() {
        assert_eq!(result_of(3_i64).unwrap(), json!(3));
        assert_eq!(
            result_of(Ok::<_, String>(vec![1, 2])).unwrap(),
            json!([1, 2])
        );
        let e = result_of(Err::<i64, String>("nope".into())).unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (sremote_core::protocol::ErrorKind::Raised, "nope")
        );
        let e = result_of(Err::<i64, _>(std::io::Error::other("disk"))).unwrap_err();
        assert_eq!(e.message, "disk");
        let e = result_of(Err::<i64, _>(CallError::bad_arguments("x"))).unwrap_err();
        assert_eq!(e.kind, sremote_core::protocol::ErrorKind::BadArguments);
        let boxed: Result<i64, Box<dyn std::error::Error + Send + Sync>> = Err("boxed".into());
        assert_eq!(result_of(boxed).unwrap_err().message, "boxed");
        // Nested results are ordinary values.
        assert_eq!(
            result_of(vec![Ok::<i64, String>(1)]).unwrap(),
            json!([{"Ok": 1}])
        );
        assert_eq!(
            result_of(Err::<(), _>(json!({"code": 7})))
                .unwrap_err()
                .data,
            json!({"error": {"code": 7}})
        );
    }

    fn p(name: &str, optional: bool, default: Option<Value>) -> Param {
        Param {
            name: name.into(),
            ty: "int".into(),
            optional,
            default,
        }
    }

    #[test]
    fn binding_positional_kwargs_defaults() {
        let params = [
            p("a", false, None),
            p("b", true, None),
            p("c", false, Some(json!(5))),
        ];
        let kw = |pairs: &[(&str, Value)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        assert_eq!(
            bind(&params, vec![json!(1)], BTreeMap::new(), "f").unwrap(),
            vec![json!(1), Value::Null, json!(5)]
        );
        assert_eq!(
            bind(
                &params,
                vec![],
                kw(&[("a", json!(2)), ("c", json!(3))]),
                "f"
            )
            .unwrap(),
            vec![json!(2), Value::Null, json!(3)]
        );
        let msg = |r: Result<Vec<Value>, CallError>| r.unwrap_err().message;
        assert!(
            msg(bind(&params, vec![], BTreeMap::new(), "f(a)"))
                .contains("missing required argument `a`")
        );
        assert!(
            msg(bind(&params, vec![json!(1); 4], BTreeMap::new(), "f")).contains("3 positional")
        );
        assert!(
            msg(bind(&params, vec![json!(1)], kw(&[("zz", json!(1))]), "f"))
                .contains("unexpected keyword")
        );
        assert!(
            msg(bind(&params, vec![json!(1)], kw(&[("a", json!(1))]), "f"))
                .contains("multiple values")
        );
    }

    #[test]
    fn signatures_render_python_style() {
        let params = [
            p("a", false, None),
            p("b", true, None),
            p("c", false, Some(json!(false))),
        ];
        assert_eq!(
            render_signature(&params, "int"),
            "(a: int, b: int = None, c: int = False) -> int"
        );
    }
}
