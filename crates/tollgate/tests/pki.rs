//! `tollgate pki` as an operator runs it: a CA, certificates for two roles, `show` in text and
//! JSON, keys 0600, no overwriting without --force, clear refusals; and openssl reads and
//! verifies what it made.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn pki(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("pki")
        .args(args)
        .env_remove("TOLLGATE_CONFIG")
        .output()
        .expect("run tollgate pki")
}

fn ok(args: &[&str]) -> String {
    let out = pki(args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tollgate pki {args:?} failed: {stdout}\n{stderr}");
    stdout.into_owned()
}

/// Runs a command that must fail; its standard error.
fn refused(args: &[&str]) -> String {
    let out = pki(args);
    assert!(!out.status.success(), "tollgate pki {args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().expect("openssl (scripts/install-test-deps.sh installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "openssl {args:?}: {text}");
    text
}

fn show_json(file: &Path) -> serde_json::Value {
    let text = ok(&["show", "--json", file.to_str().unwrap()]);
    let mut list: Vec<serde_json::Value> = serde_json::from_str(&text).expect("show --json prints a JSON list");
    assert_eq!(list.len(), 1, "{text}");
    list.remove(0)
}

#[test]
fn a_ca_issues_certificates_per_role_that_openssl_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let d = dir.to_str().unwrap();

    let init = ok(&["init", "--dir", d, "--name", "Example CA", "--validity", "5years"]);
    assert!(init.contains("ca.crt") && init.contains("ca.key"), "{init}");
    assert!(init.contains("fingerprint  SHA256 "), "{init}");
    assert!(init.contains("next: ") && init.contains("tollgate pki issue"), "{init}");
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&dir.join("ca.crt")), 0o644);

    // A CA is never overwritten.
    let ca_before = std::fs::read(dir.join("ca.key")).unwrap();
    let again = refused(&["init", "--dir", d]);
    assert!(again.contains("already exists") && again.contains("never overwritten"), "{again}");
    assert_eq!(std::fs::read(dir.join("ca.key")).unwrap(), ca_before);

    let issued = ok(&[
        "issue",
        "--dir",
        d,
        "--role",
        "engine",
        "--host",
        "east-a",
        "--ip",
        "10.0.0.11",
        "--ip",
        "10.0.1.11",
        "--dns",
        "east-a.example.net",
    ]);
    assert!(issued.contains("engine certificate for east-a"), "{issued}");
    assert!(issued.contains("[tls]") && issued.contains("/etc/tollgate/pki/east-a.key"), "{issued}");
    let out = tmp.path().join("out");
    ok(&[
        "issue",
        "--dir",
        d,
        "--out-dir",
        out.to_str().unwrap(),
        "--role",
        "manager",
        "--host",
        "mgr-1",
        "--validity",
        "90days",
    ]);
    for (cert, key) in
        [(dir.join("east-a.crt"), dir.join("east-a.key")), (out.join("mgr-1.crt"), out.join("mgr-1.key"))]
    {
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        assert_eq!(mode(&cert), 0o644, "{}", cert.display());
        let verified = openssl(&["verify", "-CAfile", dir.join("ca.crt").to_str().unwrap(), cert.to_str().unwrap()]);
        assert!(verified.contains(": OK"), "{verified}");
        // The key is the certificate's.
        let from_cert = openssl(&["x509", "-noout", "-pubkey", "-in", cert.to_str().unwrap()]);
        let from_key = openssl(&["pkey", "-pubout", "-in", key.to_str().unwrap()]);
        assert_eq!(from_cert, from_key, "{} is not the key of {}", key.display(), cert.display());
    }
    let text = openssl(&["x509", "-noout", "-text", "-in", dir.join("east-a.crt").to_str().unwrap()]);
    for expected in [
        "OU = engine",
        "CN = east-a",
        "URI:urn:tollgate:role:engine",
        "DNS:east-a",
        "DNS:east-a.example.net",
        "IP Address:10.0.0.11",
        "IP Address:10.0.1.11",
        "TLS Web Server Authentication",
        "TLS Web Client Authentication",
        "CN = Example CA",
    ] {
        assert!(text.contains(expected), "openssl does not read {expected:?} in:\n{text}");
    }

    // show, text: the CA and a server certificate.
    let shown = ok(&["show", dir.join("ca.crt").to_str().unwrap(), dir.join("east-a.crt").to_str().unwrap()]);
    assert!(shown.contains("(CA)"), "{shown}");
    for expected in ["role         engine", "host         east-a", "10.0.0.11, 10.0.1.11", "days left    36", "issuer"]
    {
        assert!(shown.contains(expected), "{expected:?} not in:\n{shown}");
    }
    // show, JSON.
    let east = show_json(&dir.join("east-a.crt"));
    assert_eq!(east["role"], "engine");
    assert_eq!(east["host"], "east-a");
    assert_eq!(east["ip_addresses"], serde_json::json!(["10.0.0.11", "10.0.1.11"]));
    assert_eq!(east["is_ca"], false);
    assert!(east["issuer"].as_str().unwrap().contains("CN=Example CA"));
    assert!((364..=365).contains(&east["days_left"].as_i64().unwrap()), "{east}");
    let mgr = show_json(&out.join("mgr-1.crt"));
    assert_eq!(mgr["role"], "manager");
    assert!((89..=90).contains(&mgr["days_left"].as_i64().unwrap()), "{mgr}");
    let ca = show_json(&dir.join("ca.crt"));
    assert_eq!(ca["is_ca"], true);
    assert!((5 * 365..=5 * 366).contains(&ca["days_left"].as_i64().unwrap()), "{ca}");
    // The fingerprint is openssl's.
    let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in", dir.join("east-a.crt").to_str().unwrap()]);
    assert!(fp.contains(east["sha256_fingerprint"].as_str().unwrap()), "{fp} vs {east}");

    // An existing certificate is kept unless --force; --force rotates it (a new serial).
    let cert_before = std::fs::read(dir.join("east-a.crt")).unwrap();
    let kept = refused(&["issue", "--dir", d, "--role", "engine", "--host", "east-a"]);
    assert!(kept.contains("already exists") && kept.contains("--force"), "{kept}");
    assert_eq!(std::fs::read(dir.join("east-a.crt")).unwrap(), cert_before);
    ok(&["issue", "--dir", d, "--role", "engine", "--host", "east-a", "--ip", "10.0.0.11", "--force"]);
    let rotated = show_json(&dir.join("east-a.crt"));
    assert_ne!(rotated["serial"], east["serial"], "rotation gives a new serial");
    assert_eq!(mode(&dir.join("east-a.key")), 0o600);
    openssl(&["verify", "-CAfile", dir.join("ca.crt").to_str().unwrap(), dir.join("east-a.crt").to_str().unwrap()]);
}

#[test]
fn bad_arguments_are_refused_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let d = dir.to_str().unwrap();

    let no_ca = refused(&["issue", "--dir", d, "--role", "engine", "--host", "east-a"]);
    assert!(no_ca.contains("no CA in") && no_ca.contains("tollgate pki init"), "{no_ca}");
    ok(&["init", "--dir", d, "--validity", "2years"]);

    let role = refused(&["issue", "--dir", d, "--role", "admin", "--host", "east-a"]);
    assert!(
        role.contains("'admin' is not a role") && role.contains("engine, collector, probe, manager, operator"),
        "{role}"
    );
    let ip = refused(&["issue", "--dir", d, "--role", "engine", "--host", "east-a", "--ip", "10.0.0.300"]);
    assert!(ip.contains("10.0.0.300") && ip.contains("--ip"), "{ip}");
    let validity = refused(&["issue", "--dir", d, "--role", "engine", "--host", "east-a", "--validity", "forever"]);
    assert!(validity.contains("'forever' is not a duration"), "{validity}");
    let short = refused(&["issue", "--dir", d, "--role", "engine", "--host", "east-a", "--validity", "10s"]);
    assert!(short.contains("too short"), "{short}");
    let outlives = refused(&["issue", "--dir", d, "--role", "engine", "--host", "east-a", "--validity", "3years"]);
    assert!(outlives.contains("outlive the CA"), "{outlives}");
    let host = refused(&["issue", "--dir", d, "--role", "engine", "--host", "../etc/passwd"]);
    assert!(host.contains("is not a host name"), "{host}");
    // Nothing was written by the refusals.
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["ca.crt", "ca.key"]);
    let missing = refused(&["show", tmp.path().join("nothing.crt").to_str().unwrap()]);
    assert!(missing.contains("nothing.crt"), "{missing}");
    let no_default = refused(&["show", "--dir", tmp.path().join("elsewhere").to_str().unwrap()]);
    assert!(no_default.contains("no CA certificate at") && no_default.contains("--dir"), "{no_default}");
    // Without files: the CA of --dir (and [tls] cert, not set here).
    let default = ok(&["show", "--dir", d]);
    assert!(default.contains("ca.crt (CA)"), "{default}");
}
