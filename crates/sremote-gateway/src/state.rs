//! What every request handler shares.

use std::time::Duration;

use tokio::sync::Semaphore;

use crate::auth::SessionStore;
use crate::config::Config;
use crate::error::GatewayError;
use crate::paths::Roots;
use crate::throttle::LoginThrottle;
use crate::users::UsersFile;

/// The gateway's shared state.
#[derive(Debug)]
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// Users and their verifiers (re-read when the file changes).
    pub users: UsersFile,
    /// Live sessions.
    pub sessions: SessionStore,
    /// Where files may be.
    pub roots: Roots,
    /// Bounds the commands running at once.
    pub cmd_slots: Semaphore,
    /// Bounds the argon2 verifications running at once (each needs memory).
    pub login_slots: Semaphore,
    /// Delays password guessing (failed logins per user name).
    pub login_throttle: LoginThrottle,
}

impl AppState {
    /// Load the users file and resolve the roots named by `config`.
    pub fn new(config: Config) -> Result<AppState, GatewayError> {
        let users = UsersFile::load(&config.users_file)?;
        let roots = Roots::new(&config.roots, &config.home)?;
        Ok(AppState {
            sessions: SessionStore::new(config.session_lifetime, config.limits.max_sessions),
            cmd_slots: Semaphore::new(config.limits.max_concurrent_commands),
            login_slots: Semaphore::new(config.limits.max_concurrent_logins),
            login_throttle: LoginThrottle::new(
                config.limits.free_failed_logins,
                Duration::from_secs_f64(config.limits.max_login_delay_secs),
            ),
            users,
            roots,
            config,
        })
    }

    /// Whether `machine` is served here.
    pub fn knows_machine(&self, machine: &str) -> bool {
        self.config.machines.iter().any(|m| m == machine)
    }
}
