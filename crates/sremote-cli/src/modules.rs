//! `sremote modules HOST [--check NAME…]`: what a host can run — the endpoint's modules
//! (built-in and plugins) and the Python packages of the interpreter Python calls use
//! (the endpoint's venv when there is one) — and whether named modules are there.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use serde_json::{Value, json};
use sremote_core::Error;
use sremote_core::protocol::ShippedModule;

use crate::fanout::{self, Outcome};
use crate::hosts::{Client, HostOptions, connect_spec};
use crate::output;

/// List the modules and Python packages on HOST, or check that some are there.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  sremote modules gpu1                       # endpoint modules, plugins, Python packages
  sremote modules @lab --check numpy calc    # exit 1 naming the hosts and what they lack
  sremote modules gpu1 --json

A NAME is there when it is one of the endpoint's modules (built-in or plugin) or a
module the host's Python can import (`numpy`, `scipy.linalg`). Install what is missing
with `sremote install HOST PACKAGE` (or `--git URL`).")]
pub struct ModulesArgs {
    /// Host, config name, a,b,c or @group.
    pub host: String,
    /// Only check that these modules are there; exit 1 naming those that are not.
    #[arg(long, value_name = "NAME", num_args = 1..)]
    pub check: Vec<String>,
}

/// Run on the host's Python (shipped with the call): its packages.
const PROBE_PY: &str = r#"import importlib.metadata, sys


def packages():
    found = {}
    for d in importlib.metadata.distributions():
        name = d.metadata["Name"]
        if name and name not in found:
            found[name] = d.version
    return {
        "python": sys.executable,
        "version": sys.version.split()[0],
        "packages": [{"name": n, "version": found[n]} for n in sorted(found, key=str.lower)],
    }

"#;

const PROBE_MODULE: &str = "sremote_cli_modules";

fn probe_code() -> ShippedModule {
    ShippedModule::new(PROBE_MODULE, PROBE_PY)
}

pub async fn modules(a: ModulesArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let targets = opts.resolve(&[&a.host])?;
    let check = Arc::new(a.check);
    let o = opts.clone();
    Ok(fanout::each(targets, &opts, move |spec| {
        let (opts, check) = (o.clone(), check.clone());
        async move {
            let client = connect_spec(&spec, &opts).await?.client();
            let listing: Value = client.call("sys", "modules").await?.value;
            let endpoint: Vec<&Value> = listing["modules"]
                .as_array()
                .map(|m| m.iter().collect())
                .unwrap_or_default();
            if check.is_empty() {
                Ok(list(&client, &endpoint).await)
            } else {
                checked(&client, &endpoint, &check).await
            }
        }
    })
    .await)
}

/// The listing of one host: endpoint modules, then Python packages (or why there are
/// none: no Python on the host is not a failure of the listing).
async fn list(client: &Client, endpoint: &[&Value]) -> Outcome {
    let rows: Vec<Vec<String>> = endpoint
        .iter()
        .map(|m| {
            let n = m["functions"].as_array().map_or(0, Vec::len);
            vec![
                m["name"].as_str().unwrap_or("?").to_string(),
                m["kind"].as_str().unwrap_or("?").to_string(),
                m["version"].as_str().unwrap_or("").to_string(),
                if n == 0 { String::new() } else { n.to_string() },
            ]
        })
        .collect();
    let mut text = output::table(&["MODULE", "KIND", "VERSION", "FUNCTIONS"], &rows);
    let python = client
        .call::<Value>(PROBE_MODULE, "packages")
        .code([probe_code()])
        .await;
    let python_json = match &python {
        Ok(out) => {
            let p = &out.value;
            let pkgs: Vec<Vec<String>> = p["packages"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            vec![
                                x["name"].as_str().unwrap_or("?").to_string(),
                                x["version"].as_str().unwrap_or("?").to_string(),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            text.push_str(&format!(
                "\nPython {} ({}): {} packages\n",
                p["version"].as_str().unwrap_or("?"),
                p["python"].as_str().unwrap_or("?"),
                pkgs.len()
            ));
            text.push_str(&output::table(&["PACKAGE", "VERSION"], &pkgs));
            p.clone()
        }
        Err(e) => {
            let (msg, _) = output::error_lines(e);
            text.push_str(&format!("\nPython packages: not listed ({msg})\n"));
            json!({"error": output::error_json(e)})
        }
    };
    let json = json!({"modules": endpoint, "python": python_json});
    Outcome::text(text, json)
}

/// `--check`: every name an endpoint module or importable by the host's Python, else
/// exit 1 naming the missing ones.
async fn checked(client: &Client, endpoint: &[&Value], names: &[String]) -> Result<Outcome, Error> {
    let is_endpoint = |n: &str| endpoint.iter().any(|m| m["name"] == n);
    let ask: Vec<&String> = names.iter().filter(|n| !is_endpoint(n)).collect();
    let importable = match ask.is_empty() {
        true => Default::default(),
        false => {
            let ask: Vec<String> = ask.into_iter().cloned().collect();
            sremote_hosts::place::importable(client, &ask).await?
        }
    };
    let mut found = serde_json::Map::new();
    let mut missing = Vec::new();
    for n in names {
        let there = is_endpoint(n) || importable.get(n) == Some(&true);
        found.insert(n.clone(), json!(there));
        if !there {
            missing.push(n.clone());
        }
    }
    let json = json!({"check": found, "missing": missing});
    if missing.is_empty() {
        return Ok(Outcome::text(
            format!("all there: {}", names.join(" ")),
            json,
        ));
    }
    Ok(Outcome {
        json,
        code: 1,
        failure: Some(format!(
            "missing on {}: {} — install with `sremote install {} {}` (or a plugin with \
             `RemoteClient::install_module`)",
            client.host(),
            missing.join(", "),
            client.host(),
            missing.join(" ")
        )),
        ..Default::default()
    })
}
