//! Per-call output of Rust functions, in every call mode.
//!
//! In pipe and file mode the endpoint runs one call per process and captures fd 1 and
//! fd 2 into the response. In session mode calls run concurrently in one process, so what
//! `std`'s `println!` writes cannot be told apart per call (it goes to the session's
//! stderr). The macros [`print!`](crate::print), [`println!`](crate::println),
//! [`eprint!`](crate::eprint) and [`eprintln!`](crate::eprintln) of this crate write to
//! the output of the call running on this thread instead, so it reaches that call's
//! response (`stdout`/`stderr`) in every mode. Import them to use them in place of std's:
//!
//! ```
//! use sremote_endpoint::println;
//!
//! fn shout(text: String) -> String {
//!     println!("shouting {text:?}"); // goes to this call's `stdout`
//!     text.to_uppercase()
//! }
//! # assert_eq!(shout("a".into()), "A");
//! ```
//!
//! Outside a call (e.g. in `main`), and in a detached job (whose output is its live log),
//! they print like std's macros.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set in a job's worker: output goes live to the job's log, not into the response.
static LIVE: AtomicBool = AtomicBool::new(false);

/// From now on this process's calls print straight to fd 1 and fd 2 (a job's log).
pub(crate) fn set_live() {
    LIVE.store(true, Ordering::Relaxed);
}

thread_local! {
    /// The output of the call running on this thread: (stdout, stderr).
    static CAPTURE: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Run `f` with its macro output captured; returns it as (stdout, stderr). Restores the
/// capture of an enclosing call (there is none today, but nesting stays correct) and
/// clears the capture even when `f` panics.
pub(crate) fn scoped<R>(f: impl FnOnce() -> R) -> (R, String, String) {
    if LIVE.load(Ordering::Relaxed) {
        return (f(), String::new(), String::new());
    }
    struct Restore(Option<(String, String)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CAPTURE.with(|c| *c.borrow_mut() = previous);
        }
    }
    let previous = CAPTURE.with(|c| c.borrow_mut().replace((String::new(), String::new())));
    let restore = Restore(previous);
    let result = f();
    let (out, err) = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    (result, out, err)
}

/// Write to the running call's output (used by the macros; not a stable API).
#[doc(hidden)]
pub fn __write(to_stderr: bool, args: fmt::Arguments<'_>) {
    let captured = CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some((out, err)) => {
            let _ = if to_stderr { err } else { out }.write_fmt(args);
            true
        }
        None => false,
    });
    if !captured {
        let _ = if to_stderr {
            std::io::stderr().lock().write_fmt(args)
        } else {
            std::io::stdout().lock().write_fmt(args)
        };
    }
}

/// Like `std::print!`, into the running call's `stdout` in every call mode.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::output::__write(false, ::std::format_args!($($arg)*)) };
}

/// Like `std::println!`, into the running call's `stdout` in every call mode.
#[macro_export]
macro_rules! println {
    () => { $crate::output::__write(false, ::std::format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::output::__write(false, ::std::format_args!("{}\n", ::std::format_args!($($arg)*)))
    };
}

/// Like `std::eprint!`, into the running call's `stderr` in every call mode.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::output::__write(true, ::std::format_args!($($arg)*)) };
}

/// Like `std::eprintln!`, into the running call's `stderr` in every call mode.
#[macro_export]
macro_rules! eprintln {
    () => { $crate::output::__write(true, ::std::format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::output::__write(true, ::std::format_args!("{}\n", ::std::format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_inside_a_scope_only_and_restored_after_a_panic() {
        let ((), out, err) = scoped(|| {
            crate::print!("a{}", 1);
            crate::println!(" b");
            crate::eprintln!("e");
            crate::println!();
        });
        assert_eq!((out.as_str(), err.as_str()), ("a1 b\n\n", "e\n"));
        let caught = std::panic::catch_unwind(|| scoped(|| panic!("boom")));
        assert!(caught.is_err());
        assert!(
            CAPTURE.with(|c| c.borrow().is_none()),
            "cleared after a panic"
        );
    }
}
