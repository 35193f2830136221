//! Processes by pid, from /proc: only ever the ones this crate started and their children.

/// `(pid, ppid, state)` of every process.
fn table() -> Vec<(u32, u32, char)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) S ppid ...": comm may contain spaces and parentheses
        let after = &stat[stat.rfind(')')? + 2..];
        let mut f = after.split(' ');
        let state = f.next()?.chars().next()?;
        Some((pid, f.next()?.parse().ok()?, state))
    })
    .collect()
}

/// Whether process `pid` exists and is not a zombie (PID 1 on these machines reaps
/// lazily, so a dead child may linger in state Z).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Pids of live processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for &(pid, _, _) in &table() {
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).contains(needle) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Every live descendant of `root` (not `root` itself).
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let table = table();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid, state) in &table {
            if ppid == p && state != 'Z' && !out.contains(&pid) {
                out.push(pid);
                frontier.push(pid);
            }
        }
    }
    out
}

pub(crate) fn kill(pid: u32) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 1
    {
        // SAFETY: a plain syscall on a pid this crate started (or a child of one).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// SIGKILL `root` and all its descendants (children first found, then the root).
pub(crate) fn kill_tree(root: u32) {
    let kids = descendants(root);
    kill(root);
    for p in kids {
        kill(p);
    }
}

/// Pids of the live processes owned by `uid`.
pub(crate) fn owned_by(uid: u32) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    table()
        .into_iter()
        .filter(|&(pid, _, s)| {
            s != 'Z' && std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid)
        })
        .map(|(pid, _, _)| pid)
        .collect()
}
