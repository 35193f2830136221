//! What a running call sees ([`CallContext`]) and what it produces ([`CallOutput`]).

use serde_json::Value;

use crate::endpoint::Endpoint;
use crate::error::CallError;
use crate::location::Location;

/// What the called function is running in; handed to [raw](crate::ModuleBuilder::raw)
/// functions.
#[derive(Debug)]
pub struct CallContext<'a> {
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) module: &'a str,
    pub(crate) function: &'a str,
    pub(crate) id: &'a str,
    pub(crate) location: &'a Location,
}

impl<'a> CallContext<'a> {
    /// The endpoint serving the call (e.g. to list its modules).
    pub fn endpoint(&self) -> &'a Endpoint {
        self.endpoint
    }
    /// The called module's name.
    pub fn module(&self) -> &'a str {
        self.module
    }
    /// The called function's name.
    pub fn function(&self) -> &'a str {
        self.function
    }
    /// The request id.
    pub fn request_id(&self) -> &'a str {
        self.id
    }
    /// The endpoint's sremote dir, tmp dir and plugin dir.
    pub fn location(&self) -> &'a Location {
        self.location
    }
}

/// A function's result plus output it reported itself (plugins do).
pub(crate) struct CallOutput {
    pub result: Result<Value, CallError>,
    pub stdout: String,
    pub stderr: String,
}

impl CallOutput {
    pub fn error(e: CallError) -> Self {
        CallOutput {
            result: Err(e),
            stdout: String::new(),
            stderr: String::new(),
        }
    }
}
