//! The PostgreSQL store over TLS, against real PostgreSQL servers.
//!
//! Each test starts its own throwaway cluster (`initdb` + `pg_ctl`, run as the `postgres` user
//! when the tests run as root, since PostgreSQL refuses root) on a free port of 127.0.0.1, with a
//! server certificate for `localhost` and 127.0.0.1 issued by a test CA made here with rcgen, and
//! stops it when the test ends. The binaries come from `TOLLGATE_TEST_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin` (scripts/install-test-deps.sh installs them).
//!
//! What is checked is what the server saw: `pg_stat_ssl` says the store's sessions are encrypted
//! (TLS 1.3) and, for certificate login, which client certificate was presented.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tollgate_records::{EnumQueryRecord, Record, Transport};
use tollgate_store::postgres::PgStore;
use tollgate_store::{Dataset, Store};

/// A certificate authority of the test.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { pem, issuer: Issuer::new(params, key) }
    }

    /// A leaf certificate with `common_name` and these DNS names / IP addresses: (cert, key).
    fn issue(&self, common_name: &str, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        (params.signed_by(&key, &self.issuer).unwrap().pem(), key.serialize_pem())
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The directory of `initdb`, `pg_ctl` and `postgres`.
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("TOLLGATE_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!("no /usr/lib/postgresql/*/bin/initdb: scripts/install-test-deps.sh installs PostgreSQL, or set TOLLGATE_TEST_PG_BIN")
    })
}

/// `program` of PostgreSQL, run as `postgres` when we are root.
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Who may connect, and how.
#[derive(Clone, Copy, PartialEq)]
enum Server {
    /// `ssl = on`; TCP connections only over TLS (`hostssl`): password for every user but
    /// `certuser`, who logs in with a client certificate (`cert`).
    TlsOnly,
    /// `ssl = off`; password logins over plain TCP.
    Plain,
}

/// A throwaway PostgreSQL cluster, stopped and removed on drop.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    password: String,
    other_ca: PathBuf,
}

impl Cluster {
    fn start(server: Server) -> Cluster {
        let bin = pg_bin();
        // Under /tmp when root, so the postgres user can reach it whatever TMPDIR says.
        let parent = if is_root() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        let dir = tempfile::Builder::new().prefix("tollgate-pg-").tempdir_in(parent).unwrap();
        let d = dir.path();
        let password = format!("pw{}", ulid::Ulid::new().to_string().to_lowercase());

        let ca = Ca::new("tollgate test CA");
        let other = Ca::new("another CA");
        let (server_cert, server_key) = ca.issue("localhost", &["localhost", "127.0.0.1"]);
        let (client_cert, client_key) = ca.issue("certuser", &[]);
        let (stranger_cert, stranger_key) = other.issue("certuser", &[]);
        for (name, text) in [
            ("ca.pem", &ca.pem),
            ("other-ca.pem", &other.pem),
            ("server.crt", &server_cert),
            ("server.key", &server_key),
            ("client.crt", &client_cert),
            ("client.key", &client_key),
            ("stranger.crt", &stranger_cert),
            ("stranger.key", &stranger_key),
            ("pwfile", &password),
        ] {
            std::fs::write(d.join(name), text).unwrap();
            std::fs::set_permissions(d.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        if is_root() {
            let mut c = Command::new("chown");
            c.args(["-R", "postgres:postgres"]).arg(d);
            run(c, "chown");
        }

        let mut initdb = pg_command(&bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(d.join("data"))
            .args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C", "--no-instructions"])
            .arg(format!("--pwfile={}", d.join("pwfile").display()));
        run(initdb, "initdb");
        let hba = match server {
            Server::TlsOnly => {
                "local all all trust\nhostssl all certuser 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
            }
            Server::Plain => "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
        };
        std::fs::write(d.join("data/pg_hba.conf"), hba).unwrap();

        let ssl = match server {
            Server::TlsOnly => format!(
                "-c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key -c ssl_ca_file={0}/ca.pem",
                d.display()
            ),
            Server::Plain => "-c ssl=off".into(),
        };
        // A free port now may be taken before the server binds it: try a few.
        for attempt in 1..=5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut pg_ctl = pg_command(&bin.join("pg_ctl"));
            pg_ctl.arg("-D").arg(d.join("data")).arg("-l").arg(d.join("server.log")).args(["-w", "-t", "120", "-o"]);
            pg_ctl.arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=20 -c shared_buffers=16MB {ssl}",
                d.display()
            ));
            pg_ctl.arg("start");
            let out = pg_ctl.output().unwrap();
            if out.status.success() {
                let cluster = Cluster { other_ca: d.join("other-ca.pem"), dir, bin, port, password };
                let mut admin = cluster.admin();
                admin.batch_execute("CREATE ROLE certuser LOGIN").unwrap();
                admin.batch_execute("CREATE DATABASE certdb OWNER certuser").unwrap();
                return cluster;
            }
            let log = std::fs::read_to_string(d.join("server.log")).unwrap_or_default();
            assert!(attempt < 5 && log.contains("could not bind"), "PostgreSQL did not start: {log}");
        }
        unreachable!()
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The superuser over the Unix socket (trust), to look at what the server sees.
    fn admin(&self) -> postgres::Client {
        postgres::Config::new()
            .host_path(self.dir.path())
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect(postgres::NoTls)
            .unwrap()
    }

    /// `postgres://postgres:PASSWORD@host:port/postgres?params`.
    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres:{}@{host}:{}/postgres?{params}", self.password, self.port)
    }

    /// The TLS protocol of every TCP session of `user` (`None`: a session in plain text).
    fn sessions(&self, user: &str) -> Vec<(Option<String>, Option<String>)> {
        self.admin()
            .query(
                "SELECT CASE WHEN s.ssl THEN s.version END, s.client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.usename = $1 AND a.client_addr IS NOT NULL ORDER BY a.backend_start",
                &[&user],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut stop = pg_command(&self.bin.join("pg_ctl"));
        stop.arg("-D").arg(self.dir.path().join("data")).args(["-m", "immediate", "-w", "stop"]);
        let _ = stop.output();
    }
}

fn record(n: u32) -> Record {
    Record::enum_query(EnumQueryRecord {
        id: ulid::Ulid::new(),
        time: Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap() + Duration::seconds(i64::from(n)),
        device: "engine-tls".into(),
        client: "sbc-1".into(),
        client_addr: "127.0.0.1:5060".parse().unwrap(),
        transport: Transport::Udp,
        source: Some("+12125550100".parse().unwrap()),
        destination: format!("+4930123{n:04}").parse().unwrap(),
        direction: "outbound".into(),
        rule: None,
        action: "allow".into(),
        detail: None,
        rcode: "NOERROR".into(),
        fail_open: false,
        latency_us: 100,
        stale: false,
        policy_version: Some(1),
        protocol: Default::default(),
    })
}

/// Stores `n` records and reads back how many the store holds.
fn round_trip(store: &PgStore, first: u32, n: u32) -> u64 {
    let records: Vec<Record> = (first..first + n).map(record).collect();
    assert_eq!(store.ingest(&records).unwrap().inserted, u64::from(n));
    let from = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
    store.count(Dataset::Enum, from, from + Duration::days(1)).unwrap()
}

/// The error of opening `url`, which must fail, checked for the password.
fn open_error(cluster: &Cluster, url: &str) -> String {
    let e = match PgStore::open(url) {
        Ok(_) => panic!("{url} connected"),
        Err(e) => e.to_string(),
    };
    assert!(!e.contains(&cluster.password), "the password shows in: {e}");
    eprintln!("refused as expected: {e}");
    e
}

#[test]
fn verify_full_to_127_0_0_1_and_localhost_stores_records_over_tls_1_3() {
    let c = Cluster::start(Server::TlsOnly);
    let ca = c.file("ca.pem");
    let store = PgStore::open(&c.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}"))).unwrap();
    assert!(store.connection_is_encrypted().unwrap());
    assert_eq!(round_trip(&store, 0, 20), 20);
    let again = PgStore::open(&c.url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}"))).unwrap();
    assert!(again.connection_is_encrypted().unwrap());
    assert_eq!(round_trip(&again, 20, 5), 25);
    // The server's own view: six sessions (a writer, a rollup flusher and a reader per store:
    // one request at a time opens no second reader), all TLS 1.3.
    assert_eq!((store.readers_open(), again.readers_open()), (1, 1));
    let sessions = c.sessions("postgres");
    assert_eq!(sessions.len(), 6, "{sessions:?}");
    assert!(sessions.iter().all(|(v, _)| v.as_deref() == Some("TLSv1.3")), "{sessions:?}");
}

#[test]
fn a_server_certificate_from_another_ca_is_refused() {
    let c = Cluster::start(Server::TlsOnly);
    let other = c.other_ca.display().to_string();
    let e = open_error(&c, &c.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={other}")));
    assert!(e.contains("sslmode verify-full"), "{e}");
    assert!(e.contains("UnknownIssuer") && e.contains("not issued by a CA in sslrootcert"), "{e}");
    // libpq's rule: with sslrootcert, require and verify-ca check the chain too.
    for mode in ["require", "verify-ca", "prefer"] {
        let e = open_error(&c, &c.url("localhost", &format!("sslmode={mode}&sslrootcert={other}")));
        assert!(e.contains("UnknownIssuer"), "{mode}: {e}");
    }
    // Without sslrootcert, require encrypts but authenticates nothing (libpq's rule).
    let store = PgStore::open(&c.url("127.0.0.1", "sslmode=require")).unwrap();
    assert!(store.connection_is_encrypted().unwrap());
    assert_eq!(round_trip(&store, 0, 3), 3);
}

#[test]
fn verify_full_refuses_a_host_the_certificate_does_not_name_and_verify_ca_does_not_check_it() {
    let c = Cluster::start(Server::TlsOnly);
    let ca = c.file("ca.pem");
    // TCP to 127.0.0.1, TLS checks the name db.example.test (libpq's hostaddr).
    let e =
        open_error(&c, &c.url("db.example.test", &format!("hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}")));
    assert!(e.contains("does not name 'db.example.test'"), "{e}");
    let store =
        PgStore::open(&c.url("db.example.test", &format!("hostaddr=127.0.0.1&sslmode=verify-ca&sslrootcert={ca}")))
            .unwrap();
    assert!(store.connection_is_encrypted().unwrap());
    assert_eq!(round_trip(&store, 0, 2), 2);
}

#[test]
fn require_and_verify_full_refuse_a_server_without_tls_and_prefer_falls_back_to_plain_text() {
    let c = Cluster::start(Server::Plain);
    let ca = c.file("ca.pem");
    for params in ["sslmode=require".to_string(), format!("sslmode=verify-full&sslrootcert={ca}")] {
        let e = open_error(&c, &c.url("127.0.0.1", &params));
        assert!(e.contains("server does not support TLS") && e.contains("ssl = off"), "{params}: {e}");
    }
    // Why verify-full matters: prefer (libpq's default) silently talks in plain text.
    let store = PgStore::open(&c.url("127.0.0.1", "sslmode=prefer")).unwrap();
    assert!(!store.connection_is_encrypted().unwrap());
    let store = PgStore::open(&c.url("127.0.0.1", "")).unwrap();
    assert!(!store.connection_is_encrypted().unwrap());
    // Two stores, each with a writer, a rollup flusher and a reader.
    assert_eq!(c.sessions("postgres"), vec![(None, None); 6]);
}

#[test]
fn disable_is_refused_by_a_server_that_accepts_only_tls() {
    let c = Cluster::start(Server::TlsOnly);
    let e = open_error(&c, &c.url("127.0.0.1", "sslmode=disable"));
    assert!(e.contains("no encryption") && e.contains("accepts only TLS connections"), "{e}");
    // prefer (the default) gets TLS from this server.
    let store = PgStore::open(&c.url("127.0.0.1", "")).unwrap();
    assert!(store.connection_is_encrypted().unwrap());
}

#[test]
fn a_client_certificate_logs_in_where_pg_hba_says_cert() {
    let c = Cluster::start(Server::TlsOnly);
    let (ca, cert, key) = (c.file("ca.pem"), c.file("client.crt"), c.file("client.key"));
    let url = |params: &str| format!("postgres://certuser@localhost:{}/certdb?{params}", c.port);
    let store =
        PgStore::open(&url(&format!("sslmode=verify-full&sslrootcert={ca}&sslcert={cert}&sslkey={key}"))).unwrap();
    assert!(store.connection_is_encrypted().unwrap());
    assert_eq!(round_trip(&store, 0, 7), 7);
    let sessions = c.sessions("certuser");
    assert_eq!(sessions.len(), 3, "a writer, a rollup flusher and a reader: {sessions:?}");
    assert!(sessions.iter().all(|(v, dn)| v.is_some() && dn.as_deref() == Some("/CN=certuser")), "{sessions:?}");
    drop(store);

    // No client certificate: the server refuses the login.
    let e = open_error(&c, &url(&format!("sslmode=verify-full&sslrootcert={ca}")));
    assert!(e.contains("requires a valid client certificate") && e.contains("give sslcert="), "{e}");
    // A certificate from another CA: the server ends the handshake.
    let (cert, key) = (c.file("stranger.crt"), c.file("stranger.key"));
    let e = open_error(&c, &url(&format!("sslmode=verify-full&sslrootcert={ca}&sslcert={cert}&sslkey={key}")));
    assert!(e.contains("UnknownCA") || e.contains("refused the TLS handshake"), "{e}");
}
