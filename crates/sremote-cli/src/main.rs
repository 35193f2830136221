//! `sremote`: run functions and commands on other machines.
//!
//! Exit codes: 0 success; 1 the remote call or command failed (remote error, endpoint
//! problem); 2 usage error; 3 transport error (cannot reach or talk to the host).
//! `sremote exec` exits with the remote program's own exit code.

mod bench;
mod hosts;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use sremote_core::{
    CallMode, CallOutput, Connector, Dest, EndpointArtifact, Error, RemoteClient, RemoteCommand,
    Source,
};

use hosts::HostOptions;

const EXAMPLES: &str = "Examples:
  sremote call local os getenv HOME
  sremote call local os listdir '\"/tmp\"'          # each ARG is JSON if it parses, else a string
  sremote call local subprocess run '[\"uname\",\"-a\"]' --kw timeout=5
  sremote call local json dumps '{\"a\":1}'           # any module python3 can import
  sremote call --endpoint ./my-endpoint HOST calc add 2 3   # a custom endpoint
  sremote exec local -- uname -a
  sremote push local ./data.bin data/data.bin
  sremote endpoint info";

#[derive(Parser, Debug)]
#[command(name = "sremote", version, about = "Run functions and commands on other machines", after_help = EXAMPLES)]
struct Cli {
    /// ssh config file to use for ssh hosts (like `ssh -F`).
    #[arg(long, global = true, env = "SREMOTE_SSH_CONFIG")]
    ssh_config: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Call MODULE.FUNCTION(ARG…) on HOST and print the value.
    Call {
        host: String,
        module: String,
        function: String,
        /// Positional arguments: JSON if they parse as JSON, else strings.
        args: Vec<String>,
        /// Keyword argument KEY=VALUE (VALUE is JSON if it parses, else a string).
        #[arg(long = "kw", value_name = "KEY=VALUE")]
        kwargs: Vec<String>,
        /// Print the whole response as JSON.
        #[arg(long)]
        json: bool,
        /// Stop the call on the host after this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
        /// Call path: auto, session, pipe or file.
        #[arg(long, default_value = "auto", value_parser = parse_mode)]
        mode: CallMode,
        /// Set an environment variable for the call (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Call through this custom endpoint binary (built with the sremote-endpoint
        /// library) instead of the stock one; it is installed on HOST first when missing or
        /// changed, as `sremote bootstrap --endpoint PATH` does.
        #[arg(long, value_name = "PATH", env = "SREMOTE_CUSTOM_ENDPOINT")]
        endpoint: Option<PathBuf>,
    },
    /// Run a program on HOST; its stdout, stderr and exit code pass through.
    Exec {
        host: String,
        /// Working directory on the host (relative: to the home directory).
        #[arg(long)]
        cwd: Option<String>,
        /// Environment variable KEY=VALUE (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Kill the program after this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
        /// The program and its arguments (after `--`).
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// Copy a local file to HOST (REMOTE relative: to the home directory).
    Push {
        host: String,
        local: PathBuf,
        remote: String,
    },
    /// Copy a file from HOST to a local path.
    Pull {
        host: String,
        remote: String,
        local: PathBuf,
    },
    /// Install the endpoint on HOST (a no-op when the right one is there).
    Bootstrap {
        host: String,
        /// Install this endpoint binary instead of the bundled one (a custom endpoint).
        #[arg(long)]
        endpoint: Option<PathBuf>,
    },
    /// Measure call latency and throughput: `os.getenv("HOME")` N times.
    Bench {
        host: String,
        /// Call path: auto, session, pipe or file.
        #[arg(long, default_value = "auto", value_parser = parse_mode)]
        mode: CallMode,
        /// Number of calls.
        #[arg(long, default_value_t = 1000)]
        calls: usize,
        /// Calls in flight at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Print one JSON object (p50_us, p99_us, calls_per_s, mode, calls, concurrency).
        #[arg(long)]
        json: bool,
    },
    /// About the endpoint binary this program deploys.
    Endpoint {
        #[command(subcommand)]
        what: EndpointCommand,
    },
}

#[derive(Subcommand, Debug)]
enum EndpointCommand {
    /// Version, SHA-256, target and origin of the endpoint binary.
    Info {
        #[arg(long)]
        json: bool,
    },
}

fn parse_mode(s: &str) -> Result<CallMode, String> {
    match s {
        "auto" => Ok(CallMode::Auto),
        "session" => Ok(CallMode::Session),
        "pipe" => Ok(CallMode::Pipe),
        "file" => Ok(CallMode::File),
        _ => Err(format!("unknown mode {s:?} (auto, session, pipe, file)")),
    }
}

/// A CLI argument: JSON if it parses, else the string itself.
fn json_or_string(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

fn key_value(s: &str, what: &str) -> Result<(String, String), Error> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::Usage(format!("{what} {s:?} is not KEY=VALUE"))),
    }
}

fn seconds(s: Option<f64>) -> Result<Option<Duration>, Error> {
    s.map(|s| {
        Duration::try_from_secs_f64(s)
            .map_err(|_| Error::Usage(format!("bad timeout {s}: give seconds >= 0")))
    })
    .transpose()
}

fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Transport(_) => 3,
        Error::Usage(_) => 2,
        _ => 1,
    }
}

fn print_error(e: &Error) {
    eprintln!("error: {e}");
    if let Error::RemoteExec(r) = e {
        if let Some(tb) = &r.traceback {
            eprintln!("remote traceback:\n{tb}");
        }
        if !r.stdout.is_empty() {
            eprintln!("remote stdout:\n{}", r.stdout);
        }
        if !r.stderr.is_empty() {
            eprintln!("remote stderr:\n{}", r.stderr);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SREMOTE_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            ExitCode::from(exit_code(&e))
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let opts = HostOptions {
        ssh_config: cli.ssh_config.clone(),
    };
    match cli.command {
        Command::Call {
            host,
            module,
            function,
            args,
            kwargs,
            json,
            timeout,
            mode,
            env,
            endpoint,
        } => {
            let client = RemoteClient::new(hosts::connect(&host, &opts).await?);
            if let Some(path) = &endpoint {
                client.do_bootstrap_install_with(path).await?;
            }
            let mut call = client.call::<Value>(&module, &function).mode(mode);
            for a in &args {
                call = call.arg(json_or_string(a));
            }
            for kw in &kwargs {
                let (k, v) = key_value(kw, "--kw")?;
                call = call.kwarg(k, json_or_string(&v));
            }
            for e in &env {
                let (k, v) = key_value(e, "--env")?;
                call = call.env(k, v);
            }
            if let Some(t) = seconds(timeout)? {
                call = call.timeout(t);
            }
            let out = call.await?;
            print_call(&out, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec {
            host,
            cwd,
            env,
            timeout,
            argv,
        } => {
            let connector = hosts::connect(&host, &opts).await?;
            let mut cmd = RemoteCommand::new(&argv[0]).args(&argv[1..]);
            cmd.cwd = cwd;
            cmd.timeout = seconds(timeout)?;
            for e in &env {
                let (k, v) = key_value(e, "--env")?;
                cmd = cmd.env(k, v);
            }
            let out = connector.exec(&cmd).await?;
            let _ = std::io::stdout().write_all(&out.stdout);
            let _ = std::io::stderr().write_all(&out.stderr);
            Ok(match out.exit_code {
                Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                None => {
                    eprintln!(
                        "sremote: {} on {} was killed by a signal",
                        argv[0],
                        connector.host()
                    );
                    ExitCode::from(1)
                }
            })
        }
        Command::Push {
            host,
            local,
            remote,
        } => {
            let connector = hosts::connect(&host, &opts).await?;
            connector.push(Source::file(&local), &remote).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Pull {
            host,
            remote,
            local,
        } => {
            let connector = hosts::connect(&host, &opts).await?;
            connector.pull(&remote, Dest::file(&local)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bootstrap { host, endpoint } => {
            let client = RemoteClient::new(hosts::connect(&host, &opts).await?);
            let report = match endpoint {
                Some(path) => client.do_bootstrap_install_with(&path).await?,
                None => client.do_bootstrap_install().await?,
            };
            let what = if report.installed {
                "installed"
            } else {
                "already up to date:"
            };
            println!(
                "{} {what} {} ({}, sha256 {})",
                report.host,
                report.endpoint_path,
                report.target,
                &report.sha256[..16]
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            host,
            mode,
            calls,
            concurrency,
            json,
        } => {
            let client = RemoteClient::new(hosts::connect(&host, &opts).await?);
            let r = bench::run(client, mode, calls, concurrency).await?;
            if json {
                println!("{}", r.to_json());
            } else {
                println!(
                    "{host}: {} calls, {} in flight, mode {}: p50 {:.1} µs, p99 {:.1} µs, {:.0} calls/s",
                    r.calls,
                    r.concurrency,
                    mode_name(r.mode),
                    r.p50.as_secs_f64() * 1e6,
                    r.p99.as_secs_f64() * 1e6,
                    r.calls_per_s()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Endpoint {
            what: EndpointCommand::Info { json },
        } => {
            let artifact = match std::env::var_os("SREMOTE_ENDPOINT") {
                Some(p) => Some(EndpointArtifact::from_file(std::path::Path::new(&p))?),
                None => EndpointArtifact::bundled(),
            };
            let Some(a) = artifact else {
                return Err(Error::Usage(
                    "this sremote has no bundled endpoint; set SREMOTE_ENDPOINT to one built by deploy/build-endpoint.sh"
                        .into(),
                ));
            };
            let info = json!({
                "version": sremote_core::protocol::VERSION,
                "protocol": sremote_core::protocol::PROTOCOL_VERSION,
                "target": a.target, "sha256": a.sha256, "size": a.bytes().len(),
                "origin": a.origin, "install_name": a.install_name,
            });
            if json {
                println!("{info}");
            } else {
                for (k, v) in info.as_object().into_iter().flatten() {
                    println!(
                        "{k:>13}: {}",
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The name of a call mode as the CLI spells it.
pub(crate) fn mode_name(mode: CallMode) -> &'static str {
    match mode {
        CallMode::Auto => "auto",
        CallMode::Session => "session",
        CallMode::Pipe => "pipe",
        CallMode::File => "file",
    }
}

fn print_call(out: &CallOutput<Value>, json: bool) {
    if json {
        let m = &out.meta;
        let whole = json!({
            "ok": out.value, "stdout": out.stdout, "stderr": out.stderr, "id": m.id, "host": m.host,
            "pid": m.pid, "endpoint_version": m.endpoint_version,
            "timing": {"started_unix_ms": m.timing.started_unix_ms, "elapsed_us": m.timing.elapsed_us},
            "mode": mode_name(m.mode), "round_trip_us": m.round_trip.as_micros() as u64,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&whole).unwrap_or_default()
        );
        return;
    }
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    match &out.value {
        Value::String(s) => println!("{s}"),
        Value::Null => {}
        v => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}
