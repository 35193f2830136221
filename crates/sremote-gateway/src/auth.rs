//! Sessions and authentication: `POST/GET/DELETE /auth` and the [`AuthUser`] extractor.
//!
//! A session id is 32 random bytes (base64url). The store keys sessions by the SHA-256 of
//! the id, so neither a lookup's timing nor a memory dump gives ids away. Credentials come
//! from the `newt_sessionid` cookie or an `Authorization: Bearer` header, which also
//! accepts the long-lived tokens of the users file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;
use crate::users::random_token;

/// Name of the session cookie (as in NEWT).
pub const COOKIE: &str = "newt_sessionid";

#[derive(Debug, Clone)]
struct Session {
    user: String,
    expires: Instant,
    /// The SHA-256 of the user's password verifier at login: a changed password ends the
    /// session.
    verifier: [u8; 32],
}

/// Live sessions, keyed by the SHA-256 of their id.
#[derive(Debug)]
pub struct SessionStore {
    map: Mutex<HashMap<[u8; 32], Session>>,
    lifetime: Duration,
    max: usize,
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl SessionStore {
    /// An empty store whose sessions live `lifetime`; at most `max` are kept.
    pub fn new(lifetime: Duration, max: usize) -> Self {
        SessionStore {
            map: Mutex::new(HashMap::new()),
            lifetime,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open a session for `user`, whose password verifier hashes to `verifier`; returns its
    /// id.
    pub fn create(&self, user: &str, verifier: [u8; 32]) -> Result<String, ApiError> {
        let id = random_token(32).map_err(|e| ApiError::internal(e.to_string()))?;
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        if map.len() >= self.max {
            // Drop the session closest to expiry to stay within the bound.
            if let Some(k) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                map.remove(&k);
            }
        }
        map.insert(
            key(&id),
            Session {
                user: user.to_string(),
                expires: now + self.lifetime,
                verifier,
            },
        );
        Ok(id)
    }

    /// The user and remaining lifetime of a live session. `verifier_now` gives the hash of
    /// a user's current password verifier: a session opened with another password (or for
    /// a user who has none any more) is ended.
    pub fn lookup(
        &self,
        id: &str,
        verifier_now: impl Fn(&str) -> Option<[u8; 32]>,
    ) -> Option<(String, Duration)> {
        let k = key(id);
        let mut map = self.lock();
        let s = map.get(&k)?;
        let now = Instant::now();
        if s.expires <= now || verifier_now(&s.user) != Some(s.verifier) {
            map.remove(&k);
            return None;
        }
        Some((s.user.clone(), s.expires - now))
    }

    /// End a session; whether it existed.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(&key(id)).is_some()
    }

    /// The configured lifetime.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

/// The credential a request carries: the bearer token, else the session cookie.
pub fn credential(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                v.split(';').find_map(|kv| {
                    let (k, val) = kv.trim().split_once('=')?;
                    (k == COOKIE).then(|| val.trim().to_string())
                })
            })
    })
}

/// Filled by the [`AuthUser`] extractor so the access log can name the user.
#[derive(Debug, Clone, Default)]
pub struct LogUser(pub Arc<OnceLock<String>>);

/// An authenticated user. Extracting it answers 401 when the request carries no valid
/// session id or token.
#[derive(Debug, Clone)]
pub struct AuthUser(pub String);

impl AuthUser {
    fn resolve(state: &AppState, headers: &HeaderMap) -> Option<(String, Option<Duration>)> {
        let cred = credential(headers)?;
        let users = state.users.current();
        // A user removed from the users file, or whose password changed, loses their
        // sessions.
        if let Some((user, left)) = state.sessions.lookup(&cred, |u| users.verifier_hash(u)) {
            return Some((user, Some(left)));
        }
        users.verify_token(&cred).map(|u| (u, None))
    }
}

impl FromRequestParts<Arc<AppState>> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let has_cred = credential(&parts.headers).is_some();
        match Self::resolve(state, &parts.headers) {
            Some((user, _)) => {
                if let Some(slot) = parts.extensions.get::<LogUser>() {
                    let _ = slot.0.set(user.clone());
                }
                Ok(AuthUser(user))
            }
            None if has_cred => Err(ApiError::unauthorized(
                "the session has expired or is unknown: log in again (POST /auth)",
            )),
            None => Err(ApiError::unauthorized(
                "not logged in: POST /auth with username and password first",
            )),
        }
    }
}

/// The form of `POST /auth`.
#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

fn status_json(
    state: &AppState,
    user: Option<&str>,
    left: Option<Duration>,
    id: Option<&str>,
) -> serde_json::Value {
    serde_json::json!({
        "auth": user.is_some(),
        "username": user,
        "session_lifetime": left.map(|d| d.as_secs()).unwrap_or(0),
        "newt_sessionid": id,
        "home": user.map(|_| state.config.home.to_string_lossy()),
    })
}

/// The `Set-Cookie` value for the session id `id` living `max_age` seconds (0: remove it).
fn session_cookie(state: &AppState, id: &str, max_age: u64) -> String {
    let secure = if state.config.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let path = if state.config.base_path.is_empty() {
        "/"
    } else {
        &state.config.base_path
    };
    format!("{COOKIE}={id}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

/// How a login's user name appears in the log: verbatim only when it is a known user, so
/// that a password typed into the user-name field is never written down (an unknown name
/// is shown as the start of its SHA-256, enough to tell repeated attempts apart).
fn logged_name(state: &AppState, name: &str) -> String {
    if crate::users::valid_name(name) && state.users.current().knows(name) {
        return format!("user {name:?}");
    }
    let hash = Sha256::digest(name.as_bytes());
    let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("an unknown user name (sha256 {hex}…)")
}

/// The 429 answer to a login that must wait.
fn too_many_logins(state: &AppState, name: &str, wait: Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    crate::log::event(&format!(
        "login of {} delayed: too many failed logins",
        logged_name(state, name)
    ));
    let mut body = status_json(state, None, None, None);
    body["error"] =
        format!("too many failed logins for this user name; try again in {secs} s").into();
    body["code"] = "too_many_logins".into();
    (
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        [(axum::http::header::RETRY_AFTER, secs.to_string())],
        Json(body),
    )
        .into_response()
}

/// `POST /auth`: check username and password, open a session, set the cookie.
pub async fn login(
    State(state): State<Arc<AppState>>,
    log_user: Option<Extension<LogUser>>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            return crate::error::form_error("login", &e).into_response();
        }
        Err(_) => {
            let msg = "POST /auth needs the form fields username and password";
            return ApiError::unprocessable("bad_form", msg).into_response();
        }
    };
    let attempt = match state.login_throttle.attempt(&form.username).await {
        Ok(attempt) => attempt,
        Err(wait) => return too_many_logins(&state, &form.username, wait),
    };
    let verified = {
        let Ok(_permit) = state.login_slots.acquire().await else {
            return ApiError::internal("shutting down").into_response();
        };
        let (st, user, pw) = (state.clone(), form.username.clone(), form.password);
        tokio::task::spawn_blocking(move || {
            let users = st.users.current();
            users
                .verify_password(&user, &pw)
                .then(|| users.verifier_hash(&user))
                .flatten()
        })
        .await
        .unwrap_or(None)
    };
    attempt.finish(verified.is_some());
    let Some(verifier) = verified else {
        crate::log::event(&format!(
            "login refused for {}",
            logged_name(&state, &form.username)
        ));
        let mut body = status_json(&state, None, None, None);
        body["error"] = "bad username or password".into();
        return (axum::http::StatusCode::UNAUTHORIZED, Json(body)).into_response();
    };
    if let Some(Extension(slot)) = log_user {
        let _ = slot.0.set(form.username.clone());
    }
    let id = match state.sessions.create(&form.username, verifier) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let lifetime = state.sessions.lifetime();
    let cookie = session_cookie(&state, &id, lifetime.as_secs());
    let body = status_json(&state, Some(&form.username), Some(lifetime), Some(&id));
    let mut resp = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `GET /auth`: whether the request's credential is valid, for whom, for how long.
pub async fn status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Json<serde_json::Value> {
    match AuthUser::resolve(&state, &headers) {
        Some((user, left)) => Json(status_json(&state, Some(&user), left, None)),
        None => Json(status_json(&state, None, None, None)),
    }
}

/// `DELETE /auth`: end the session.
pub async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(cred) = credential(&headers) {
        state.sessions.remove(&cred);
    }
    let mut resp = Json(status_json(&state, None, None, None)).into_response();
    // The same Path (and flags) as the login cookie, or the browser keeps that one.
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&state, "", 0)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_are_bounded() {
        let store = SessionStore::new(Duration::from_millis(50), 2);
        let same = |_: &str| Some([1u8; 32]);
        let a = store.create("alice", [1; 32]).expect("create");
        assert_eq!(
            store.lookup(&a, same).map(|s| s.0).as_deref(),
            Some("alice")
        );
        assert!(store.lookup("forged", same).is_none());
        let _b = store.create("bob", [1; 32]).expect("create");
        let _c = store.create("carol", [1; 32]).expect("create");
        assert_eq!(store.lock().len(), 2);
        assert!(
            store.lookup(&_b, |_| Some([2; 32])).is_none(),
            "password changed"
        );
        assert!(store.lookup(&_b, same).is_none(), "and the session is gone");
        std::thread::sleep(Duration::from_millis(60));
        assert!(store.lookup(&_c, same).is_none(), "expired");
        assert!(!store.remove(&_c));
    }

    #[test]
    fn credential_from_cookie_or_bearer() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; newt_sessionid=XYZ; c=d"),
        );
        assert_eq!(credential(&h).as_deref(), Some("XYZ"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer TOK"),
        );
        assert_eq!(credential(&h).as_deref(), Some("TOK"));
    }
}
