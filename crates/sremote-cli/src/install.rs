//! `sremote install HOST PACKAGE… [-r requirements.txt] [--git URL[@BRANCH]]`: Python
//! packages into the endpoint's venv on the host (`<sremote>/venv`, created when missing),
//! which Python calls use from then on.

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
  sremote install gpu1 --git https://github.com/me/tools.git@main --name tools

Packages go into the endpoint's venv on the host (<sremote dir>/venv, created with
`python3 -m venv` when missing); Python calls use that interpreter from then on.
--git clones the repository on the host (shallow; the branch or tag after the last @
of a complete URL, e.g. `https://h/x.git@v2`, `git@h:x.git@dev`) and pip-installs it.
What pip and git printed is shown when they fail; `sremote modules HOST` lists what is
there.")]
pub struct InstallArgs {
    /// Host, config name, a,b,c or @group.
    pub host: String,
    /// Requirement specs as pip takes them (`numpy`, `requests>=2`).
    pub packages: Vec<String>,
    /// A local requirements file (one spec per line; `#` comments).
    #[arg(short = 'r', long = "requirement", value_name = "FILE")]
    pub requirements: Vec<String>,
    /// A git repository to clone on the host and pip-install (URL, or URL@BRANCH).
    #[arg(long, value_name = "URL[@BRANCH]")]
    pub git: Option<String>,
    /// The --git package's module name: imported after the install as a check (default:
    /// no check; the clone is named after the repository).
    #[arg(long, value_name = "NAME", requires = "git")]
    pub name: Option<String>,
    /// Install into the project venv `<sremote dir>/venvs/NAME` (created when missing)
    /// instead of the endpoint's; `call/run/submit --venv NAME` use it.
    #[arg(long, value_name = "NAME")]
    pub venv: Option<String>,
}

/// `URL@BRANCH` split at the last `@` when what comes before it is a whole URL (it has a
/// path: a `/` after the scheme, or scp-like `host:path`), so `git@host:x.git` and
/// `https://user@host/x.git` keep their user.
pub fn split_git(spec: &str) -> (&str, &str) {
    if let Some((url, branch)) = spec.rsplit_once('@') {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let has_path = rest.contains('/') || (!url.contains("://") && rest.contains(':'));
        if has_path && !branch.is_empty() && !branch.contains(':') {
            return (url, branch);
        }
    }
    (spec, "")
}

/// The directory name of a `--git` clone without `--name`: the last path part of the
/// URL without `.git`, other characters than `[A-Za-z0-9_.-]` read as `-`.
pub fn git_name(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(url);
    let last = last.strip_suffix(".git").unwrap_or(last);
    let name: String = last
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || "_.-".contains(c) {
            true => c,
            false => '-',
        })
        .collect();
    match name.trim_start_matches(['.', '-']) {
        "" => "repo".to_string(),
        n => n.to_string(),
    }
}

/// The specs of the command line and of the requirements files.
fn specs(a: &InstallArgs) -> Result<Vec<String>, Error> {
    let mut out = a.packages.clone();
    for file in &a.requirements {
        let text = std::fs::read_to_string(file).map_err(|e| {
            Error::usage(
                format!("cannot read the requirements file {file}: {e}"),
                "check the path",
            )
        })?;
        for line in text.lines() {
            let spec = line.split('#').next().unwrap_or_default().trim();
            if spec.starts_with('-') {
                return Err(Error::usage(
                    format!("{file}: pip options such as {spec:?} are not passed on"),
                    "list package specs only",
                ));
            }
            if !spec.is_empty() {
                out.push(spec.to_string());
            }
        }
    }
    if out.is_empty() && a.git.is_none() {
        return Err(Error::usage(
            "nothing to install",
            "name packages (`sremote install HOST numpy`) or a file (`-r requirements.txt`)",
        ));
    }
    Ok(out)
}

/// A `--git` install: URL, branch (empty: the default one), name.
#[derive(Debug, Clone)]
struct GitSpec {
    url: String,
    branch: String,
    name: String,
    /// `--name` given: the name is the module's, checked by importing it.
    check: bool,
}

pub async fn install(a: InstallArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let specs = Arc::new(specs(&a)?);
    let git = a.git.as_deref().map(|g| {
        let (url, branch) = split_git(g);
        GitSpec {
            url: url.to_string(),
            branch: branch.to_string(),
            name: a.name.clone().unwrap_or_else(|| git_name(url)),
            check: a.name.is_some(),
        }
    });
    let git = Arc::new(git);
    let targets = opts.resolve(&[&a.host])?;
    let venv = Arc::new(a.venv.clone());
    let spinner = Spinner::start(opts.json, &format!("installing on {}", a.host));
    let o = opts.clone();
    let code = fanout::each(targets, &opts, move |spec| {
        let (opts, specs, git, venv) = (o.clone(), specs.clone(), git.clone(), venv.clone());
        async move {
            let client = connect_spec(&spec, &opts).await?.client();
            if venv.is_some() {
                client.set_venv(venv.as_deref())?;
            }
            let mut done = Vec::new();
            let mut json = json!({});
            if let Some(g) = &*git {
                let r = match g.check {
                    true => {
                        client
                            .do_install_git_module(&g.url, &g.branch, &g.name)
                            .await?
                    }
                    false => client.install_git_repo(&g.url, &g.branch, &g.name).await?,
                };
                done.push(format!(
                    "{}: installed {} as {} into {}{}",
                    r.host,
                    g.url,
                    g.name,
                    r.python,
                    created(r.created_venv)
                ));
                json["git"] = json!({"url": g.url, "branch": g.branch, "name": g.name});
                json["python"] = json!(r.python);
                json["created_venv"] = json!(r.created_venv);
            }
            if !specs.is_empty() {
                let r = client.install_python_packages(specs.iter()).await?;
                done.push(format!(
                    "{}: installed {} into {}{}",
                    r.host,
                    specs.join(" "),
                    r.python,
                    created(r.created_venv)
                ));
                json["packages"] = json!(*specs);
                json["python"] = json!(r.python);
                let before = json["created_venv"].as_bool().unwrap_or(false);
                json["created_venv"] = json!(before || r.created_venv);
            }
            Ok(Outcome::text(done.join("\n"), json))
        }
    })
    .await;
    spinner.finish();
    Ok(code)
}

fn created(venv: bool) -> &'static str {
    if venv { " (venv created)" } else { "" }
}

/// A spinner on stderr while installs run (a terminal, not `--json`); nothing otherwise.
struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    fn start(json: bool, what: &str) -> Spinner {
        let show = crate::output::stderr_tty()
            && !json
            && std::env::var_os("SREMOTE_NO_PROGRESS").is_none();
        Spinner(show.then(|| {
            let s = indicatif::ProgressBar::new_spinner();
            s.set_message(format!("{what} (pip and git can take minutes)…"));
            s.enable_steady_tick(std::time::Duration::from_millis(120));
            s
        }))
    }

    fn finish(self) {
        if let Some(s) = self.0 {
            s.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_specs() {
        let cases = [
            ("https://h/x.git", ("https://h/x.git", "")),
            ("https://h/x.git@main", ("https://h/x.git", "main")),
            ("https://u@h/x.git", ("https://u@h/x.git", "")),
            ("https://u@h/x.git@v1.2", ("https://u@h/x.git", "v1.2")),
            ("git@github.com:me/x.git", ("git@github.com:me/x.git", "")),
            (
                "git@github.com:me/x.git@feature/y",
                ("git@github.com:me/x.git", "feature/y"),
            ),
            ("/srv/repos/tools@dev", ("/srv/repos/tools", "dev")),
            ("ssh://git@h:2222/x.git", ("ssh://git@h:2222/x.git", "")),
        ];
        for (spec, want) in cases {
            assert_eq!(split_git(spec), want, "{spec}");
        }
        assert_eq!(git_name("https://h/me/tools.git"), "tools");
        assert_eq!(git_name("git@h:me/my-lib.git/"), "my-lib");
        assert_eq!(git_name("/srv/repos/tools"), "tools");
        assert_eq!(git_name("file:///tmp/tiny repo"), "tiny-repo");
        assert_eq!(git_name("https://h/.hidden"), "hidden");
    }
}
