//! `sremote-gateway`: serve the NEWT REST API on this host, or manage its users file.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sremote_gateway::{Config, GatewayError, server, users};

/// Serve the NEWT REST API for sremote clients on this host.
#[derive(Debug, Parser)]
#[command(
    name = "sremote-gateway",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// The TOML configuration file (see the crate documentation for its keys).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add a user or set their password (read from stdin, or prompted on a terminal).
    Adduser {
        #[arg(long, value_name = "FILE")]
        users: PathBuf,
        name: String,
    },
    /// Make a bearer token for a user; it is printed once and stored only as a hash.
    Addtoken {
        #[arg(long, value_name = "FILE")]
        users: PathBuf,
        name: String,
    },
    /// Check a configuration file (and its users file and roots) and exit.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn read_password() -> Result<String, GatewayError> {
    let err = |e: std::io::Error| GatewayError::Users(format!("reading the password: {e}"));
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("password: ").map_err(err)?;
        let b = rpassword::prompt_password("again: ").map_err(err)?;
        if a != b {
            return Err(GatewayError::Users("the passwords differ".into()));
        }
        Ok(a)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(err)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    }
}

fn run(cli: Cli) -> Result<(), GatewayError> {
    match cli.command {
        Some(Command::Adduser { users, name }) => {
            let password = read_password()?;
            users::add_user(&users, &name, &password)?;
            eprintln!("set the password of {name} in {}", users.display());
            Ok(())
        }
        Some(Command::Addtoken { users, name }) => {
            let token = users::add_token(&users, &name)?;
            println!("{token}");
            eprintln!(
                "added a token for {name} to {} (shown once; send it as `Authorization: Bearer`)",
                users.display()
            );
            Ok(())
        }
        Some(Command::Check { config }) => {
            let cfg = Config::load(&config)?;
            let state = sremote_gateway::state::AppState::new(cfg)?;
            eprintln!(
                "ok: {} users, machines {:?}",
                state.users.current().len(),
                state.config.machines
            );
            Ok(())
        }
        None => {
            let Some(path) = cli.config else {
                return Err(GatewayError::Config(
                    "give --config FILE (or a subcommand; see --help)".into(),
                ));
            };
            let cfg = Config::load(&path)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| GatewayError::Serve(format!("cannot start the runtime: {e}")))?;
            rt.block_on(server::serve(cfg))
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sremote-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
