use super::*;

fn key(n: u8) -> SigningKey {
    signing_key_from_seed([n; 32])
}

fn trusted() -> TrustedKeys {
    TrustedKeys::new([key(1).verifying_key()])
}

fn spec(app: AppType) -> BundleSpec {
    BundleSpec {
        application: app,
        version: Release::new("0.2.0").unwrap(),
        upgrades_from: vec![ReleasePattern::new("0.1.x").unwrap()],
        description: "tollgate 0.2.0".into(),
        max_policy_schema: Some(3),
    }
}

fn payload() -> Vec<BundleFile> {
    vec![
        BundleFile { path: "tollgate".into(), data: b"\x7fELF pretend binary".to_vec(), executable: true },
        BundleFile { path: "share/README".into(), data: b"read me".to_vec(), executable: false },
    ]
}

fn good() -> Vec<u8> {
    build(&spec(AppType::Engine), &payload(), &key(1)).unwrap()
}

/// Rebuilds `archive` with `edit` applied to its (path, contents) list, keeping the signature.
fn repack(archive: &[u8], edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> Vec<u8> {
    let entries = archive::read(archive, &VerifyLimits::default()).unwrap();
    let mut list: Vec<(String, Vec<u8>)> = entries.into_iter().map(|e| (e.path, e.data)).collect();
    edit(&mut list);
    let refs: Vec<(String, &[u8], u32)> = list.iter().map(|(p, d)| (p.clone(), d.as_slice(), 0o644)).collect();
    archive::write(&refs).unwrap()
}

fn v(s: &str) -> Release {
    Release::new(s).unwrap()
}

#[test]
fn a_good_bundle_verifies() {
    let b = verify(&good(), &trusted()).unwrap();
    assert_eq!(b.manifest.application, AppType::Engine);
    assert_eq!(b.manifest.version.as_str(), "0.2.0");
    assert_eq!(b.manifest.max_policy_schema, Some(3));
    assert_eq!(b.file("tollgate").unwrap().data, b"\x7fELF pretend binary");
    assert!(b.file("tollgate").unwrap().executable);
    assert_eq!(b.signer, key(1).verifying_key());
    b.check_applies_to(AppType::Engine, &v("0.1.7")).unwrap();
    assert_eq!(good(), good(), "builds are reproducible");
    verify_for(&good(), &trusted(), AppType::Engine, &v("0.1.0")).unwrap();
}

#[test]
fn a_tampered_payload_is_refused_with_bad_checksum() {
    let tampered = repack(&good(), |files| {
        let bin = files.iter_mut().find(|(p, _)| p == "payload/tollgate").unwrap();
        bin.1 = b"\x7fELF evil binary!!!".to_vec(); // same length
    });
    let err = verify(&tampered, &trusted()).unwrap_err();
    assert!(matches!(err, BundleError::ChecksumMismatch { ref path, .. } if path == "tollgate"), "{err}");
    assert!(err.to_string().starts_with("bad checksum: payload file \"tollgate\""), "{err}");

    let longer = repack(&good(), |files| files.iter_mut().find(|(p, _)| p == "payload/tollgate").unwrap().1.push(0));
    assert!(matches!(verify(&longer, &trusted()).unwrap_err(), BundleError::SizeMismatch { .. }));

    let extra = repack(&good(), |files| files.push(("payload/backdoor".into(), b"x".to_vec())));
    let err = verify(&extra, &trusted()).unwrap_err();
    assert!(err.to_string().contains("\"payload/backdoor\" is in the archive but not listed"), "{err}");

    let missing = repack(&good(), |files| files.retain(|(p, _)| p != "payload/share/README"));
    assert!(matches!(verify(&missing, &trusted()).unwrap_err(), BundleError::MissingPayload(p) if p == "share/README"));
}

#[test]
fn a_tampered_manifest_is_refused_with_bad_signature() {
    let tampered = repack(&good(), |files| {
        let m = files.iter_mut().find(|(p, _)| p == MANIFEST_FILE).unwrap();
        let text = String::from_utf8(m.1.clone()).unwrap().replace("0.1.x", "*");
        m.1 = text.into_bytes();
    });
    let err = verify(&tampered, &trusted()).unwrap_err();
    assert!(matches!(err, BundleError::BadSignature { .. }), "{err}");
    assert!(err.to_string().starts_with("bad signature: manifest.toml does not match"), "{err}");

    let unsigned = repack(&good(), |files| files.retain(|(p, _)| p != SIGNATURE_FILE));
    assert!(matches!(verify(&unsigned, &trusted()).unwrap_err(), BundleError::MissingSignature));
    let garbled = repack(&good(), |files| {
        files.iter_mut().find(|(p, _)| p == SIGNATURE_FILE).unwrap().1 = b"rsa 00 11".to_vec();
    });
    assert!(matches!(verify(&garbled, &trusted()).unwrap_err(), BundleError::MalformedSignature(_)));
    let no_manifest = repack(&good(), |files| files.retain(|(p, _)| p != MANIFEST_FILE));
    assert!(matches!(verify(&no_manifest, &trusted()).unwrap_err(), BundleError::MissingManifest));
}

#[test]
fn a_bundle_signed_by_an_unknown_key_is_refused() {
    let foreign = build(&spec(AppType::Engine), &payload(), &key(2)).unwrap();
    let err = verify(&foreign, &trusted()).unwrap_err();
    assert!(
        matches!(err, BundleError::UnknownSigner { ref key } if *key == public_key_hex(&super::tests::key(2).verifying_key()))
    );
    assert!(err.to_string().contains("signed by an unknown key"), "{err}");
    assert!(matches!(verify(&good(), &TrustedKeys::default()).unwrap_err(), BundleError::UnknownSigner { .. }));

    // A trusted key's name on another key's signature is a bad signature, not a pass.
    let forged = repack(&foreign, |files| {
        let sig = files.iter_mut().find(|(p, _)| p == SIGNATURE_FILE).unwrap();
        let text = String::from_utf8(sig.1.clone()).unwrap();
        let other = public_key_hex(&key(2).verifying_key());
        sig.1 = text.replace(&other, &public_key_hex(&key(1).verifying_key())).into_bytes();
    });
    assert!(matches!(verify(&forged, &trusted()).unwrap_err(), BundleError::BadSignature { .. }));
}

#[test]
fn a_bundle_of_the_wrong_type_or_path_is_refused() {
    let probe = build(&spec(AppType::Probe), &payload(), &key(1)).unwrap();
    let err = verify_for(&probe, &trusted(), AppType::Engine, &v("0.1.0")).unwrap_err();
    assert!(matches!(err, BundleError::WrongApplication { bundle: AppType::Probe, server: AppType::Engine }));
    assert_eq!(err.to_string(), "wrong application type: the bundle is for probe, the server runs engine");

    let err = verify_for(&good(), &trusted(), AppType::Engine, &v("0.0.9")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not an upgrade from the running release: 0.2.0 upgrades from [0.1.x], the server runs 0.0.9"
    );
    assert!(matches!(
        verify_for(&good(), &trusted(), AppType::Engine, &v("0.2.0")).unwrap_err(),
        BundleError::NotAnUpgradeFrom { .. }
    ));
}

#[test]
fn build_refuses_bad_payloads_and_keys_parse() {
    let bad = [BundleFile { path: "../tollgate".into(), data: vec![], executable: false }];
    assert!(matches!(build(&spec(AppType::Engine), &bad, &key(1)), Err(BundleError::InvalidSpec(_))));
    assert!(matches!(build(&spec(AppType::Engine), &[], &key(1)), Err(BundleError::InvalidSpec(_))));
    let hex_key = public_key_hex(&key(1).verifying_key());
    assert_eq!(TrustedKeys::from_hex([hex_key.as_str()]).unwrap(), trusted());
    assert!(TrustedKeys::from_hex(["abcd"]).is_err());
    assert_eq!(parse_signing_key(&hex::encode([1u8; 32])).unwrap().verifying_key(), key(1).verifying_key());
    assert!(verify(b"", &trusted()).is_err());
    assert!(verify(b"definitely not a tar archive, just some bytes ..........", &trusted()).is_err());
}

#[test]
fn files_build_verify_preflight_and_extract() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("upgrade");
    fs_create(&staging);
    let trusted = trusted();
    let target = v("0.2.0");
    let running = v("0.1.2");

    let err = preflight_dir(&staging, AppType::Engine, &running, Some(&target), &trusted).unwrap_err();
    assert!(matches!(err, PreflightError::NothingStaged), "{err}");

    let path = staging.join("engine-0.2.0.tgb");
    build_file(&path, &spec(AppType::Engine), &payload(), &key(1)).unwrap();
    std::fs::write(staging.join(".probe.tgb.part"), b"in transfer").unwrap();
    assert_eq!(staged_files(&staging).unwrap(), vec![path.clone()]);
    let b = preflight_dir(&staging, AppType::Engine, &running, Some(&target), &trusted).unwrap();
    assert_eq!(b.manifest.version, target);

    let err = preflight_dir(&staging, AppType::Manager, &running, Some(&target), &trusted).unwrap_err();
    assert!(matches!(err, PreflightError::WrongApplication { .. }), "{err}");
    let err = preflight_dir(&staging, AppType::Engine, &v("0.0.1"), Some(&target), &trusted).unwrap_err();
    assert!(err.to_string().contains("not an upgrade from the running release"), "{err}");
    let err = preflight_dir(&staging, AppType::Engine, &running, Some(&v("0.3.0")), &trusted).unwrap_err();
    assert!(matches!(err, PreflightError::WrongRelease { .. }), "{err}");
    let err = preflight_dir(&staging, AppType::Engine, &running, Some(&target), &TrustedKeys::default()).unwrap_err();
    assert!(err.to_string().contains("signed by an unknown key"), "{err}");

    std::fs::write(staging.join("second.tgb"), b"x").unwrap();
    let err = preflight_dir(&staging, AppType::Engine, &running, Some(&target), &trusted).unwrap_err();
    assert!(err.to_string().contains("2 release bundles are staged (engine-0.2.0.tgb, second.tgb)"), "{err}");

    let install = dir.path().join("releases/0.2.0");
    b.extract_to(&install).unwrap();
    assert_eq!(std::fs::read(install.join("share/README")).unwrap(), b"read me");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(install.join("tollgate")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }
    let tight = VerifyLimits { max_archive_bytes: 16, ..VerifyLimits::default() };
    assert!(matches!(verify_file(&path, &trusted, &tight), Err(BundleError::TooLarge { .. })));
    assert!(matches!(verify_file(&dir.path().join("nope"), &trusted, &tight), Err(BundleError::Io { .. })));
}

fn fs_create(p: &std::path::Path) {
    std::fs::create_dir_all(p).unwrap();
}
