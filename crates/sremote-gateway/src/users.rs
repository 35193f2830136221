//! The users file: one `NAME:VERIFIER` line per credential, `#` starts a comment.
//!
//! A verifier is an argon2 PHC string (`$argon2id$v=19$…`, a password set with
//! `sremote-gateway adduser`) or `token-sha256:<hex>` (the SHA-256 of a bearer token made by
//! `sremote-gateway addtoken`). A user may have one password and any number of tokens.
//! Neither passwords nor tokens are stored; the file is written with mode 0600.
//!
//! The running gateway re-reads the file when it changes ([`UsersFile`], checked at most
//! once a second): users added, passwords changed and tokens revoked take effect without a
//! restart, and the sessions of a user who is no longer in the file stop working. A file
//! that no longer parses is reported in the log and the previous users are kept.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::GatewayError;

const TOKEN_PREFIX: &str = "token-sha256:";

/// The known users and their verifiers. `Debug` shows only the names.
#[derive(Default, Clone)]
pub struct Users {
    passwords: BTreeMap<String, String>,
    tokens: Vec<(String, [u8; 32])>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users")
            .field("names", &self.passwords.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Whether `name` is acceptable as a user name (letters, digits, `._-`, at most 64).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Users {
    /// Parse the text of a users file.
    pub fn parse(text: &str) -> Result<Users, GatewayError> {
        let mut users = Users::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |m: &str| GatewayError::Users(format!("line {}: {m}", i + 1));
            let (name, verifier) = line
                .split_once(':')
                .ok_or_else(|| bad("expected NAME:VERIFIER"))?;
            if !valid_name(name) {
                return Err(bad("invalid user name"));
            }
            if let Some(hex) = verifier.strip_prefix(TOKEN_PREFIX) {
                let hash =
                    decode_hex32(hex).ok_or_else(|| bad("token hash must be 64 hex digits"))?;
                users.tokens.push((name.to_string(), hash));
            } else {
                PasswordHash::new(verifier).map_err(|_| bad("not an argon2 PHC string"))?;
                users
                    .passwords
                    .insert(name.to_string(), verifier.to_string());
            }
        }
        Ok(users)
    }

    /// Read a users file, refusing one that others could have written (see
    /// [`check_permissions`]); a world-readable one is read with a warning in the log.
    pub fn load(path: &Path) -> Result<Users, GatewayError> {
        use std::io::Read;
        let cannot =
            |e: std::io::Error| GatewayError::Users(format!("cannot read {}: {e}", path.display()));
        let mut file = std::fs::File::open(path).map_err(cannot)?;
        let meta = file.metadata().map_err(cannot)?;
        if let Some(warning) = check_permissions(path, &meta)? {
            crate::log::event(&warning);
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(cannot)?;
        Self::parse(&text).map_err(|e| GatewayError::Users(format!("{}: {e}", path.display())))
    }

    /// Whether `name` has a password or a token.
    pub fn knows(&self, name: &str) -> bool {
        self.passwords.contains_key(name) || self.tokens.iter().any(|(n, _)| n == name)
    }

    /// The SHA-256 of `name`'s password verifier (changes with the password), if any.
    pub fn verifier_hash(&self, name: &str) -> Option<[u8; 32]> {
        let phc = self.passwords.get(name)?;
        Some(Sha256::digest(phc.as_bytes()).into())
    }

    /// Number of users with a password.
    pub fn len(&self) -> usize {
        self.passwords.len()
    }

    /// Whether no user has a password.
    pub fn is_empty(&self) -> bool {
        self.passwords.is_empty()
    }

    /// Check a password (slow: argon2; call off the async threads). Unknown users cost the
    /// same time as known ones.
    pub fn verify_password(&self, name: &str, password: &str) -> bool {
        let phc = self
            .passwords
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| dummy_hash());
        let known = self.passwords.contains_key(name);
        let ok = PasswordHash::new(phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && known
    }

    /// The user a bearer token belongs to. Compares against every token in constant time.
    pub fn verify_token(&self, token: &str) -> Option<String> {
        if self.tokens.is_empty() {
            return None;
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (name, stored) in &self.tokens {
            if bool::from(stored.ct_eq(&hash)) {
                found = Some(name.clone());
            }
        }
        found
    }
}

/// Whoever can write the users file (or replace it in its directory) can add a user and
/// run commands as the gateway's OS user. Refuses a file (`meta`, from the open file) that
/// is writable by group or others or owned by another user, and a directory writable by
/// group or others (unless sticky, like `/tmp`); the error says how to fix it. Returns a
/// warning when the file is readable by others (its hashes can be attacked offline).
pub fn check_permissions(
    path: &Path,
    meta: &std::fs::Metadata,
) -> Result<Option<String>, GatewayError> {
    let shown = path.display();
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(GatewayError::Users(format!(
            "{shown} is writable by group or others (mode {mode:04o}): anyone who can write it \
             can add a user and run commands as this gateway's OS user; fix it with \
             `chmod go-w {shown}` (0600 is best), then check that no one added a user"
        )));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(GatewayError::Users(format!(
            "{shown} is owned by uid {}, not by this gateway's user (uid {me}) or root: that \
             user can add users; fix it with `chown {me} {shown}`",
            meta.uid()
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dmeta = std::fs::metadata(dir).map_err(|e| {
        GatewayError::Users(format!("cannot check the directory {}: {e}", dir.display()))
    })?;
    let dmode = dmeta.mode() & 0o7777;
    if dmode & 0o022 != 0 && dmode & 0o1000 == 0 {
        return Err(GatewayError::Users(format!(
            "{shown} is in the directory {} that is writable by group or others (mode \
             {dmode:04o}): anyone can replace the users file there; fix it with \
             `chmod go-w {}` or keep the users file in a private directory",
            dir.display(),
            dir.display()
        )));
    }
    Ok((mode & 0o004 != 0).then(|| {
        format!(
            "WARNING: users file {shown} is readable by others (mode {mode:04o}): its password \
             hashes can be attacked offline; fix it with `chmod o-r {shown}` (0600 is best)"
        )
    }))
}

/// How often a changed users file is looked for.
const RECHECK: Duration = Duration::from_secs(1);

/// The users file of a running gateway: re-read when it changes (see the module docs).
#[derive(Debug)]
pub struct UsersFile {
    path: PathBuf,
    users: RwLock<Arc<Users>>,
    /// When the file was last looked at, and its (inode, size, mtime) then.
    seen: Mutex<(Instant, Option<Stamp>)>,
}

/// A file's inode, size and modification time (s, ns): a rename or an edit changes it.
type Stamp = (u64, u64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

impl UsersFile {
    /// Read the users file (it must be usable now).
    pub fn load(path: &Path) -> Result<UsersFile, GatewayError> {
        let stamp = stamp(path);
        let users = Users::load(path)?;
        Ok(UsersFile {
            path: path.to_path_buf(),
            users: RwLock::new(Arc::new(users)),
            seen: Mutex::new((Instant::now(), stamp)),
        })
    }

    /// The users as the file says now.
    pub fn current(&self) -> Arc<Users> {
        self.refresh();
        self.users.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn refresh(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0.elapsed() < RECHECK {
            return;
        }
        seen.0 = Instant::now();
        let now = stamp(&self.path);
        if now == seen.1 {
            return;
        }
        seen.1 = now;
        match Users::load(&self.path) {
            Ok(users) => {
                crate::log::event(&format!(
                    "users file {} changed: {} users with a password",
                    self.path.display(),
                    users.len()
                ));
                *self.users.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(users);
            }
            Err(e) => crate::log::event(&format!(
                "users file {} changed but cannot be used, keeping the previous users: {e}",
                self.path.display()
            )),
        }
    }
}

/// A hash to verify against when the user is unknown, so that timing does not tell.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

/// Hash a password with argon2id (default parameters) and a random salt.
pub fn hash_password(password: &str) -> Result<String, GatewayError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| GatewayError::Users(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| GatewayError::Users(e.to_string()))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| GatewayError::Users(format!("hashing failed: {e}")))?;
    Ok(hash.to_string())
}

/// `n` random bytes as unpadded base64url.
pub fn random_token(n: usize) -> Result<String, GatewayError> {
    use base64::Engine;
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| GatewayError::Users(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Set (add or replace) the password of `name` in the users file, creating it if needed.
pub fn add_user(path: &Path, name: &str, password: &str) -> Result<(), GatewayError> {
    if !valid_name(name) {
        return Err(GatewayError::Users(format!(
            "invalid user name {name:?}: use letters, digits, `._-`"
        )));
    }
    if password.is_empty() {
        return Err(GatewayError::Users("the password is empty".into()));
    }
    let hash = hash_password(password)?;
    let prefix = format!("{name}:");
    rewrite(path, |lines| {
        lines.retain(|l| !l.starts_with(&prefix) || l[prefix.len()..].starts_with(TOKEN_PREFIX));
        lines.push(format!("{name}:{hash}"));
    })
}

/// Add a new bearer token for `name`; returns the token (shown once, stored only as a hash).
pub fn add_token(path: &Path, name: &str) -> Result<String, GatewayError> {
    if !valid_name(name) {
        return Err(GatewayError::Users(format!("invalid user name {name:?}")));
    }
    let token = random_token(32)?;
    let hash = Sha256::digest(token.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    rewrite(path, |lines| {
        lines.push(format!("{name}:{TOKEN_PREFIX}{hex}"))
    })?;
    Ok(token)
}

/// Edit the lines of the users file and write it back atomically with mode 0600.
fn rewrite(path: &Path, edit: impl FnOnce(&mut Vec<String>)) -> Result<(), GatewayError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let err = |e: std::io::Error| GatewayError::Users(format!("{}: {e}", path.display()));
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(err(e)),
    };
    Users::parse(&text)?;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    edit(&mut lines);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".users-")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(err)?;
    for l in &lines {
        writeln!(tmp, "{l}").map_err(err)?;
    }
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_verify_replace_and_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        add_user(&path, "alice", "pw one").expect("add");
        add_user(&path, "bob", "secret").expect("add");
        let token = add_token(&path, "alice").expect("token");
        add_user(&path, "alice", "pw two").expect("replace");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("pw two") && !text.contains(&token), "{text}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let users = Users::load(&path).expect("load");
        assert_eq!(users.len(), 2);
        assert!(users.verify_password("alice", "pw two"));
        assert!(!users.verify_password("alice", "pw one"));
        assert!(!users.verify_password("carol", "pw two"));
        assert!(users.verify_password("bob", "secret"));
        assert_eq!(users.verify_token(&token).as_deref(), Some("alice"));
        assert_eq!(users.verify_token("nope"), None);
        assert!(!format!("{users:?}").contains("argon2"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Users::parse("alice").is_err());
        assert!(Users::parse("al:ice:$argon2id$x").is_err());
        assert!(Users::parse("alice:plaintext").is_err());
        assert!(Users::parse("alice:token-sha256:abc").is_err());
        assert!(Users::parse("# comment\n\n").expect("empty").is_empty());
        assert!(add_user(Path::new("/nonexistent/x"), "a:b", "pw").is_err());
    }
}
