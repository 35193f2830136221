//! `sremote install HOST PACKAGE… [-r requirements.txt]`: Python packages into the
//! endpoint's venv on the host (`<sremote>/venv`, created when missing), which Python
//! calls use from then on.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use serde_json::json;
use sremote_core::Error;

use crate::fanout::{self, Outcome};
use crate::hosts::{HostOptions, connect_spec};

/// Install Python packages on HOST for the functions you call there.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  sremote install bench numpy 'scipy>=1.10'
  sremote install @lab -r requirements.txt          # every host of a group

Packages go into the endpoint's venv on the host (<sremote dir>/venv, created with
`python3 -m venv` when missing); Python calls use that interpreter from then on.")]
pub struct InstallArgs {
    /// Host, config name, a,b,c or @group.
    pub host: String,
    /// Requirement specs as pip takes them (`numpy`, `requests>=2`).
    pub packages: Vec<String>,
    /// A local requirements file (one spec per line; `#` comments).
    #[arg(short = 'r', long = "requirement", value_name = "FILE")]
    pub requirements: Vec<String>,
}

/// The specs of the command line and of the requirements files.
fn specs(a: &InstallArgs) -> Result<Vec<String>, Error> {
    let mut out = a.packages.clone();
    for file in &a.requirements {
        let text = std::fs::read_to_string(file).map_err(|e| {
            Error::Usage(format!(
                "cannot read the requirements file {file}: {e} — check the path"
            ))
        })?;
        for line in text.lines() {
            let spec = line.split('#').next().unwrap_or_default().trim();
            if spec.starts_with('-') {
                return Err(Error::Usage(format!(
                    "{file}: pip options such as {spec:?} are not passed on — list package specs only"
                )));
            }
            if !spec.is_empty() {
                out.push(spec.to_string());
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Usage(
            "nothing to install — name packages (`sremote install HOST numpy`) or a file (`-r requirements.txt`)"
                .into(),
        ));
    }
    Ok(out)
}

pub async fn install(a: InstallArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let specs = Arc::new(specs(&a)?);
    let targets = opts.resolve(&[&a.host])?;
    let o = opts.clone();
    Ok(fanout::each(targets, &opts, move |spec| {
        let (opts, specs) = (o.clone(), specs.clone());
        async move {
            let client = connect_spec(&spec, &opts).await?.client();
            let report = client.install_python_packages(specs.iter()).await?;
            let text = format!(
                "{}: installed {} into {}{}",
                report.host,
                specs.join(" "),
                report.python,
                if report.created_venv {
                    " (venv created)"
                } else {
                    ""
                }
            );
            let json = json!({"packages": *specs, "python": report.python,
                "created_venv": report.created_venv});
            Ok(Outcome::text(text, json))
        }
    })
    .await)
}
