//! Slowing down password guessing: after `free` failed logins in a row for one user name,
//! each further attempt must wait — 1 s, then 2 s, 4 s, … up to `max_delay` — and is
//! answered `429 Too Many Requests` with `Retry-After` without checking the password
//! (which also spares the argon2 work). A successful login clears the count. An attacker
//! can thereby delay a user's logins by at most `max_delay`, never lock them out.
//!
//! Concurrent attempts are counted like sequential ones: an attempt is *reserved* under
//! the lock before its password is checked, and the attempts in flight count as failures
//! until they finish. Beyond the free attempts, one attempt at a time is let through;
//! the others wait for it to finish (a success lets them in, a failure answers them 429).
//! So 200 concurrent guesses check at most `free + 1` passwords, while 50 concurrent
//! logins with the right password all succeed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Entries kept at most; beyond, the ones idle longest are forgotten.
const MAX_ENTRIES: usize = 10_000;
/// An entry idle this long is forgotten (its count starts again).
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    in_flight: u32,
    last: Instant,
    not_before: Option<Instant>,
}

/// Failed-login bookkeeping per user name.
#[derive(Debug)]
pub struct LoginThrottle {
    free: u32,
    max_delay: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    /// Woken whenever an attempt finishes.
    finished: Notify,
}

/// A reserved login attempt: report its outcome with [`finish`](Attempt::finish). Dropped
/// without a verdict (the client went away), it counts as failed.
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    user: String,
    done: bool,
}

impl Attempt<'_> {
    /// Whether the password was right.
    pub fn finish(mut self, ok: bool) {
        self.done = true;
        self.throttle.finish(&self.user, ok);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.throttle.finish(&self.user, false);
        }
    }
}

impl LoginThrottle {
    /// `free` failures in a row are let through at once; then delays up to `max_delay`.
    pub fn new(free: u32, max_delay: Duration) -> LoginThrottle {
        LoginThrottle {
            free,
            max_delay,
            entries: Mutex::new(HashMap::new()),
            finished: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserve a login attempt of `user` before its password is checked: `Err(wait)` when
    /// it must wait that long (answer 429), else the reserved [`Attempt`]. May wait for
    /// attempts in flight to finish first (see the module docs).
    pub async fn attempt(&self, user: &str) -> Result<Attempt<'_>, Duration> {
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(verdict) = self.try_reserve(user) {
                return verdict.map(|()| Attempt {
                    throttle: self,
                    user: user.to_string(),
                    done: false,
                });
            }
            notified.await;
        }
    }

    /// Under the lock: `Some(Ok)` reserved, `Some(Err(wait))` delayed, `None` wait for an
    /// attempt in flight.
    fn try_reserve(&self, user: &str) -> Option<Result<(), Duration>> {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES && !map.contains_key(user) {
            forget_idlest(&mut map, now);
        }
        let entry = map.entry(user.to_string()).or_insert(Entry {
            failures: 0,
            in_flight: 0,
            last: now,
            not_before: None,
        });
        if let Some(until) = entry.not_before
            && until > now
        {
            return Some(Err(until - now));
        }
        if entry.in_flight == 0 && now.duration_since(entry.last) >= FORGET_AFTER {
            entry.failures = 0;
        }
        if entry.in_flight > 0 && entry.failures + entry.in_flight > self.free {
            return None;
        }
        entry.in_flight += 1;
        entry.last = now;
        Some(Ok(()))
    }

    fn finish(&self, user: &str, ok: bool) {
        let now = Instant::now();
        {
            let mut map = self.lock();
            if let Some(entry) = map.get_mut(user) {
                entry.in_flight = entry.in_flight.saturating_sub(1);
                entry.last = now;
                if ok {
                    entry.failures = 0;
                    entry.not_before = None;
                } else {
                    entry.failures = entry.failures.saturating_add(1);
                    let over = entry.failures.saturating_sub(self.free);
                    entry.not_before = (over > 0).then(|| {
                        let secs = 1u64 << (over - 1).min(20);
                        now + Duration::from_secs(secs).min(self.max_delay)
                    });
                }
                if ok && entry.in_flight == 0 {
                    map.remove(user);
                }
            }
        }
        self.finished.notify_waiters();
    }
}

/// Make room in a full map: forget entries idle for long, else the idlest tenth.
fn forget_idlest(map: &mut HashMap<String, Entry>, now: Instant) {
    map.retain(|_, e| e.in_flight > 0 || now.duration_since(e.last) < FORGET_AFTER);
    if map.len() >= MAX_ENTRIES {
        // Still full (many names tried at once): forget the idlest tenth.
        let mut lasts: Vec<Instant> = map.values().map(|e| e.last).collect();
        lasts.sort();
        let cut = lasts[lasts.len() / 10];
        map.retain(|_, e| e.in_flight > 0 || e.last > cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fail(t: &LoginThrottle, user: &str) -> Result<(), Duration> {
        t.attempt(user).await.map(|a| a.finish(false))
    }

    #[tokio::test]
    async fn delays_grow_after_the_free_failures_and_reset_on_success() {
        let t = LoginThrottle::new(3, Duration::from_secs(5));
        for _ in 0..4 {
            assert_eq!(fail(&t, "ann").await, Ok(()));
        }
        let wait = fail(&t, "ann").await.expect_err("delayed");
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(
            fail(&t, "bob").await,
            Ok(()),
            "other users are not affected"
        );
        t.lock().get_mut("ann").expect("entry").not_before = None;
        t.attempt("ann")
            .await
            .expect("after the delay")
            .finish(true);
        assert!(t.lock().get("ann").is_none(), "a success clears the count");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_guesses_are_counted_before_any_password_is_checked() {
        let t = std::sync::Arc::new(LoginThrottle::new(5, Duration::from_secs(60)));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move {
                    let a = t.attempt("ann").await.ok()?;
                    tokio::time::sleep(Duration::from_millis(20)).await; // the argon2 work
                    a.finish(false);
                    Some(())
                })
            })
            .collect();
        let mut checked = 0;
        for task in tasks {
            checked += usize::from(task.await.expect("task").is_some());
        }
        assert_eq!(
            checked, 6,
            "5 free attempts and the one that starts the delay"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_right_passwords_all_get_in() {
        let t = std::sync::Arc::new(LoginThrottle::new(2, Duration::from_secs(60)));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move {
                    let a = t.attempt("ann").await?;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    a.finish(true);
                    Ok::<(), Duration>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("let in");
        }
    }

    #[tokio::test]
    async fn many_names_stay_bounded() {
        let t = LoginThrottle::new(1, Duration::from_secs(1));
        for i in 0..(MAX_ENTRIES + 500) {
            let _ = fail(&t, &format!("user{i}")).await;
        }
        assert!(t.lock().len() <= MAX_ENTRIES);
    }
}
