//! Users, roles, sessions and API tokens.
//!
//! Users and tokens live in `<state_dir>/users.json` (mode 0600): passwords as Argon2id PHC
//! strings, tokens as SHA-256 digests (they are 256-bit random values, so a fast hash is
//! enough). The file is reread when it changes, so `tollgate user ...` commands take effect in a
//! running server. Sessions are kept in memory (a restart means logging in again).
//!
//! On first start an `admin` user is created with a random password, returned once to be
//! printed, together with two tokens written next to the file: `cli-token` (admin, for the
//! local CLI) and `ingest-token` (ingest only, for the local shipper).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a user or token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Only sends records to the collector (engines' and probes' shippers).
    Ingest,
    /// Sees dashboards, analytics, policies and alarms.
    Viewer,
    /// A viewer who also installs and uninstalls policies.
    Operator,
    /// An operator who also manages users and tokens.
    Admin,
}

impl Role {
    fn rank(self) -> u8 {
        match self {
            Role::Ingest => 0,
            Role::Viewer => 1,
            Role::Operator => 2,
            Role::Admin => 3,
        }
    }

    /// True if this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        match needed {
            Role::Ingest => matches!(self, Role::Ingest | Role::Operator | Role::Admin),
            _ => self != Role::Ingest && self.rank() >= needed.rank(),
        }
    }

    /// Parses `ingest`, `viewer`, `operator` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ingest" => Some(Role::Ingest),
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
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

/// A stored API token (without its secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Name (shown in histories as who made a change).
    pub name: String,
    /// Role.
    pub role: Role,
    /// SHA-256 of the token, hex.
    sha256: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UserDb {
    users: Vec<User>,
    tokens: Vec<TokenInfo>,
}

/// A user as listed (no password).
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// When created.
    pub created_at: DateTime<Utc>,
}

/// Secrets created on first start, to show once.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The generated password of `admin`.
    pub admin_password: String,
    /// Where the admin CLI token was written.
    pub cli_token_file: PathBuf,
}

struct Session {
    principal: Principal,
    expires: Instant,
}

/// How long a session lasts without use.
const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);

/// The user database and sessions of one server.
pub struct Auth {
    path: PathBuf,
    db: Mutex<(UserDb, Option<SystemTime>)>,
    sessions: Mutex<HashMap<String, Session>>,
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

fn hash_password(password: &str) -> io::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| io::Error::other(format!("password hashing failed: {e}")))
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

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
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
                    password: hash_password(&admin_password)?,
                    created_at: now,
                }],
                tokens: vec![
                    TokenInfo {
                        name: "cli".into(),
                        role: Role::Admin,
                        sha256: sha256_hex(&cli_token),
                        created_at: now,
                    },
                    TokenInfo {
                        name: "local-shipper".into(),
                        role: Role::Ingest,
                        sha256: sha256_hex(&ingest_token),
                        created_at: now,
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
            sessions: Mutex::new(HashMap::new()),
            extra_admin_token: extra_admin_token.filter(|t| !t.is_empty()),
        };
        auth.reload()?;
        Ok((auth, bootstrap))
    }

    fn reload(&self) -> io::Result<()> {
        let mut guard = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let mtime = modified(&self.path);
        if guard.1.is_some() && guard.1 == mtime {
            return Ok(());
        }
        let bytes = std::fs::read(&self.path)?;
        let db: UserDb = serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", self.path.display())))?;
        *guard = (db, mtime);
        Ok(())
    }

    fn with_db<T>(&self, f: impl FnOnce(&UserDb) -> T) -> T {
        if let Err(e) = self.reload() {
            tracing::error!(error = %e, "cannot reread the user database; keeping the last good copy");
        }
        let guard = self.db.lock().unwrap_or_else(|e| e.into_inner());
        f(&guard.0)
    }

    fn update(&self, f: impl FnOnce(&mut UserDb) -> Result<(), String>) -> Result<(), String> {
        let _ = self.reload();
        let mut guard = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let mut db = guard.0.clone();
        f(&mut db)?;
        let bytes = serde_json::to_vec_pretty(&db).map_err(|e| e.to_string())?;
        write_private(&self.path, &bytes).map_err(|e| format!("{}: {e}", self.path.display()))?;
        *guard = (db, modified(&self.path));
        Ok(())
    }

    /// Checks a password; on success opens a session and returns its id.
    pub fn login(&self, name: &str, password: &str) -> Option<String> {
        let user = self.with_db(|db| db.users.iter().find(|u| u.name == name).cloned())?;
        let parsed = PasswordHash::new(&user.password).ok()?;
        Argon2::default().verify_password(password.as_bytes(), &parsed).ok()?;
        let id = random_secret();
        let principal = Principal { name: user.name, role: user.role };
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), Session { principal, expires: Instant::now() + SESSION_IDLE });
        Some(id)
    }

    /// The principal of a live session (extending it).
    pub fn session(&self, id: &str) -> Option<Principal> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        let s = sessions.get_mut(id)?;
        s.expires = now + SESSION_IDLE;
        Some(s.principal.clone())
    }

    /// Ends a session.
    pub fn logout(&self, id: &str) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// The principal of an API token.
    pub fn token(&self, token: &str) -> Option<Principal> {
        if self.extra_admin_token.as_deref() == Some(token) {
            return Some(Principal { name: "config-token".into(), role: Role::Admin });
        }
        let digest = sha256_hex(token);
        self.with_db(|db| {
            db.tokens.iter().find(|t| t.sha256 == digest).map(|t| Principal { name: t.name.clone(), role: t.role })
        })
    }

    /// Adds a user, or changes the password and role of an existing one.
    pub fn set_user(&self, name: &str, role: Role, password: &str) -> Result<(), String> {
        if name.trim().is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("bad user name {name:?}"));
        }
        if password.chars().count() < 10 {
            return Err("passwords need at least 10 characters".into());
        }
        let hash = hash_password(password).map_err(|e| e.to_string())?;
        self.update(|db| {
            match db.users.iter_mut().find(|u| u.name == name) {
                Some(u) => {
                    u.role = role;
                    u.password = hash;
                }
                None => db.users.push(User { name: name.to_string(), role, password: hash, created_at: Utc::now() }),
            }
            Ok(())
        })?;
        // A changed password or role ends that user's sessions.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, s| s.principal.name != name);
        Ok(())
    }

    /// Removes a user (not the last admin).
    pub fn remove_user(&self, name: &str) -> Result<(), String> {
        self.update(|db| {
            let admins = db.users.iter().filter(|u| u.role == Role::Admin).count();
            match db.users.iter().position(|u| u.name == name) {
                None => Err(format!("no user {name:?}")),
                Some(i) if db.users[i].role == Role::Admin && admins == 1 => {
                    Err("the last admin cannot be removed".into())
                }
                Some(i) => {
                    db.users.remove(i);
                    Ok(())
                }
            }
        })?;
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, s| s.principal.name != name);
        Ok(())
    }

    /// Creates an API token and returns its secret (shown once).
    pub fn create_token(&self, name: &str, role: Role) -> Result<String, String> {
        let secret = random_secret();
        let digest = sha256_hex(&secret);
        self.update(|db| {
            if db.tokens.iter().any(|t| t.name == name) {
                return Err(format!("a token named {name:?} exists; revoke it first"));
            }
            db.tokens.push(TokenInfo { name: name.to_string(), role, sha256: digest, created_at: Utc::now() });
            Ok(())
        })?;
        Ok(secret)
    }

    /// Revokes a token by name.
    pub fn revoke_token(&self, name: &str) -> Result<(), String> {
        self.update(|db| {
            let before = db.tokens.len();
            db.tokens.retain(|t| t.name != name);
            if db.tokens.len() == before { Err(format!("no token {name:?}")) } else { Ok(()) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_bootstraps_admin_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, boot) = Auth::open(dir.path(), None).unwrap();
        let boot = boot.expect("first start");
        assert!(auth.login("admin", "wrong").is_none());
        let sid = auth.login("admin", &boot.admin_password).expect("generated password works");
        assert_eq!(auth.session(&sid).unwrap().role, Role::Admin);
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

    #[test]
    fn roles_users_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = Auth::open(dir.path(), Some("from-config".into())).unwrap();
        assert_eq!(auth.token("from-config").unwrap().role, Role::Admin);
        assert!(auth.set_user("vera", Role::Viewer, "short").is_err());
        auth.set_user("vera", Role::Viewer, "a long enough password").unwrap();
        let sid = auth.login("vera", "a long enough password").unwrap();
        let vera = auth.session(&sid).unwrap();
        assert!(vera.role.allows(Role::Viewer) && !vera.role.allows(Role::Operator) && !vera.role.allows(Role::Ingest));
        assert!(Role::Operator.allows(Role::Ingest) && !Role::Ingest.allows(Role::Viewer));
        // Changing the user ends her sessions.
        auth.set_user("vera", Role::Operator, "another long password").unwrap();
        assert!(auth.session(&sid).is_none());
        let t = auth.create_token("ci", Role::Operator).unwrap();
        assert_eq!(auth.token(&t).unwrap(), Principal { name: "ci".into(), role: Role::Operator });
        assert!(auth.create_token("ci", Role::Viewer).is_err());
        auth.revoke_token("ci").unwrap();
        assert!(auth.token(&t).is_none());
        assert!(auth.remove_user("admin").is_err(), "the last admin stays");
        auth.remove_user("vera").unwrap();
    }

    #[test]
    fn changes_made_by_another_process_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (server, _) = Auth::open(dir.path(), None).unwrap();
        let (cli, _) = Auth::open(dir.path(), None).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        cli.set_user("otto", Role::Operator, "operator password 1").unwrap();
        assert!(server.login("otto", "operator password 1").is_some());
    }
}
