//! Interactive logins: a host that asks for a password through PAM keyboard-interactive
//! (as sites with one-time codes do), with `sremote` on a pseudo-terminal.
mod common;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, ssh_host, text};
use sremote_testkit::{Error as KitError, Sshd};

const PASSWORD: &str = "s3cret one-time";

fn password_sshd() -> Option<Sshd> {
    match Sshd::start_with_password(PASSWORD) {
        Ok(s) => Some(s),
        Err(KitError::Skip(why)) => {
            eprintln!("skipped: {why}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn accepted(sshd: &Sshd) -> usize {
    sshd.log().matches("Accepted keyboard-interactive").count()
}

/// Run `cmd` in a new session whose controlling terminal is a fresh pty; answer every
/// password prompt with `answer`. Returns the exit status, everything the terminal
/// showed, and how many prompts there were.
fn on_terminal(mut cmd: Command, answer: &str) -> (ExitStatus, String, usize) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors; the other arguments may be null.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: fresh descriptors owned here.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for (i, io) in [0, 1, 2]
        .into_iter()
        .map(|i| (i, slave.try_clone().unwrap()))
    {
        let stdio = Stdio::from(io);
        match i {
            0 => cmd.stdin(stdio),
            1 => cmd.stdout(stdio),
            _ => cmd.stderr(stdio),
        };
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd); // it holds copies of the terminal's slave side
    drop(slave);
    let shown = Arc::new(Mutex::new(String::new()));
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let mut writer = std::fs::File::from(master);
    let (seen, answer) = (shown.clone(), format!("{answer}\n"));
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    let reader_thread = std::thread::spawn(move || {
        let (mut buf, mut prompts) = ([0u8; 4096], 0);
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut s = seen.lock().unwrap();
            s.push_str(&String::from_utf8_lossy(&buf[..n]));
            let now = s.matches("assword:").count();
            while prompts < now {
                prompts += 1;
                counted.store(prompts, std::sync::atomic::Ordering::SeqCst);
                let _ = writer.write_all(answer.as_bytes());
            }
        }
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sremote hangs: {}",
            shown.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Everything that had the terminal open has closed it (the persisted ssh master
    // too: it does not keep the terminal it asked on), so the reader sees its end.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reader_thread.is_finished() {
        assert!(
            Instant::now() < deadline,
            "something keeps the terminal open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let prompts = count.load(std::sync::atomic::Ordering::SeqCst);
    let out = shown.lock().unwrap().clone();
    (status, out, prompts)
}

/// No controlling terminal at all (a new session), stdin from /dev/null.
fn without_terminal(mut cmd: Command) -> std::process::Output {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn the_password_prompt_appears_once_and_later_commands_need_none() {
    let Some(sshd) = password_sshd() else { return };
    let c = Client::new(&ssh_host("pw", &sshd.alias, &sshd.ssh_config));
    let (status, shown, prompts) =
        on_terminal(c.command(&["call", "pw", "os", "getenv", "HOME"]), PASSWORD);
    assert!(status.success(), "{shown}");
    assert_eq!(prompts, 1, "{shown}");
    assert!(shown.contains(&sshd.home.display().to_string()), "{shown}");
    assert!(
        !shown.contains(PASSWORD),
        "the answer is not echoed: {shown}"
    );
    // Later commands, even without a terminal, reuse the login: no prompt.
    for _ in 0..3 {
        let out = without_terminal(c.command(&["exec", "pw", "--", "id", "-un"]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), sshd.user);
    }
    assert_eq!(accepted(&sshd), 1, "{}", sshd.log());
    let out = c.run(&["disconnect", "--all"]);
    assert!(out.status.success());
}

#[test]
fn a_wrong_answer_is_an_auth_error_and_no_terminal_says_how_to_log_in() {
    let Some(sshd) = password_sshd() else { return };
    let c = Client::new(&ssh_host("pw", &sshd.alias, &sshd.ssh_config));
    let (status, shown, prompts) = on_terminal(
        c.command(&["--json", "exec", "pw", "--", "true"]),
        "not the password",
    );
    assert_eq!(status.code(), Some(3), "{shown}");
    assert!(prompts >= 1, "{shown}");
    assert!(shown.contains("\"kind\":\"Auth\""), "{shown}");
    assert!(shown.contains("Permission denied"), "{shown}");
    // Without a terminal and without a prompt callback: fails at once, saying how.
    let started = Instant::now();
    let out = without_terminal(c.command(&["call", "pw", "os", "getenv", "HOME"]));
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(err.contains("no terminal to ask on"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(accepted(&sshd), 0);
}
