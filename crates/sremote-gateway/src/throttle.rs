//! Slowing down password guessing: after `free` failed logins in a row for one user name,
//! each further attempt must wait — 1 s, then 2 s, 4 s, … up to `max_delay` — and is
//! answered `429 Too Many Requests` with `Retry-After` without checking the password
//! (which also spares the argon2 work). A successful login clears the count. An attacker
//! can thereby delay a user's logins by at most `max_delay`, never lock them out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept at most; beyond, the ones idle longest are forgotten.
const MAX_ENTRIES: usize = 10_000;
/// An entry idle this long is forgotten (its count starts again).
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    not_before: Option<Instant>,
}

/// Failed-login bookkeeping per user name.
#[derive(Debug)]
pub struct LoginThrottle {
    free: u32,
    max_delay: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl LoginThrottle {
    /// `free` failures in a row are let through at once; then delays up to `max_delay`.
    pub fn new(free: u32, max_delay: Duration) -> LoginThrottle {
        LoginThrottle {
            free,
            max_delay,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long `user` must still wait before a password is checked again (`None`: now).
    pub fn wait(&self, user: &str) -> Option<Duration> {
        let now = Instant::now();
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let until = map.get(user)?.not_before?;
        (until > now).then(|| until - now)
    }

    /// Record a failed login of `user`; returns the delay now imposed, if any.
    pub fn failed(&self, user: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES && !map.contains_key(user) {
            map.retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
            if map.len() >= MAX_ENTRIES {
                // Still full (many names tried at once): forget the idlest tenth.
                let mut lasts: Vec<Instant> = map.values().map(|e| e.last).collect();
                lasts.sort();
                let cut = lasts[lasts.len() / 10];
                map.retain(|_, e| e.last > cut);
            }
        }
        let entry = map.entry(user.to_string()).or_insert(Entry {
            failures: 0,
            last: now,
            not_before: None,
        });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        let over = entry.failures.saturating_sub(self.free);
        let delay = (over > 0).then(|| {
            let secs = 1u64 << (over - 1).min(20);
            Duration::from_secs(secs).min(self.max_delay)
        });
        entry.not_before = delay.map(|d| now + d);
        delay
    }

    /// A successful login of `user`: its count starts again.
    pub fn succeeded(&self, user: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_after_the_free_failures_and_reset_on_success() {
        let t = LoginThrottle::new(3, Duration::from_secs(5));
        for _ in 0..3 {
            assert_eq!(t.failed("ann"), None);
            assert_eq!(t.wait("ann"), None);
        }
        assert_eq!(t.failed("ann"), Some(Duration::from_secs(1)));
        assert!(t.wait("ann").is_some_and(|w| w <= Duration::from_secs(1)));
        assert_eq!(t.wait("bob"), None, "other users are not affected");
        assert_eq!(t.failed("ann"), Some(Duration::from_secs(2)));
        assert_eq!(t.failed("ann"), Some(Duration::from_secs(4)));
        assert_eq!(t.failed("ann"), Some(Duration::from_secs(5)), "capped");
        assert_eq!(t.failed("ann"), Some(Duration::from_secs(5)));
        t.succeeded("ann");
        assert_eq!(t.wait("ann"), None);
        assert_eq!(t.failed("ann"), None);
    }

    #[test]
    fn many_names_stay_bounded() {
        let t = LoginThrottle::new(1, Duration::from_secs(1));
        for i in 0..(MAX_ENTRIES + 500) {
            t.failed(&format!("user{i}"));
        }
        assert!(t.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
