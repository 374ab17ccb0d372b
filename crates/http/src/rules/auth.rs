//! HTTP Basic authentication (RFC 7617) against bcrypt or argon2 hashes, with successful
//! checks cached.
//!
//! A bcrypt or argon2 check costs tens of milliseconds of CPU on purpose, so checking on
//! every request would let any client (or a browser re-sending credentials with each
//! asset) burn the server's CPU. A successful check is remembered for [`TTL`] under a
//! SHA-256 of (stored hash, user, password) — the password itself is never kept — in a
//! map bounded to [`CACHE_MAX`] entries; a changed htpasswd line changes the key. Checks
//! that do run are bounded to half the CPUs at once ([`busy`]); beyond that the request
//! gets a 503 instead of queueing more hashing. A check runs under `block_in_place`, so
//! the connections that share its worker thread move on meanwhile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use graced_config::BasicAuth;
use http::HeaderValue;
use sha2::{Digest, Sha256};

/// How long a successful check is remembered.
pub(crate) const TTL: Duration = Duration::from_secs(300);
/// Remembered checks at most.
pub(crate) const CACHE_MAX: usize = 4096;

/// The result of checking a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    Valid,
    /// Missing, malformed, unknown user or wrong password: 401.
    Invalid,
    /// Too many password checks are running: 503.
    Busy,
}

static CACHE: OnceLock<Mutex<HashMap<[u8; 32], Instant>>> = OnceLock::new();
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Checks the `Authorization` header against `auth`'s users.
pub(crate) fn check(auth: &BasicAuth, authorization: Option<&HeaderValue>) -> Check {
    let Some((user, password)) = authorization.and_then(credentials) else { return Check::Invalid };
    // An unknown user is checked against the first user's hash all the same (and never
    // valid), so the time of a 401 does not tell which user names exist.
    let known = auth.users.iter().find(|(u, _)| *u == user);
    let Some((_, hash)) = known.or(auth.users.first()) else { return Check::Invalid };
    let key: [u8; 32] = {
        let mut digest = Sha256::new();
        for part in [hash.as_bytes(), user.as_bytes(), password.as_bytes()] {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part);
        }
        digest.finalize().into()
    };
    let cache = CACHE.get_or_init(Mutex::default);
    let now = Instant::now();
    if known.is_some()
        && cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key).is_some_and(|&at| now - at < TTL)
    {
        return Check::Valid;
    }
    if busy() {
        return Check::Busy;
    }
    // The check blocks this thread for its whole cost: on the server's multi-thread runtime
    // the worker's other tasks move to another thread meanwhile (`block_in_place`).
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let valid =
        if multi { tokio::task::block_in_place(|| verify(hash, &password)) } else { verify(hash, &password) };
    RUNNING.fetch_sub(1, Ordering::AcqRel);
    if !valid || known.is_none() {
        return Check::Invalid;
    }
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= CACHE_MAX {
        map.retain(|_, at| now - *at < TTL);
        if map.len() >= CACHE_MAX {
            map.clear();
        }
    }
    map.insert(key, now);
    Check::Valid
}

/// Takes a slot for a password check, unless half the CPUs (at least one) are checking.
fn busy() -> bool {
    let max = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
    if RUNNING.fetch_add(1, Ordering::AcqRel) >= max {
        RUNNING.fetch_sub(1, Ordering::AcqRel);
        return true;
    }
    false
}

/// `Basic base64(user:password)` → (user, password).
fn credentials(value: &HeaderValue) -> Option<(String, String)> {
    let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(token.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn verify(hash: &str, password: &str) -> bool {
    if hash.starts_with("$argon2") {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        PasswordHash::new(hash).is_ok_and(|parsed| {
            argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
        })
    } else {
        bcrypt::verify(password, hash).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::try_from(format!("Basic {token}")).unwrap()
    }

    #[test]
    fn bcrypt_and_argon2_users_and_wrong_passwords() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let argon = argon2::Argon2::default()
            .hash_password(b"s3cret", &SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap())
            .unwrap()
            .to_string();
        let auth = BasicAuth {
            realm: "r".into(),
            source: graced_config::Htpasswd::File("/dev/null".into()),
            users: vec![("alice".into(), bcrypt::hash("pw", 4).unwrap()), ("bob".into(), argon)],
        };
        assert_eq!(check(&auth, Some(&basic("alice", "pw"))), Check::Valid);
        // Cached now: still valid, and a wrong password is still wrong.
        assert_eq!(check(&auth, Some(&basic("alice", "pw"))), Check::Valid);
        assert_eq!(check(&auth, Some(&basic("alice", "pw2"))), Check::Invalid);
        assert_eq!(check(&auth, Some(&basic("bob", "s3cret"))), Check::Valid);
        assert_eq!(check(&auth, Some(&basic("bob", "pw"))), Check::Invalid);
        assert_eq!(check(&auth, Some(&basic("carol", "pw"))), Check::Invalid);
        assert_eq!(check(&auth, None), Check::Invalid);
        assert_eq!(check(&auth, Some(&HeaderValue::from_static("Bearer x"))), Check::Invalid);
        assert_eq!(check(&auth, Some(&HeaderValue::from_static("basic !!!"))), Check::Invalid);
    }
}
