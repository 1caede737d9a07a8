use super::*;

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM).
fn generated() -> (String, String) {
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    (pair.cert.pem(), pair.signing_key.serialize_pem())
}

fn files(dir: &Path, cert: &str, key: &str) -> TlsConfig {
    let config = TlsConfig {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&config.cert, cert).unwrap();
    std::fs::write(&config.key, key).unwrap();
    config
}

#[test]
fn a_certificate_and_its_key_load_with_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = generated();
    let tls = Tls::load(&files(dir.path(), &cert, &key)).expect("loads");
    let alpn = &tls.current.load().alpn_protocols;
    assert_eq!(alpn, &[b"h2".to_vec(), b"http/1.1".to_vec()]);
}

#[test]
fn one_file_may_hold_both() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = generated();
    let both = dir.path().join("both.pem");
    std::fs::write(&both, format!("{key}{cert}")).unwrap();
    let config = TlsConfig {
        cert: both.clone(),
        key: both,
    };
    Tls::load(&config).expect("loads");
}

#[test]
fn each_error_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = generated();
    let mut config = files(dir.path(), &cert, &key);
    config.key = dir.path().join("missing.pem");
    let error = Tls::load(&config).err().unwrap().to_string();
    assert!(
        error.starts_with("cannot read the TLS private key ") && error.contains("missing.pem"),
        "{error}"
    );

    let config = files(dir.path(), "not pem at all\n", &key);
    let error = Tls::load(&config).err().unwrap().to_string();
    assert!(error.contains("cert.pem holds no PEM certificate"), "{error}");

    let config = files(dir.path(), &cert, &cert);
    let error = Tls::load(&config).err().unwrap().to_string();
    assert!(error.contains("key.pem holds no PEM private key"), "{error}");

    let truncated = &cert[..cert.len() - 30];
    let config = files(dir.path(), truncated, &key);
    let error = Tls::load(&config).err().unwrap().to_string();
    assert!(error.contains("cert.pem is not valid PEM"), "{error}");
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = generated();
    let (_, other_key) = generated();
    let error = Tls::load(&files(dir.path(), &cert, &other_key)).err().unwrap();
    assert!(matches!(error, TlsError::Rejected { .. }), "{error}");
    let error = error.to_string();
    assert!(error.contains("cert.pem") && error.contains("key.pem"), "{error}");
}

#[test]
fn a_failed_reload_keeps_the_previous_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = generated();
    let config = files(dir.path(), &cert, &key);
    let tls = Tls::load(&config).unwrap();
    let before = Arc::clone(&tls.current.load());

    std::fs::write(&config.cert, "garbage").unwrap();
    assert!(!tls.reload());
    assert!(Arc::ptr_eq(&before, &tls.current.load()), "the old configuration stays");

    let (cert, key) = generated();
    files(dir.path(), &cert, &key);
    assert!(tls.reload());
    assert!(!Arc::ptr_eq(&before, &tls.current.load()), "swapped");
}

#[test]
fn the_fingerprint_is_openssls() {
    let der = CertificateDer::from(vec![1u8, 2, 3]);
    // printf '\x01\x02\x03' | sha256sum
    assert_eq!(
        fingerprint(&der),
        "03:90:58:C6:F2:C0:CB:49:2C:53:3B:0A:4D:14:EF:77:CC:0F:78:AB:CC:CE:D5:28:7D:84:A1:A2:01:1C:FB:81"
    );
}
