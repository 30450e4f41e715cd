//! The PostgreSQL store URL: `postgres://user:password@host:port/db?sslmode=verify-full&...`.
//!
//! tollgate reads the TLS parameters itself (`sslmode` with libpq's five modes, `sslrootcert`,
//! `sslcert`, `sslkey`: see [`crate::tls`]), because the `postgres` crate knows only
//! `disable`/`prefer`/`require` and no certificate files; every other parameter goes to the
//! `postgres` crate's parser unchanged. Errors name the parameter and show the URL without its
//! password ([`redact_url`]).

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use percent_encoding::percent_decode_str;
use postgres::config::{Host, SslMode as PgSslMode};

use crate::StoreError;
use crate::tls::{SslMode, TlsOptions};

/// A parsed store URL.
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// What the `postgres` crate connects with (its `sslmode` set from [`TlsOptions::mode`]).
    pub config: postgres::Config,
    /// The TLS parameters.
    pub tls: TlsOptions,
    /// The URL without its password, for logs and errors.
    pub shown: String,
}

impl PgTarget {
    /// Reads `url`; an unknown `sslmode`, an empty file parameter or anything the `postgres`
    /// crate refuses is an error naming the parameter.
    pub fn parse(url: &str) -> Result<PgTarget, StoreError> {
        let shown = redact_url(url);
        let bad = |message: String| StoreError::BadParameter { url: shown.clone(), message };
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut tls = TlsOptions::default();
        let mut kept: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |v: &str| percent_decode_str(v).decode_utf8().map(|c| c.into_owned());
            let key = decode(key).map_err(|_| bad(format!("parameter {key:?} is not UTF-8 once decoded")))?;
            let path = |name: &str| -> Result<Option<PathBuf>, StoreError> {
                let v = decode(value).map_err(|_| bad(format!("{name} is not UTF-8 once decoded")))?;
                if v.is_empty() {
                    return Err(bad(format!("{name} is empty: give the path of a PEM file")));
                }
                Ok(Some(PathBuf::from(v)))
            };
            match key.as_str() {
                "sslmode" => {
                    let v = decode(value).map_err(|_| bad("sslmode is not UTF-8 once decoded".into()))?;
                    tls.mode = v.parse().map_err(bad)?;
                }
                "sslrootcert" => tls.root_cert = path("sslrootcert")?,
                "sslcert" => tls.cert = path("sslcert")?,
                "sslkey" => tls.key = path("sslkey")?,
                _ => kept.push(pair),
            }
        }
        tls.validate().map_err(bad)?;
        let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        let mut config = postgres::Config::from_str(&rest).map_err(|e| bad(e.to_string()))?;
        config.ssl_mode(match tls.mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });
        Ok(PgTarget { config, tls, shown })
    }

    /// The first TCP host (the name TLS checks), for messages.
    pub fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        }
    }

    /// Whether the store is on another machine and its server is not authenticated by
    /// certificate and name (anything but `verify-full`): warned about at start.
    pub fn unauthenticated_remote(&self) -> bool {
        self.tls.mode != SslMode::VerifyFull && !self.is_local()
    }

    /// The TLS files given by a relative path (they would depend on the working directory,
    /// `/` under systemd): `(parameter, path)`.
    pub fn relative_files(&self) -> Vec<(&'static str, &std::path::Path)> {
        [("sslrootcert", &self.tls.root_cert), ("sslcert", &self.tls.cert), ("sslkey", &self.tls.key)]
            .into_iter()
            .filter_map(|(name, p)| p.as_deref().filter(|p| p.is_relative()).map(|p| (name, p)))
            .collect()
    }

    /// Whether every host is on this machine (loopback address, `localhost` or a Unix socket).
    pub fn is_local(&self) -> bool {
        let local = |h: &Host| match h {
            Host::Unix(_) => true,
            Host::Tcp(name) => {
                name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
        };
        match self.config.get_hostaddrs() {
            [] => self.config.get_hosts().iter().all(local),
            addrs => addrs.iter().all(|ip| ip.is_loopback()),
        }
    }
}

/// `url` with the password (in the user part or a `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => match base[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &base[..s + 3], &base[at..]),
            None => base.to_string(),
        },
        _ => base
            .split(' ')
            .map(|w| if w.starts_with("password=") { "password=***" } else { w })
            .collect::<Vec<_>>()
            .join(" "),
    };
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<&str> =
            q.split('&').map(|p| if p.split('=').next() == Some("password") { "password=***" } else { p }).collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact_url("postgres://u:s3cret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact_url("postgres://u:pa/ss@db/x?sslmode=require"), "postgres://u:***@db/x?sslmode=require");
        assert_eq!(
            redact_url("postgres://u@db/x?password=s3cret&sslmode=verify-full"),
            "postgres://u@db/x?password=***&sslmode=verify-full"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact_url("host=db password=s3cret"), "host=db password=***");
        assert_eq!(redact_url("mysql://u:s3cret@db/x"), "mysql://u:***@db/x");
    }

    #[test]
    fn tls_parameters_are_taken_out_and_the_rest_goes_to_postgres() {
        let t = PgTarget::parse(
            "postgres://u:pw@db.example.net:6432/records?sslmode=verify-full&sslrootcert=/etc/ca%20dir/ca.pem&application_name=tg&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(t.tls.mode, SslMode::VerifyFull);
        assert_eq!(t.tls.root_cert, Some(PathBuf::from("/etc/ca dir/ca.pem")));
        assert_eq!(t.config.get_ssl_mode(), PgSslMode::Require);
        assert_eq!(t.config.get_application_name(), Some("tg"));
        assert_eq!(t.config.get_dbname(), Some("records"));
        assert_eq!(t.host(), "db.example.net");
        assert!(!t.is_local());
        assert!(!t.unauthenticated_remote());
        assert!(t.relative_files().is_empty());
        assert!(!t.shown.contains("pw"));
        let t = PgTarget::parse("postgres://u@db.example.net/x?sslmode=require&sslrootcert=ca.pem").unwrap();
        assert!(t.unauthenticated_remote(), "require authenticates no host name");
        assert_eq!(t.relative_files(), [("sslrootcert", std::path::Path::new("ca.pem"))]);
        assert!(PgTarget::parse("postgres://u@db.example.net/x").unwrap().unauthenticated_remote());

        let t = PgTarget::parse("postgres://u:pw@127.0.0.1/x").unwrap();
        assert!(!t.unauthenticated_remote(), "loopback needs no warning");
        assert_eq!(t.tls.mode, SslMode::Prefer);
        assert_eq!(t.config.get_ssl_mode(), PgSslMode::Prefer);
        assert!(t.is_local());
        let t = PgTarget::parse("postgresql://u@localhost/x?sslmode=disable").unwrap();
        assert_eq!(t.config.get_ssl_mode(), PgSslMode::Disable);
        assert!(t.is_local());
        let t =
            PgTarget::parse("postgres://u@db.example.net/x?hostaddr=127.0.0.1&sslmode=verify-ca&sslrootcert=ca.pem")
                .unwrap();
        assert!(t.is_local());
        assert_eq!(t.host(), "db.example.net");
    }

    #[test]
    fn bad_parameters_are_named_and_the_password_is_not_shown() {
        let e = PgTarget::parse("postgres://u:s3cret@db/x?sslmode=verify-ful").unwrap_err().to_string();
        assert_eq!(
            e,
            "store url postgres://u:***@db/x?sslmode=verify-ful: sslmode 'verify-ful' is not one of disable, prefer, require, verify-ca, verify-full"
        );
        let e = PgTarget::parse("postgres://u:s3cret@db/x?sslmode=verify-full").unwrap_err().to_string();
        assert!(e.contains("sslmode verify-full needs sslrootcert="), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let e = PgTarget::parse("postgres://u@db/x?sslrootcert=").unwrap_err().to_string();
        assert!(e.contains("sslrootcert is empty"), "{e}");
        let e = PgTarget::parse("postgres://u@db/x?sslkey=k.pem").unwrap_err().to_string();
        assert!(e.contains("sslkey is given without sslcert"), "{e}");
        let e = PgTarget::parse("postgres://u:s3cret@db/x?sslcompression=1").unwrap_err().to_string();
        assert!(e.contains("sslcompression"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}
