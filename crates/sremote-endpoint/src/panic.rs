//! Panics in module functions: caught and reported as `Panicked` with their location, not
//! printed.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use sremote_core::protocol::ErrorKind;

use crate::context::CallOutput;
use crate::error::CallError;

thread_local! {
    /// This thread is running a module function (panics are reported, not printed).
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
    /// Location and backtrace of the last panic on this thread during a call.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CALL.with(Cell::get) {
                let mut trace = match info.location() {
                    Some(l) => format!("panicked at {}:{}:{}", l.file(), l.line(), l.column()),
                    None => "panicked at an unknown location".to_string(),
                };
                let backtrace = std::backtrace::Backtrace::capture();
                if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                    trace.push_str(&format!("\n{backtrace}"));
                }
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(trace));
            } else {
                previous(info);
            }
        }));
    });
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Run `f`, turning a panic into a `Panicked` error with its location as traceback.
pub(crate) fn run_guarded(f: impl FnOnce() -> CallOutput) -> CallOutput {
    install_panic_hook();
    let was = IN_CALL.with(|c| c.replace(true));
    LAST_PANIC.with(|p| p.borrow_mut().take());
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_CALL.with(|c| c.set(was));
    match result {
        Ok(output) => output,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            let mut err = CallError::new(
                ErrorKind::Panicked,
                format!("the function panicked: {message}"),
            );
            if let Some(trace) = LAST_PANIC.with(|p| p.borrow_mut().take()) {
                err = err.with_traceback(trace);
            }
            CallOutput::error(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_are_caught_with_location() {
        let out = run_guarded(|| panic!("boom {}", 7));
        let err = out.result.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Panicked);
        assert!(err.message.contains("boom 7"), "{}", err.message);
        assert!(err.traceback.unwrap().contains("panic.rs"));
    }
}
