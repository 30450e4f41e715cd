//! Users, roles, sessions and API tokens.
//!
//! Users and tokens live in `<state_dir>/users.json` (mode 0600): passwords as Argon2id PHC
//! strings, tokens as SHA-256 digests (they are 256-bit random values, so a fast hash is
//! enough). The file is reread when it changes (its modification time, size or inode), so
//! `tollgate user ...` and `tollgate token ...` commands take effect in a running server on its
//! next request. Sessions are kept in memory (a restart means logging in again) and hold only
//! the user name: every request looks the user up, so a removed user's session is dead, a
//! changed role applies at once and a changed password ends the user's other sessions.
//!
//! Password checks are the expensive, unauthenticated part: each Argon2 check (login, own
//! password change, setting a password) goes through a [`gate::PasswordGate`] (at most two at
//! once), failed checks are limited per user name and per client network with a growing
//! backoff ([`throttle`]), and an unknown user is checked against a dummy hash with the same
//! parameters, so a login costs the same whether or not the user exists.
//!
//! On first start an `admin` user is created with a random password, returned once to be
//! printed, together with two tokens written next to the file: `cli-token` (admin, for the
//! local CLI) and `ingest-token` (ingest only, for the local shipper).

pub mod argon;
pub mod gate;
pub mod sessions;
pub mod throttle;

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use self::gate::PasswordGate;
use self::sessions::{Sessions, fingerprint};
use self::throttle::Throttle;

pub use tollgate_api::web::{Role, TokenInfo, UserInfo};

/// Parses a role name, or says which names there are.
pub fn role_named(s: &str) -> Result<Role, AuthError> {
    Role::parse(s).ok_or_else(|| AuthError::BadRole(s.chars().take(32).collect()))
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// User or token name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    name: String,
    role: Role,
    password: String,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UserDb {
    users: Vec<User>,
    tokens: Vec<TokenInfo>,
}

/// Secrets created on first start, to show once.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The generated password of `admin`.
    pub admin_password: String,
    /// Where the admin CLI token was written.
    pub cli_token_file: PathBuf,
}

/// Why a user, token or password operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A user or token name that cannot be stored.
    #[error("bad name {0:?}: use 1 to 64 characters without spaces or control characters")]
    BadName(String),
    /// A new password shorter than [`MIN_PASSWORD`].
    #[error("passwords need at least {MIN_PASSWORD} characters")]
    ShortPassword,
    /// A password longer than [`MAX_PASSWORD`].
    #[error("passwords may have at most {MAX_PASSWORD} characters")]
    LongPassword,
    /// A role name that is not one.
    #[error("unknown role {0:?}: ingest, viewer, operator or admin")]
    BadRole(String),
    /// Users are viewers, operators or admins.
    #[error("users are viewers, operators or admins; ingest is for tokens")]
    IngestUser,
    /// No such user.
    #[error("no user {0:?}")]
    NoSuchUser(String),
    /// The last admin cannot be removed or demoted.
    #[error("the last admin cannot be removed or lose the admin role")]
    LastAdmin,
    /// A token of that name exists.
    #[error("a token named {0:?} exists; revoke it first")]
    TokenExists(String),
    /// No such token.
    #[error("no token {0:?}")]
    NoSuchToken(String),
    /// Wrong user name or password (which of the two is not said).
    #[error("wrong user or password")]
    WrongPassword,
    /// Too many failed password checks for this user or from this client.
    #[error("too many failed password checks; try again in {} s", retry_after_secs(*.retry_after))]
    Throttled {
        /// When the next attempt may be made.
        retry_after: Duration,
    },
    /// Too many password checks at once.
    #[error("too many password checks at once; try again in a few seconds")]
    Busy,
    /// A token expiry that is not a lifetime or a future time.
    #[error("bad expiry {0:?}: give a lifetime such as 90d, 12h, 30m or 2w, or an RFC 3339 time in the future")]
    BadExpiry(String),
    /// The user database could not be read or written.
    #[error("{0}")]
    Storage(String),
}

/// Whole seconds to wait, at least 1 (for `Retry-After`).
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Shortest password.
pub const MIN_PASSWORD: usize = 10;
/// Longest password (Argon2 reads all of it; there is no reason for more).
pub const MAX_PASSWORD: usize = 1024;
/// Longest user or token name.
pub const MAX_NAME: usize = 64;

/// A live session: who holds it, with their current role, and its CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// The user, with the role the user database gives them now.
    pub principal: Principal,
    /// The token every form of this session's pages carries.
    pub csrf: String,
}

/// Counters of password checks and logins.
#[derive(Debug, Default)]
struct AuthMetrics {
    /// Argon2 verifications run (known and unknown users alike).
    password_checks: Counter,
    /// Login attempts by outcome: ok, wrong, throttled, busy.
    logins: Family<Vec<(String, String)>, Counter>,
}

impl AuthMetrics {
    fn login(&self, outcome: &str) {
        self.logins.get_or_create(&vec![("outcome".to_string(), outcome.to_string())]).inc();
    }
}

/// What identifies one version of the user database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp { modified: m.modified().ok(), len: m.len(), inode })
}

/// The user database and sessions of one server.
pub struct Auth {
    path: PathBuf,
    db: Mutex<(UserDb, Option<FileStamp>)>,
    sessions: Sessions,
    throttle: Throttle,
    gate: PasswordGate,
    metrics: AuthMetrics,
    extra_admin_token: Option<String>,
}

/// A random secret: 32 bytes, hex.
pub fn random_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..20).map(|_| ALPHABET[(rand::random::<u32>() as usize) % ALPHABET.len()] as char).collect()
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn hash_password(password: &str) -> Result<String, AuthError> {
    argon::hash(password.as_bytes()).map_err(AuthError::Storage)
}

/// A hash of a random password with the parameters of every new hash: unknown users are
/// checked against it, so their logins cost the same Argon2 work as real ones.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_secret()).expect("Argon2 hashes a random password"))
}

fn valid_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok { Ok(()) } else { Err(AuthError::BadName(name.chars().take(MAX_NAME + 1).collect())) }
}

fn valid_password(password: &str) -> Result<(), AuthError> {
    match password.chars().count() {
        n if n < MIN_PASSWORD => Err(AuthError::ShortPassword),
        n if n > MAX_PASSWORD => Err(AuthError::LongPassword),
        _ => Ok(()),
    }
}

/// When a token given `expires` at `now` stops working: a lifetime (`90d`, `12h`, `30m`,
/// `2w`), an RFC 3339 time or a `YYYY-MM-DD` date (midnight UTC), in the future.
pub fn parse_expiry(expires: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, AuthError> {
    let s = expires.trim();
    let bad = || AuthError::BadExpiry(expires.chars().take(64).collect());
    let at = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.with_timezone(&Utc)
    } else if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc()
    } else {
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (count, unit) = s.split_at(split);
        let count: i64 = count.parse().map_err(|_| bad())?;
        let unit_secs: i64 = match unit.trim() {
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(bad()),
        };
        let secs = count.checked_mul(unit_secs).filter(|s| (1..=100 * 365 * 86_400).contains(s)).ok_or_else(bad)?;
        now + chrono::Duration::seconds(secs)
    };
    if at <= now { Err(bad()) } else { Ok(at) }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(tmp, path)
}

impl Auth {
    /// Opens `<state_dir>/users.json`, creating it (with `admin`, a CLI token and an ingest
    /// token) on first start. `extra_admin_token` is a token from the configuration that acts
    /// as admin.
    pub fn open(state_dir: &Path, extra_admin_token: Option<String>) -> io::Result<(Auth, Option<Bootstrap>)> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join("users.json");
        let mut bootstrap = None;
        if !path.exists() {
            let admin_password = random_password();
            let cli_token = random_secret();
            let ingest_token = random_secret();
            let now = Utc::now();
            let db = UserDb {
                users: vec![User {
                    name: "admin".into(),
                    role: Role::Admin,
                    password: hash_password(&admin_password).map_err(io::Error::other)?,
                    created_at: now,
                }],
                tokens: vec![
                    TokenInfo {
                        name: "cli".into(),
                        role: Role::Admin,
                        sha256: sha256_hex(&cli_token),
                        created_at: now,
                        expires_at: None,
                    },
                    TokenInfo {
                        name: "local-shipper".into(),
                        role: Role::Ingest,
                        sha256: sha256_hex(&ingest_token),
                        created_at: now,
                        expires_at: None,
                    },
                ],
            };
            write_private(&path, &serde_json::to_vec_pretty(&db).map_err(io::Error::other)?)?;
            let cli_token_file = state_dir.join("cli-token");
            write_private(&cli_token_file, cli_token.as_bytes())?;
            write_private(&state_dir.join("ingest-token"), ingest_token.as_bytes())?;
            bootstrap = Some(Bootstrap { admin_password, cli_token_file });
        }
        let auth = Auth {
            path,
            db: Mutex::new((UserDb::default(), None)),
            sessions: Sessions::default(),
            throttle: Throttle::default(),
            gate: PasswordGate::default(),
            metrics: AuthMetrics::default(),
            extra_admin_token: extra_admin_token.filter(|t| !t.is_empty()),
        };
        auth.reload()?;
        Ok((auth, bootstrap))
    }

    /// Registers the login counters: `tollgate_login_attempts_total{outcome}` (ok, wrong,
    /// throttled, busy) and `tollgate_password_checks_total` (Argon2 verifications run).
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "tollgate_login_attempts",
            "Login attempts by outcome (ok, wrong, throttled, busy)",
            self.metrics.logins.clone(),
        );
        registry.register(
            "tollgate_password_checks",
            "Argon2 password verifications run (logins of unknown users included)",
            self.metrics.password_checks.clone(),
        );
    }

    /// Argon2 password verifications run so far (unknown users included).
    pub fn password_checks(&self) -> u64 {
        self.metrics.password_checks.get()
    }

    fn reload(&self) -> io::Result<()> {
        let mut guard = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp(&self.path);
        if guard.1.is_some() && guard.1 == now {
            return Ok(());
        }
        let bytes = std::fs::read(&self.path)?;
        let db: UserDb = serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", self.path.display())))?;
        *guard = (db, now);
        Ok(())
    }

    fn with_db<T>(&self, f: impl FnOnce(&UserDb) -> T) -> T {
        if let Err(e) = self.reload() {
            tracing::error!(error = %e, "cannot reread the user database; keeping the last good copy");
        }
        let guard = self.db.lock().unwrap_or_else(|e| e.into_inner());
        f(&guard.0)
    }

    fn update(&self, f: impl FnOnce(&mut UserDb) -> Result<(), AuthError>) -> Result<(), AuthError> {
        // The server and `tollgate user ...` in another process change the file read, modify,
        // write: one at a time (an exclusive lock on a file beside it), so neither loses the
        // other's change and they never share the temporary file.
        let _lock = self.lock_file().map_err(|e| AuthError::Storage(format!("cannot lock the user database: {e}")))?;
        // A database that cannot be read is not overwritten with an older copy.
        self.reload().map_err(|e| AuthError::Storage(format!("cannot read the user database: {e}")))?;
        let mut guard = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let mut db = guard.0.clone();
        f(&mut db)?;
        let bytes = serde_json::to_vec_pretty(&db).map_err(|e| AuthError::Storage(e.to_string()))?;
        write_private(&self.path, &bytes).map_err(|e| AuthError::Storage(format!("{}: {e}", self.path.display())))?;
        *guard = (db, stamp(&self.path));
        Ok(())
    }

    /// Takes the exclusive lock of the user database (`users.json.lock`), waiting for another
    /// process's change to finish; released when the file is dropped.
    fn lock_file(&self) -> io::Result<std::fs::File> {
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(self.path.with_extension("json.lock"))?;
        file.lock()?;
        Ok(file)
    }

    /// Runs Argon2 for `name`'s password (against a dummy hash when there is no such user);
    /// the user when it matches. Blocking: call through [`Auth::check_password`].
    fn verify(&self, name: &str, password: &str) -> Option<User> {
        let dummy = dummy_hash();
        let user = self.with_db(|db| db.users.iter().find(|u| u.name == name).cloned());
        self.metrics.password_checks.inc();
        match user.as_ref().and_then(|u| argon::check(&u.password, password.as_bytes())) {
            Some(true) => user,
            Some(false) => None,
            // No such user, or a stored hash that cannot be checked: the same Argon2 work.
            None => {
                argon::check(dummy, password.as_bytes());
                None
            }
        }
    }

    /// Runs `f` on the blocking pool with a permit of the password gate (for anything that
    /// hashes a password).
    pub async fn hashing<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Auth) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = self.gate.enter().await.map_err(|_| AuthError::Busy)?;
        let auth = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&auth)
        })
        .await
        .map_err(|e| AuthError::Storage(format!("password check failed: {e}")))
    }

    /// Checks `name`'s password as sent from `client`: throttled, gated, same cost for
    /// unknown users.
    async fn check_password(
        self: &Arc<Self>,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<User, AuthError> {
        if password.chars().count() > MAX_PASSWORD {
            return Err(AuthError::WrongPassword);
        }
        if let Err(retry_after) = self.throttle.begin(name, client, Instant::now()) {
            self.metrics.login("throttled");
            return Err(AuthError::Throttled { retry_after });
        }
        let (n, p) = (name.to_string(), password.to_string());
        match self.hashing(move |auth| auth.verify(&n, &p)).await {
            Ok(Some(user)) => {
                self.throttle.succeeded(name, client, Instant::now());
                self.metrics.login("ok");
                Ok(user)
            }
            Ok(None) => {
                self.metrics.login("wrong");
                Err(AuthError::WrongPassword)
            }
            Err(e) => {
                // Not checked: the attempt does not count against the user or the client.
                self.throttle.cancel(name, client, Instant::now());
                self.metrics.login("busy");
                Err(e)
            }
        }
    }

    /// Checks a password sent from `client`; on success opens a session and returns its id.
    pub async fn login(
        self: &Arc<Self>,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<String, AuthError> {
        let user = self.check_password(name, password, client).await?;
        Ok(self.sessions.open(&user.name, fingerprint(&user.password), Instant::now()))
    }

    /// The holder of a live session with their current role (extending it), or `None` when the
    /// session is unknown, idle too long, or its user was removed or given a new password.
    pub fn session(&self, id: &str) -> Option<LiveSession> {
        let holder = self.sessions.touch(id, Instant::now())?;
        self.live(id, holder)
    }

    /// As [`Auth::session`], without extending the session: for requests a page makes on its
    /// own (the Dashboard's refresh), so an unattended page does not keep a session alive.
    pub fn session_quiet(&self, id: &str) -> Option<LiveSession> {
        let holder = self.sessions.peek(id, Instant::now())?;
        self.live(id, holder)
    }

    fn live(&self, id: &str, holder: sessions::Holder) -> Option<LiveSession> {
        let role = self.with_db(|db| {
            db.users
                .iter()
                .find(|u| u.name == holder.user && fingerprint(&u.password) == holder.fingerprint)
                .map(|u| u.role)
        });
        match role {
            Some(role) => Some(LiveSession { principal: Principal { name: holder.user, role }, csrf: holder.csrf }),
            None => {
                self.sessions.end(id);
                None
            }
        }
    }

    /// The user database (users with their password hashes, tokens with their digests; no
    /// secret in clear) as JSON: what the active manager sends its mate, so that the same
    /// people log in to either manager.
    pub fn export(&self) -> Result<serde_json::Value, AuthError> {
        self.with_db(|db| serde_json::to_value(db)).map_err(|e| AuthError::Storage(e.to_string()))
    }

    /// The tokens each host makes for itself on first start (its `cli-token` file, its local
    /// shipper's): an import keeps this host's and never takes the mate's.
    pub const HOST_LOCAL_TOKENS: [&'static str; 2] = ["cli", "local-shipper"];

    /// Replaces the user database with `db` (an [`Auth::export`] of the mate's) if it differs,
    /// keeping this host's own tokens ([`Auth::HOST_LOCAL_TOKENS`]); true if it changed.
    /// Sessions of users who are gone or whose password changed end at their next request.
    pub fn import(&self, db: serde_json::Value) -> Result<bool, AuthError> {
        let mut new: UserDb =
            serde_json::from_value(db).map_err(|e| AuthError::Storage(format!("not a user database: {e}")))?;
        let host_local = |t: &TokenInfo| Self::HOST_LOCAL_TOKENS.contains(&t.name.as_str());
        new.tokens.retain(|t| !host_local(t));
        new.tokens.extend(self.with_db(|db| db.tokens.iter().filter(|t| host_local(t)).cloned().collect::<Vec<_>>()));
        let new_json = serde_json::to_value(&new).map_err(|e| AuthError::Storage(e.to_string()))?;
        if self.export()? == new_json {
            return Ok(false);
        }
        self.update(|current| {
            *current = new;
            Ok(())
        })?;
        Ok(true)
    }

    /// Ends a session.
    pub fn logout(&self, id: &str) {
        self.sessions.end(id);
    }

    /// The principal of an API token (`None` when unknown, revoked or expired).
    pub fn token(&self, token: &str) -> Option<Principal> {
        if self.extra_admin_token.as_deref().is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes()))) {
            return Some(Principal { name: "config-token".into(), role: Role::Admin });
        }
        let digest = sha256_hex(token);
        let now = Utc::now();
        self.with_db(|db| {
            db.tokens
                .iter()
                .find(|t| t.sha256 == digest && !t.expired(now))
                .map(|t| Principal { name: t.name.clone(), role: t.role })
        })
    }

    /// Adds a user, or changes the password and role of an existing one (which ends that
    /// user's sessions). Blocking (Argon2).
    pub fn set_user(&self, name: &str, role: Role, password: &str) -> Result<(), AuthError> {
        valid_name(name)?;
        if role == Role::Ingest {
            return Err(AuthError::IngestUser);
        }
        valid_password(password)?;
        let hash = hash_password(password)?;
        self.update(|db| {
            demotes_last_admin(db, name, role)?;
            match db.users.iter_mut().find(|u| u.name == name) {
                Some(u) => {
                    u.role = role;
                    u.password = hash;
                }
                None => db.users.push(User { name: name.to_string(), role, password: hash, created_at: Utc::now() }),
            }
            Ok(())
        })?;
        self.sessions.end_user(name, None);
        Ok(())
    }

    /// Changes an existing user's role, keeping the password (and the user's sessions, which
    /// have the new role from their next request).
    pub fn set_role(&self, name: &str, role: Role) -> Result<(), AuthError> {
        if role == Role::Ingest {
            return Err(AuthError::IngestUser);
        }
        self.update(|db| {
            demotes_last_admin(db, name, role)?;
            let u = db.users.iter_mut().find(|u| u.name == name).ok_or_else(|| AuthError::NoSuchUser(name.into()))?;
            u.role = role;
            Ok(())
        })
    }

    /// Changes `name`'s own password, given the current one, as sent from `client` (throttled
    /// like a login). Ends the user's other sessions; `keep` (the session the change was made
    /// from, if it is the user's) stays.
    pub async fn change_password(
        self: &Arc<Self>,
        name: &str,
        current: &str,
        new: &str,
        client: Option<IpAddr>,
        keep: Option<&str>,
    ) -> Result<(), AuthError> {
        valid_password(new)?;
        let user = self.check_password(name, current, client).await?;
        let new = new.to_string();
        let hash = self.hashing(move |_| hash_password(&new)).await??;
        let (auth, name_owned, fp) = (self.clone(), name.to_string(), fingerprint(&hash));
        tokio::task::spawn_blocking(move || {
            auth.update(|db| {
                let u = db
                    .users
                    .iter_mut()
                    .find(|u| u.name == name_owned && u.password == user.password)
                    .ok_or(AuthError::WrongPassword)?;
                u.password = hash;
                Ok(())
            })
        })
        .await
        .map_err(|e| AuthError::Storage(e.to_string()))??;
        self.sessions.end_user(name, keep);
        if let Some(id) = keep {
            self.sessions.set_fingerprint(id, name, fp);
        }
        Ok(())
    }

    /// Removes a user (not the last admin); their sessions end.
    pub fn remove_user(&self, name: &str) -> Result<(), AuthError> {
        self.update(|db| {
            let admins = db.users.iter().filter(|u| u.role == Role::Admin).count();
            match db.users.iter().position(|u| u.name == name) {
                None => Err(AuthError::NoSuchUser(name.into())),
                Some(i) if db.users[i].role == Role::Admin && admins == 1 => Err(AuthError::LastAdmin),
                Some(i) => {
                    db.users.remove(i);
                    Ok(())
                }
            }
        })?;
        self.sessions.end_user(name, None);
        Ok(())
    }

    /// Creates an API token, valid until `expires_at` (always when `None`), and returns its
    /// secret (shown once).
    pub fn create_token(&self, name: &str, role: Role, expires_at: Option<DateTime<Utc>>) -> Result<String, AuthError> {
        valid_name(name)?;
        let secret = random_secret();
        let digest = sha256_hex(&secret);
        self.update(|db| {
            if db.tokens.iter().any(|t| t.name == name) {
                return Err(AuthError::TokenExists(name.into()));
            }
            db.tokens.push(TokenInfo {
                name: name.to_string(),
                role,
                sha256: digest,
                created_at: Utc::now(),
                expires_at,
            });
            Ok(())
        })?;
        Ok(secret)
    }

    /// Revokes a token by name.
    pub fn revoke_token(&self, name: &str) -> Result<(), AuthError> {
        self.update(|db| {
            let before = db.tokens.len();
            db.tokens.retain(|t| t.name != name);
            if db.tokens.len() == before { Err(AuthError::NoSuchToken(name.into())) } else { Ok(()) }
        })
    }

    /// Users, without passwords.
    pub fn users(&self) -> Vec<UserInfo> {
        self.with_db(|db| {
            db.users.iter().map(|u| UserInfo { name: u.name.clone(), role: u.role, created_at: u.created_at }).collect()
        })
    }

    /// Tokens, without secrets.
    pub fn tokens(&self) -> Vec<TokenInfo> {
        self.with_db(|db| db.tokens.clone())
    }
}

/// Refuses a change that would leave no admin.
fn demotes_last_admin(db: &UserDb, name: &str, role: Role) -> Result<(), AuthError> {
    let admins: Vec<&str> = db.users.iter().filter(|u| u.role == Role::Admin).map(|u| u.name.as_str()).collect();
    if role != Role::Admin && admins == [name] { Err(AuthError::LastAdmin) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> (Arc<Auth>, Option<Bootstrap>) {
        let (auth, boot) = Auth::open(dir, None).unwrap();
        (Arc::new(auth), boot)
    }

    #[tokio::test]
    async fn first_start_bootstraps_admin_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, boot) = open(dir.path());
        let boot = boot.expect("first start");
        assert_eq!(auth.login("admin", "wrong", None).await, Err(AuthError::WrongPassword));
        let sid = auth.login("admin", &boot.admin_password, None).await.expect("generated password works");
        assert_eq!(auth.session(&sid).unwrap().principal.role, Role::Admin);
        auth.logout(&sid);
        assert!(auth.session(&sid).is_none());
        let cli = std::fs::read_to_string(&boot.cli_token_file).unwrap();
        assert_eq!(auth.token(&cli).unwrap().role, Role::Admin);
        let ingest = std::fs::read_to_string(dir.path().join("ingest-token")).unwrap();
        assert_eq!(auth.token(&ingest).unwrap().role, Role::Ingest);
        assert!(auth.token("nope").is_none());
        // Second start: nothing new is generated.
        let (_, again) = Auth::open(dir.path(), None).unwrap();
        assert!(again.is_none());
    }

    #[tokio::test]
    async fn roles_users_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = Auth::open(dir.path(), Some("from-config".into())).unwrap();
        let auth = Arc::new(auth);
        assert_eq!(auth.token("from-config").unwrap().role, Role::Admin);
        assert_eq!(auth.set_user("vera", Role::Viewer, "short"), Err(AuthError::ShortPassword));
        assert!(matches!(auth.set_user("ve ra", Role::Viewer, "a long enough password"), Err(AuthError::BadName(_))));
        assert!(matches!(
            auth.set_user(&"v".repeat(65), Role::Viewer, "a long enough password"),
            Err(AuthError::BadName(_))
        ));
        auth.set_user("vera", Role::Viewer, "a long enough password").unwrap();
        let sid = auth.login("vera", "a long enough password", None).await.unwrap();
        let vera = auth.session(&sid).unwrap().principal;
        assert!(vera.role.allows(Role::Viewer) && !vera.role.allows(Role::Operator) && !vera.role.allows(Role::Ingest));
        assert!(Role::Operator.allows(Role::Ingest) && !Role::Ingest.allows(Role::Viewer));
        // Setting her password again ends her sessions.
        auth.set_user("vera", Role::Operator, "another long password").unwrap();
        assert!(auth.session(&sid).is_none());
        let t = auth.create_token("ci", Role::Operator, None).unwrap();
        assert_eq!(auth.token(&t).unwrap(), Principal { name: "ci".into(), role: Role::Operator });
        assert_eq!(auth.create_token("ci", Role::Viewer, None), Err(AuthError::TokenExists("ci".into())));
        auth.revoke_token("ci").unwrap();
        assert!(auth.token(&t).is_none());
        assert_eq!(auth.remove_user("admin"), Err(AuthError::LastAdmin), "the last admin stays");
        assert_eq!(auth.set_role("admin", Role::Viewer), Err(AuthError::LastAdmin), "and keeps the role");
        auth.remove_user("vera").unwrap();
        assert_eq!(auth.remove_user("vera"), Err(AuthError::NoSuchUser("vera".into())));
    }

    #[test]
    fn two_processes_changing_the_database_at_once_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (server, _) = Auth::open(dir.path(), None).unwrap();
        let (cli, _) = Auth::open(dir.path(), None).unwrap();
        std::thread::scope(|s| {
            for (who, auth) in [("server", &server), ("cli", &cli)] {
                s.spawn(move || {
                    for i in 0..40 {
                        auth.create_token(&format!("{who}-{i}"), Role::Viewer, None).unwrap();
                    }
                });
            }
        });
        let names: std::collections::HashSet<String> = server.tokens().into_iter().map(|t| t.name).collect();
        for who in ["server", "cli"] {
            for i in 0..40 {
                assert!(names.contains(&format!("{who}-{i}")), "{who}-{i} was lost");
            }
        }
    }

    #[tokio::test]
    async fn changes_made_by_another_process_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (server, _) = open(dir.path());
        let (cli, _) = open(dir.path());
        cli.set_user("otto", Role::Operator, "operator password 1").unwrap();
        let sid = server.login("otto", "operator password 1", None).await.unwrap();
        assert_eq!(server.session(&sid).unwrap().principal.role, Role::Operator);
        // A role change keeps the session; the role is the new one at once.
        cli.set_role("otto", Role::Viewer).unwrap();
        assert_eq!(server.session(&sid).unwrap().principal.role, Role::Viewer);
        // Removal (by the other process) ends the session.
        cli.remove_user("otto").unwrap();
        assert!(server.session(&sid).is_none());
        // A user of the same name created again does not inherit the old sessions.
        cli.set_user("otto", Role::Operator, "operator password 1").unwrap();
        assert!(server.session(&sid).is_none());
        // A new password set by the other process ends the sessions too.
        let sid = server.login("otto", "operator password 1", None).await.unwrap();
        cli.set_user("otto", Role::Operator, "operator password 2").unwrap();
        assert!(server.session(&sid).is_none());
        // Tokens revoked or created by the other process count at once.
        let t = cli.create_token("ci", Role::Viewer, None).unwrap();
        assert!(server.token(&t).is_some());
        cli.revoke_token("ci").unwrap();
        assert!(server.token(&t).is_none());
    }

    #[tokio::test]
    async fn an_unknown_user_costs_the_same_argon2_check_as_a_known_one() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = open(dir.path());
        auth.set_user("erin", Role::Operator, "erin's password").unwrap();
        let before = auth.password_checks();
        assert_eq!(auth.login("erin", "wrong password", None).await, Err(AuthError::WrongPassword));
        assert_eq!(auth.password_checks(), before + 1);
        assert_eq!(auth.login("nobody", "wrong password", None).await, Err(AuthError::WrongPassword));
        assert_eq!(auth.password_checks(), before + 2, "an unknown user runs Argon2 too");
        // ... with the parameters of real hashes (the PHC string up to the salt).
        let params = |phc: &str| phc.split('$').take(4).collect::<Vec<_>>().join("$");
        let real = auth.with_db(|db| db.users.iter().find(|u| u.name == "erin").unwrap().password.clone());
        assert_eq!(params(dummy_hash()), params(&real));
        assert!(params(&real).starts_with("$argon2id$v=19$m="), "{real}");
        // The dummy hash accepts no password: a user named like nothing cannot log in.
        assert!(auth.verify("nobody", "").is_none());
    }

    #[tokio::test]
    async fn failed_logins_are_throttled_per_user() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = open(dir.path());
        auth.set_user("erin", Role::Operator, "erin's password").unwrap();
        let client = Some("192.0.2.9".parse().unwrap());
        for _ in 0..=throttle::PER_USER.free {
            assert_eq!(auth.login("erin", "guess", client).await, Err(AuthError::WrongPassword));
        }
        let checks = auth.password_checks();
        match auth.login("erin", "erin's password", client).await {
            Err(AuthError::Throttled { retry_after }) => assert!(retry_after <= throttle::PER_USER.base),
            other => panic!("{other:?}"),
        }
        assert_eq!(auth.password_checks(), checks, "a throttled login runs no Argon2");
    }

    #[tokio::test]
    async fn own_password_change_needs_the_current_one_and_ends_other_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = open(dir.path());
        auth.set_user("erin", Role::Operator, "erin's password").unwrap();
        let here = auth.login("erin", "erin's password", None).await.unwrap();
        let elsewhere = auth.login("erin", "erin's password", None).await.unwrap();
        assert_eq!(
            auth.change_password("erin", "not it", "erin's new password", None, Some(&here)).await,
            Err(AuthError::WrongPassword)
        );
        assert_eq!(
            auth.change_password("erin", "erin's password", "short", None, Some(&here)).await,
            Err(AuthError::ShortPassword)
        );
        auth.change_password("erin", "erin's password", "erin's new password", None, Some(&here)).await.unwrap();
        assert!(auth.session(&here).is_some(), "the session the change was made from stays");
        assert!(auth.session(&elsewhere).is_none(), "other sessions end");
        assert!(auth.login("erin", "erin's password", None).await.is_err());
        assert!(auth.login("erin", "erin's new password", None).await.is_ok());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = open(dir.path());
        // Times far from now on both sides: a slow disk (the token file is synced) cannot move
        // a token across its expiry while the test runs.
        let later = Utc::now() + chrono::Duration::hours(1);
        let valid = auth.create_token("valid", Role::Viewer, Some(later)).unwrap();
        let past = Utc::now() - chrono::Duration::seconds(1);
        let t = auth.create_token("short-lived", Role::Viewer, Some(past)).unwrap();
        assert!(auth.token(&valid).is_some());
        assert!(auth.token(&t).is_none());
        assert!(auth.tokens().iter().any(|t| t.name == "short-lived" && t.expired(Utc::now())));
        assert!(auth.tokens().iter().any(|t| t.name == "valid" && !t.expired(Utc::now())));
    }

    #[test]
    fn expiry_is_a_lifetime_or_a_future_time() {
        let now = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let at = |s: &str| parse_expiry(s, now).map(|t| t.to_rfc3339());
        assert_eq!(at("90d").unwrap(), "2025-04-01T00:00:00+00:00");
        assert_eq!(at("12h").unwrap(), "2025-01-01T12:00:00+00:00");
        assert_eq!(at(" 30m ").unwrap(), "2025-01-01T00:30:00+00:00");
        assert_eq!(at("2w").unwrap(), "2025-01-15T00:00:00+00:00");
        assert_eq!(at("2025-06-30").unwrap(), "2025-06-30T00:00:00+00:00");
        assert_eq!(at("2025-02-01T10:00:00+01:00").unwrap(), "2025-02-01T09:00:00+00:00");
        for bad in ["", "d", "0d", "-5d", "90", "90y", "2024-12-31", "99999999999999999999d", "1000000w"] {
            assert!(matches!(parse_expiry(bad, now), Err(AuthError::BadExpiry(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_import_of_the_mates_users_keeps_this_hosts_own_tokens() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, a_boot) = Auth::open(a_dir.path(), None).unwrap();
        let (b, b_boot) = Auth::open(b_dir.path(), None).unwrap();
        let (a_boot, b_boot) = (a_boot.unwrap(), b_boot.unwrap());
        a.set_user("nina", Role::Operator, "nina's password 1").unwrap();
        assert!(b.import(a.export().unwrap()).unwrap(), "the mate's users arrive");
        assert!(b.users().iter().any(|u| u.name == "nina"));
        let b_cli = std::fs::read_to_string(&b_boot.cli_token_file).unwrap();
        let a_cli = std::fs::read_to_string(&a_boot.cli_token_file).unwrap();
        assert_eq!(b.token(&b_cli).map(|p| p.role), Some(Role::Admin), "this host's cli-token still works");
        assert!(b.token(&a_cli).is_none(), "the mate's cli-token is not taken");
        assert!(!b.import(a.export().unwrap()).unwrap(), "the same copy again changes nothing");
    }
}
