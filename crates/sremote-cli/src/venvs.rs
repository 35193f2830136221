//! `sremote venvs HOST [--rm NAME]`: the project venvs on a host (`<sremote dir>/venvs`),
//! with their Python packages; `--rm` deletes one.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use serde_json::json;
use sremote_core::Error;

use crate::fanout::{self, Outcome};
use crate::hosts::{HostOptions, connect_spec};

/// List the project venvs on HOST with their packages, or delete one.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  sremote install gpu1 --venv projA 'numpy==1.26.4'   # creates <sremote dir>/venvs/projA
  sremote venvs gpu1                                  # every venv and its packages
  sremote call gpu1 --venv projA numpy __version__.__str__
  sremote venvs gpu1 --rm projA")]
pub struct VenvsArgs {
    /// Host, config name, a,b,c or @group.
    pub host: String,
    /// Delete this venv.
    #[arg(long, value_name = "NAME")]
    pub rm: Option<String>,
}

pub async fn venvs(a: VenvsArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let targets = opts.resolve(&[&a.host])?;
    let rm = Arc::new(a.rm);
    let o = opts.clone();
    Ok(fanout::each(targets, &opts, move |spec| {
        let (opts, rm) = (o.clone(), rm.clone());
        async move {
            let client = connect_spec(&spec, &opts).await?.client();
            if let Some(name) = &*rm {
                client.remove_venv(name).await?;
                return Ok(Outcome::text(format!("removed the venv {name}"), json!({"removed": name})));
            }
            let venvs = client.list_venvs().await?;
            let mut text = String::new();
            if venvs.is_empty() {
                text.push_str("no project venvs (create one with `sremote install HOST --venv NAME PACKAGE…`)");
            }
            for v in &venvs {
                let pkgs: Vec<String> =
                    v.packages.iter().map(|(n, ver)| format!("{n}=={ver}")).collect();
                text.push_str(&format!(
                    "{}  (Python {}, {} packages)\n  {}\n",
                    v.name,
                    v.version,
                    pkgs.len(),
                    pkgs.join(" ")
                ));
            }
            Ok(Outcome::text(text, json!({"venvs": venvs})))
        }
    })
    .await)
}
