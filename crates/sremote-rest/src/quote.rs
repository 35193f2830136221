//! Turning an argv (plus env and cwd) into a NEWT `executable` command line.
//!
//! NEWT splits `executable` into words like a POSIX shell and runs them without a shell.
//! Every word that is not plainly safe is put in single quotes (`'` itself becomes
//! `'\''`), which both word splitting and a real shell give back byte for byte.
//!
//! NEWT has no fields for environment variables or a working directory, so a command that
//! needs them runs through GNU `env` (coreutils ≥ 8.28 for `-C`):
//! `env -C CWD -- K=V … PROGRAM ARGS…`. `env` treats every word with a `=` before the
//! program as an assignment, so a program name containing `=` cannot be run this way and
//! is refused. A working directory that does not exist makes `env` exit 125 with
//! `env: cannot change directory to …`, which the connector reports as `NotFound`.

use sremote_core::RemoteCommand;

/// Quote one word for POSIX word splitting (see [`sremote_core::shell::quote`]).
pub fn quote(word: &str) -> String {
    sremote_core::shell::quote(word).into_owned()
}

/// Whether the command needs the `env` wrapper (env vars or a working directory).
pub fn needs_env(cmd: &RemoteCommand) -> bool {
    !cmd.env.is_empty() || cmd.cwd.as_deref().is_some_and(|c| !c.is_empty())
}

/// The argv that runs `cmd`, wrapped in `env` when it has env vars or a cwd.
/// `Err` names what cannot be expressed.
pub fn argv(cmd: &RemoteCommand) -> Result<Vec<String>, &'static str> {
    if !needs_env(cmd) {
        return Ok(std::iter::once(&cmd.program)
            .chain(&cmd.args)
            .cloned()
            .collect());
    }
    if cmd.program.contains('=') {
        return Err(
            "a program name containing `=` cannot be run with env vars or a cwd over NEWT (it goes through `env`)",
        );
    }
    let mut argv = vec!["env".to_string()];
    if let Some(cwd) = cmd.cwd.as_deref().filter(|c| !c.is_empty()) {
        argv.push("-C".into());
        argv.push(cwd.to_string());
    }
    argv.push("--".into());
    argv.extend(cmd.env.iter().map(|(k, v)| format!("{k}={v}")));
    argv.push(cmd.program.clone());
    argv.extend(cmd.args.iter().cloned());
    Ok(argv)
}

/// The `executable` command line for `cmd`.
pub fn command_line(cmd: &RemoteCommand) -> Result<String, &'static str> {
    Ok(argv(cmd)?
        .iter()
        .map(|w| quote(w))
        .collect::<Vec<_>>()
        .join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("abc-1.2/x"), "abc-1.2/x");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("a b\nc"), "'a b\nc'");
        assert_eq!(quote("~"), "'~'");
        assert_eq!(quote("#x"), "'#x'");
        assert_eq!(quote("A=b"), "'A=b'");
    }

    #[test]
    fn env_and_cwd_go_through_env() {
        let plain = RemoteCommand::new("echo").arg("a b");
        assert_eq!(command_line(&plain).expect("ok"), "echo 'a b'");
        let cmd = RemoteCommand::new("prog")
            .arg("x")
            .env("K", "v w")
            .cwd("dir one");
        assert_eq!(
            command_line(&cmd).expect("ok"),
            "env -C 'dir one' -- 'K=v w' prog x"
        );
        let cmd = RemoteCommand::new("-dash").env("K", "v");
        assert_eq!(argv(&cmd).expect("ok"), ["env", "--", "K=v", "-dash"]);
        assert!(argv(&RemoteCommand::new("a=b").cwd("d")).is_err());
        assert!(argv(&RemoteCommand::new("a=b")).is_ok());
    }
}
