//! The `sremote-endpoint` command line.

use std::io::Read;

use serde_json::Value;
use sremote_core::protocol::{ErrorBody, ErrorKind, PROTOCOL_VERSION, Request, VERSION};

use crate::capture::{Capture, Sink};
use crate::endpoint::Endpoint;
use crate::exit::{EXIT_NO_RESPONSE, EXIT_OK, EXIT_USAGE};
use crate::response::error_response;
use crate::version::version_info;

const USAGE: &str = "\
usage:
  sremote-endpoint call [--consume] REQ [RESP]   run the request in file REQ, write the response
                                                 to file RESP (atomically); `-` is stdin/stdout;
                                                 RESP defaults to `-`; --consume deletes REQ
  sremote-endpoint version [--json] [--sha256]   version, protocol, target, executable
  sremote-endpoint modules [--json]              modules and function signatures
  sremote-endpoint serve                         session mode: frames on stdin/stdout (PROTOCOL.md)
  sremote-endpoint job COMMAND DIR …             detached jobs (`sremote-endpoint job` lists them)
exit codes: 0 response written (even an error response), 2 usage error, 3 response not written";

/// A parsed command line.
#[derive(Debug, PartialEq)]
enum Command {
    Call {
        request: String,
        response: String,
        consume: bool,
    },
    Version {
        json: bool,
        sha256: bool,
    },
    Modules {
        json: bool,
    },
    /// Session mode: length-prefixed frames on stdin/stdout, many calls in flight.
    Serve,
    /// Detached jobs: `job COMMAND DIR …` (see `job.rs`).
    Job(Vec<String>),
    Help,
}

fn parse(args: &[String]) -> Result<Command, String> {
    let Some((first, rest)) = args.split_first() else {
        return Err("no command given".into());
    };
    let flags = |allowed: &[&str]| -> Result<Vec<String>, String> {
        let mut seen = Vec::new();
        for a in rest {
            if !allowed.contains(&a.as_str()) {
                return Err(format!("`{first}` does not take `{a}`"));
            }
            seen.push(a.clone());
        }
        Ok(seen)
    };
    match first.as_str() {
        "call" => {
            let consume = rest.iter().any(|a| a == "--consume");
            let positional: Vec<&String> = rest.iter().filter(|a| *a != "--consume").collect();
            if let Some(bad) = positional.iter().find(|a| a.starts_with("--")) {
                return Err(format!("`call` does not take `{bad}`"));
            }
            match positional.as_slice() {
                [req] => Ok(Command::Call {
                    request: req.to_string(),
                    response: "-".into(),
                    consume,
                }),
                [req, resp] => Ok(Command::Call {
                    request: req.to_string(),
                    response: resp.to_string(),
                    consume,
                }),
                [] => Err("`call` needs a request file (or `-` for stdin)".into()),
                _ => Err("`call` takes REQ and RESP only".into()),
            }
        }
        "version" | "--version" | "-V" => {
            let seen = flags(&["--json", "--sha256"])?;
            Ok(Command::Version {
                json: seen.iter().any(|s| s == "--json"),
                sha256: seen.iter().any(|s| s == "--sha256"),
            })
        }
        "modules" => {
            let seen = flags(&["--json"])?;
            Ok(Command::Modules {
                json: !seen.is_empty(),
            })
        }
        "serve" => Ok(Command::Serve),
        "job" => Ok(Command::Job(rest.to_vec())),
        "help" | "--help" | "-h" => Ok(Command::Help),
        other => Err(format!("unknown command `{other}`")),
    }
}

/// Run the command line `args` (without the program name); returns the exit code.
pub(crate) fn run(endpoint: &Endpoint, args: Vec<String>) -> i32 {
    match parse(&args) {
        Ok(Command::Call {
            request,
            response,
            consume,
        }) => call(endpoint, &request, &response, consume),
        Ok(Command::Version { json, sha256 }) => {
            let info = version_info(sha256);
            if json {
                println!("{info}");
            } else {
                println!(
                    "sremote-endpoint {VERSION} (protocol {PROTOCOL_VERSION}, {})",
                    info["target"].as_str().unwrap_or("")
                );
                println!("exe: {}", info["exe"].as_str().unwrap_or("?"));
                if let Some(sha) = info.get("sha256").and_then(Value::as_str) {
                    println!("sha256: {sha}");
                }
            }
            EXIT_OK
        }
        Ok(Command::Modules { json }) => {
            let listing = endpoint.modules_json();
            if json {
                println!("{listing}");
            } else {
                print!("{}", modules_text(&listing));
            }
            EXIT_OK
        }
        Ok(Command::Serve) => crate::serve::run(endpoint),
        Ok(Command::Job(args)) => crate::job::run(endpoint, &args),
        Ok(Command::Help) => {
            println!(
                "sremote-endpoint {VERSION}: runs sremote call requests on this host\n\n{USAGE}"
            );
            EXIT_OK
        }
        Err(message) => {
            eprintln!("sremote-endpoint: {message}\n{USAGE}");
            EXIT_USAGE
        }
    }
}

fn modules_text(listing: &Value) -> String {
    let mut out = String::new();
    for m in listing["modules"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or("?");
        let kind = m["kind"].as_str().unwrap_or("?");
        match m["doc"].as_str() {
            Some(doc) => out.push_str(&format!("{name} ({kind}): {doc}\n")),
            None if kind == "plugin" => {
                out.push_str(&format!(
                    "{name} (plugin: {})\n",
                    m["path"].as_str().unwrap_or("?")
                ));
            }
            None => out.push_str(&format!("{name} ({kind})\n")),
        }
        for f in m["functions"].as_array().into_iter().flatten() {
            let sig = f["signature"].as_str().unwrap_or("?");
            match f["doc"].as_str() {
                Some(doc) => out.push_str(&format!("  {sig}\n      {doc}\n")),
                None => out.push_str(&format!("  {sig}\n")),
            }
        }
    }
    out
}

/// `call REQ RESP`: one request, one response, in this process.
fn call(endpoint: &Endpoint, request_path: &str, response_path: &str, consume: bool) -> i32 {
    // The private response channel first, before anything can write to fd 1.
    let sink = match Sink::open(response_path) {
        Ok(sink) => sink,
        Err(e) => {
            eprintln!("sremote-endpoint: cannot open stdout for the response: {e}");
            return EXIT_NO_RESPONSE;
        }
    };
    crate::capture::watch_for_hangup();
    let bytes = if request_path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map(|_| buf)
            .map_err(|e| format!("cannot read the request from stdin: {e}"))
    } else {
        std::fs::read(request_path)
            .map_err(|e| format!("cannot read the request file {request_path}: {e}"))
    };
    let mut consume_note = String::new();
    if consume
        && request_path != "-"
        && let Err(e) = std::fs::remove_file(request_path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        consume_note =
            format!("sremote-endpoint: could not remove the request file {request_path}: {e}\n");
    }
    let capture = Capture::start();
    let (mut response, abandoned) = match bytes {
        Err(message) => (
            error_response(
                String::new(),
                ErrorBody::new(ErrorKind::BadRequest, message),
            ),
            false,
        ),
        Ok(bytes) => match Request::parse(&bytes) {
            Ok(req) => {
                let handled = endpoint.dispatch(req);
                (handled.response, handled.abandoned)
            }
            Err((id, body)) => (error_response(id.unwrap_or_default(), body), false),
        },
    };
    crate::capture::call_finished();
    let (out, err) = match capture {
        Ok(c) => c.finish(!abandoned, sink.is_file()),
        Err(e) => (
            String::new(),
            format!("sremote-endpoint: output of the call was not captured: {e}\n"),
        ),
    };
    response.stdout = out + &response.stdout;
    response.stderr = consume_note + &err + &response.stderr;
    if abandoned {
        // The call timed out and its thread is stuck: the process exits after this, and
        // children it started must not outlive it.
        crate::process::kill_running_children();
    }
    let mut bytes = match serde_json::to_vec(&response) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("sremote-endpoint: cannot encode the response: {e}");
            return EXIT_NO_RESPONSE;
        }
    };
    bytes.push(b'\n');
    match sink.write(&bytes) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("sremote-endpoint: cannot write the response to {response_path}: {e}");
            EXIT_NO_RESPONSE
        }
    }
}

impl Endpoint {
    /// Parse `args` (without the program name) as the `sremote-endpoint` command line and
    /// run it; returns the process exit code. See the crate docs for the commands.
    pub fn run_with_args(&self, args: Vec<String>) -> i32 {
        crate::cli::run(self, args)
    }

    /// Run the `sremote-endpoint` command line of this process and exit with its code.
    pub fn run(self) -> ! {
        let code = self.run_with_args(std::env::args().skip(1).collect());
        std::process::exit(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn command_line() {
        let call = |r: &str, p: &str, c| Command::Call {
            request: r.into(),
            response: p.into(),
            consume: c,
        };
        assert_eq!(parse(&args("call -")), Ok(call("-", "-", false)));
        assert_eq!(parse(&args("call - -")), Ok(call("-", "-", false)));
        assert_eq!(
            parse(&args("call --consume req.json -")),
            Ok(call("req.json", "-", true))
        );
        assert_eq!(parse(&args("call a b --consume")), Ok(call("a", "b", true)));
        assert_eq!(
            parse(&args("version --json --sha256")),
            Ok(Command::Version {
                json: true,
                sha256: true
            })
        );
        assert_eq!(
            parse(&args("modules")),
            Ok(Command::Modules { json: false })
        );
        assert_eq!(parse(&args("serve")), Ok(Command::Serve));
        for bad in [
            "",
            "call",
            "call a b c",
            "call --nope a",
            "version --xml",
            "frobnicate",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }
}
