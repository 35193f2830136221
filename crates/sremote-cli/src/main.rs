//! `sremote`: run functions and commands on other machines.
//!
//! Exit codes: 0 success; 1 the remote call or command failed (remote error, endpoint
//! problem; with several hosts: some host failed); 2 usage error (bad arguments, bad
//! config); 3 transport error (cannot reach or talk to the host; with several hosts: some
//! host could not be reached); 130 interrupted (Ctrl-C). `sremote exec` and `sremote run`
//! on one host exit with the remote program's own exit code.
//!
//! Each command lives in its own module; `run()` only dispatches.

mod batch;
mod bench;
mod commands;
mod connections;
mod exec;
mod fanout;
mod hostcmd;
mod hosts;
mod ignorefiles;
mod install;
mod jobs;
mod jobs_ls;
mod jobs_reach;
mod modules;
mod output;
mod placement;
mod probe;
mod progress;
mod run;
mod submit;
mod sync;
mod transfer;
mod tunnel;
mod venvs;
mod walk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};
use sremote_core::Error;

pub(crate) use commands::mode_name;
use hosts::HostOptions;
use sremote_hosts::config;

const EXAMPLES: &str = "Examples:
  sremote call local os getenv HOME
  sremote exec lab1,lab2 -- uname -a                # several hosts: output prefixed by host
  sremote run gpu1 --cwd proj -- python train.py    # live output; Ctrl-C stops it on the host
  sremote probe @cluster --sort free-mem            # which machine has room for my job
  sremote push gpu1 ./data data --exclude '*.tmp'   # directories too, with a progress bar
  sremote sync ./src gpu1:proj/src                  # only what changed
  sremote tunnel gpu1 8888                          # a notebook on gpu1 at localhost:8888
  sremote hosts check

HOST is `local`, an ssh destination (user@host, ssh://user@host:port, an ssh alias), a
newt+https:// URL, a name from the hosts config (~/.config/sremote/config.toml), a comma
list a,b,c or a group @name. See `sremote hosts --help` for the config format.

Exit codes:
  0    success
  1    the remote call or command failed (several hosts: some host failed)
  2    usage error: bad arguments or a bad config file
  3    transport error: a host cannot be reached or talked to (several hosts: some host)
  130  interrupted by Ctrl-C
  `exec` and `run` on one host exit with the remote program's own exit code.";

#[derive(Parser, Debug)]
#[command(name = "sremote", version, about = "Run functions and commands on other machines", after_help = EXAMPLES)]
struct Cli {
    /// ssh config file to use for ssh hosts (like `ssh -F`).
    #[arg(long, global = true, env = "SREMOTE_SSH_CONFIG", value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// The hosts config file (default: ~/.config/sremote/config.toml).
    #[arg(long, global = true, env = "SREMOTE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Work on at most N hosts at once (several hosts: a,b,c or @group); with --no-persist,
    /// at most N logins are open at once too.
    #[arg(long, global = true, default_value_t = 8, value_name = "N")]
    parallel: usize,
    /// Machine-readable output: JSON (one object per host when there are several).
    #[arg(long, global = true)]
    json: bool,
    /// Use this custom endpoint binary (built with the sremote-endpoint library) instead
    /// of the stock one on every host this command talks to: installed first when missing
    /// or changed. Wins over a host's `endpoint` in the config.
    #[arg(
        long,
        global = true,
        env = "SREMOTE_CUSTOM_ENDPOINT",
        value_name = "PATH"
    )]
    endpoint: Option<PathBuf>,
    /// Do not keep the ssh login for later commands: log in for this command only, and
    /// log out when it ends (default: the login stays up, unused, for 10 minutes, or the
    /// host's `persist` in the config).
    #[arg(long, global = true, env = "SREMOTE_NO_PERSIST")]
    no_persist: bool,
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Call MODULE.FUNCTION(ARG…) on HOST and print the value.
    Call(commands::CallArgs),
    /// Run a program on HOST; its stdout, stderr and exit code pass through.
    Exec(exec::ExecArgs),
    /// Run a program on HOST with live output; Ctrl-C stops it on the host.
    Run(run::RunArgs),
    /// Copy a local file or directory to HOST.
    Push(transfer::PushArgs),
    /// Copy a file or directory from HOST.
    Pull(transfer::PullArgs),
    /// Send a local directory to HOST:DIR, only the files that changed.
    Sync(sync::SyncArgs),
    /// A table of hosts' cpus, load, free memory and disk, GPUs, endpoint and latency.
    Probe(probe::ProbeArgs),
    /// List the configured hosts, or check that they are reachable.
    Hosts(hostcmd::HostsArgs),
    /// Forward a local port to a port on HOST, until Ctrl-C.
    Tunnel(tunnel::TunnelArgs),
    /// Install the endpoint on HOST (a no-op when the right one is there).
    Bootstrap(commands::BootstrapArgs),
    /// Install Python packages on HOST for the functions you call there.
    Install(install::InstallArgs),
    /// List the modules and Python packages on HOST, or check that some are there.
    Modules(modules::ModulesArgs),
    /// List the project venvs on HOST with their packages, or delete one.
    Venvs(venvs::VenvsArgs),
    /// Measure call latency and throughput: `os.getenv("HOME")` N times.
    Bench(commands::BenchArgs),
    /// Run MODULE.FUNCTION(ARG…) on HOST as a detached job (or through Slurm, SGE, PBS); prints its id.
    Submit(submit::SubmitArgs),
    /// The persisted ssh logins later commands reuse: destination, age, idle time.
    Connections(connections::ConnectionsArgs),
    /// Close the persisted ssh login to HOST (or all of them, --all).
    Disconnect(connections::DisconnectArgs),
    /// Detached jobs: ls, show, log [-f], cancel, result, rm.
    Jobs {
        #[command(subcommand)]
        what: jobs::JobsCommand,
    },
    /// About the endpoint binary this program deploys.
    #[command(after_help = ENDPOINT_EXAMPLES)]
    Endpoint {
        #[command(subcommand)]
        what: EndpointCommand,
    },
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    #[command(after_help = "Examples:
  sremote completions bash > ~/.local/share/bash-completion/completions/sremote
  sremote completions zsh > ~/.zfunc/_sremote
  sremote completions fish > ~/.config/fish/completions/sremote.fish")]
    Completions { shell: clap_complete::Shell },
}

const ENDPOINT_EXAMPLES: &str = "Examples:
  sremote endpoint info                            # the endpoint bundled in sremote
  sremote endpoint info --json
  sremote endpoint info --endpoint ./my-endpoint   # a custom endpoint: its install name
  SREMOTE_ENDPOINT=./sremote-endpoint-linux-aarch64 sremote endpoint info
  sremote endpoint extract ./dist/                  # the bundled binary, for deploy/deploy-endpoint.sh
  sremote endpoint extract --target x86_64-unknown-linux-gnu ./sremote-endpoint";

#[derive(Subcommand, Debug)]
enum EndpointCommand {
    /// Version, SHA-256, target and origin of the endpoint binary (`--endpoint`: that
    /// custom endpoint; `$SREMOTE_ENDPOINT`: that build).
    #[command(after_help = ENDPOINT_EXAMPLES)]
    Info,
    /// Write the endpoint binary to PATH (a file, or a directory to put it in) for a
    /// manual deployment (deploy/deploy-endpoint.sh).
    #[command(after_help = ENDPOINT_EXAMPLES)]
    Extract {
        /// Where to write it (a directory gets `sremote-endpoint-<version>`).
        path: std::path::PathBuf,
        /// Refuse unless the binary is for this target (e.g. x86_64-unknown-linux-gnu).
        #[arg(long, value_name = "TRIPLE")]
        target: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
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
        .with_ansi(output::colour_stderr())
        .with_writer(std::io::stderr)
        .init();
    // One thread: the CLI waits on the network, and a single-threaded runtime has no
    // cross-thread wake-ups (measured: more calls/s in flight, same latency).
    let mut builder = tokio::runtime::Builder::new_current_thread();
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let json = cli.json;
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => output::report(&e, json, serde_json::json!({})),
    };
    // Do not wait for a blocked stdin reader (`run` forwards stdin) or idle tasks.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let mut host_options = HostOptions::new(
        cli.ssh_config.clone(),
        cli.config.clone(),
        cli.parallel,
        cli.json,
        cli.endpoint.clone(),
    );
    host_options.no_persist = cli.no_persist;
    let opts = Arc::new(host_options);
    match cli.command {
        Command::Call(a) => commands::call(a, opts).await,
        Command::Exec(a) => exec::exec(a, opts).await,
        Command::Run(a) => run::run(a, opts).await,
        Command::Push(a) => transfer::push(a, opts).await,
        Command::Pull(a) => transfer::pull(a, opts).await,
        Command::Sync(a) => sync::sync(a, opts).await,
        Command::Probe(a) => probe::probe(a, opts).await,
        Command::Hosts(a) => hostcmd::hosts(a, opts).await,
        Command::Tunnel(a) => tunnel::tunnel(a, opts).await,
        Command::Bootstrap(a) => commands::bootstrap(a, opts).await,
        Command::Install(a) => install::install(a, opts).await,
        Command::Modules(a) => modules::modules(a, opts).await,
        Command::Venvs(a) => venvs::venvs(a, opts).await,
        Command::Bench(a) => commands::bench(a, opts).await,
        Command::Submit(a) => submit::submit(a, &opts).await,
        Command::Jobs { what } => jobs::run(what, &opts).await,
        Command::Connections(a) => connections::connections(a, &opts).await,
        Command::Disconnect(a) => connections::disconnect(a, &opts).await,
        Command::Endpoint {
            what: EndpointCommand::Info,
        } => commands::endpoint_info(cli.json, cli.endpoint.as_deref()),
        Command::Endpoint {
            what: EndpointCommand::Extract { path, target },
        } => {
            commands::endpoint_extract(&path, target.as_deref(), cli.endpoint.as_deref(), cli.json)
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "sremote", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}
