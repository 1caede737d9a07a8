use super::validate::is_valid_context_path;
use super::*;

#[test]
fn example_file_matches_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crabcat.example.toml");
    let text = std::fs::read_to_string(&path).expect("crabcat.example.toml at the repository root");
    let parsed: Config = toml::from_str(&text).expect("the example parses");
    assert_eq!(
        parsed,
        Config::default(),
        "crabcat.example.toml drifted from the defaults"
    );
}

/// The commented `[server.tls]` example, uncommented, is valid.
#[test]
fn the_example_tls_section_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crabcat.example.toml");
    let text = std::fs::read_to_string(&path).expect("crabcat.example.toml at the repository root");
    let section: String = text
        .lines()
        .skip_while(|line| *line != "# [server.tls]")
        .take_while(|line| line.starts_with("# "))
        .map(|line| format!("{}\n", &line[2..]))
        .collect();
    let parsed: Config = toml::from_str(&section).expect("the example [server.tls] parses");
    parsed.validate().expect("valid");
    let tls = parsed.server.tls.expect("a [server.tls] section");
    assert_eq!(tls.cert, Path::new("/etc/crabcat/fullchain.pem"));
    assert_eq!(tls.key, Path::new("/etc/crabcat/privkey.pem"));
}

#[test]
fn a_tls_section_needs_both_files() {
    let err = toml::from_str::<Config>("[server.tls]\ncert = \"c.pem\"\n").unwrap_err();
    assert!(err.to_string().contains("missing field `key`"), "{err}");
}

#[test]
fn context_paths_are_one_segment() {
    for ok in ["/", "/hello", "/a-b_c.d"] {
        assert!(is_valid_context_path(ok), "{ok}");
    }
    for bad in ["", "hello", "/a/b", "/a b", "/é", "/.", "/.."] {
        assert!(!is_valid_context_path(bad), "{bad}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

    /// Any text, and any mix of known sections, keys and value shapes:
    /// a configuration or an error naming the problem, never a panic.
    #[test]
    fn config_parsing_never_panics(
        text in ".{0,200}",
        lines in proptest::collection::vec(
            (
                proptest::sample::select(vec!["server", "server.tls", "deploy", "admin", "log", "apps.x", "datasources.y"]),
                proptest::sample::select(vec![
                    "listen", "request_timeout", "max_body_bytes", "max_connections", "header_read_timeout",
                    "max_requests_per_connection",
                    "max_header_bytes", "max_uri_bytes", "access_log_format", "dir", "watch", "token",
                    "context_path", "datasources", "url", "max_connections", "max_blocking", "filter", "stall_timeout",
                    "worker_threads", "cert", "key",
                ]),
                proptest::sample::select(vec![
                    "0", "-1", "18446744073709551616", "\"\"", "\"/\"", "\"1s\"", "\"forever\"", "true",
                    "[]", "[\"nope\"]", "{}", "\"sqlite://x\"", "\"mysql://x\"", "\"127.0.0.1:0\"", "1.5",
                ]),
            ),
            0..8,
        ),
    ) {
        let _ = toml::from_str::<Config>(&text).map(|c| c.validate());
        let doc: String = lines.iter().map(|(section, key, value)| format!("[{section}]\n{key} = {value}\n")).collect();
        let _ = toml::from_str::<Config>(&doc).map(|c| c.validate());
    }
}

#[test]
fn unknown_keys_are_rejected() {
    let err = toml::from_str::<Config>("[server]\nlisten_addr = \"127.0.0.1:1\"\n").unwrap_err();
    assert!(err.to_string().contains("listen_addr"), "{err}");
}

#[test]
fn an_app_has_at_most_256_threads_of_its_own() {
    let config = |threads: usize| {
        let mut config = Config::default();
        config.datasources.entry("default".to_owned()).or_default();
        let app = crate::config::AppConfig {
            worker_threads: threads,
            ..Default::default()
        };
        config.apps.insert("x".into(), app);
        config
    };
    assert!(config(256).validate().is_ok());
    let err = config(257).validate().unwrap_err();
    assert!(err.to_string().contains("apps.x.worker_threads"), "{err}");
}

/// The commented `[static."/"]` example, uncommented, is valid.
#[test]
fn the_example_static_section_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crabcat.example.toml");
    let text = std::fs::read_to_string(&path).expect("crabcat.example.toml at the repository root");
    let section: String = text
        .lines()
        .skip_while(|line| *line != "# [static.\"/\"]")
        .take_while(|line| line.starts_with("# "))
        .map(|line| format!("{}\n", &line[2..]))
        .collect();
    let parsed: Config = toml::from_str(&section).expect("the example [static.\"/\"] parses");
    parsed.validate().expect("valid");
    assert_eq!(parsed.statics["/"].dir, Path::new("public"));
    assert_eq!(parsed.statics["/"].cache_control, DEFAULT_STATIC_CACHE_CONTROL);
}

#[test]
fn static_prefixes_are_checked() {
    use super::validate::is_valid_static_prefix;
    for ok in ["/", "/docs", "/a/b.c/d-e_f~"] {
        assert!(is_valid_static_prefix(ok), "{ok}");
    }
    for bad in ["", "docs", "/docs/", "//", "/a//b", "/..", "/a/./b", "/a b", "/é"] {
        assert!(!is_valid_static_prefix(bad), "{bad}");
    }
}

#[test]
fn a_mount_cannot_take_a_configured_apps_context_path() {
    let text = "[apps.hello]\n\n[apps.probe]\ncontext_path = \"/p\"\n\n[static.\"/p\"]\ndir = \"x\"\n";
    let mut config: Config = toml::from_str(text).unwrap();
    config.datasources.entry("default".to_owned()).or_default();
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("static.\"/p\"") && err.contains("app probe"), "{err}");
    config.statics = toml::from_str("[\"/hello\"]\ndir = \"x\"\n").unwrap();
    assert!(config.validate().unwrap_err().to_string().contains("app hello"));
    config.statics = toml::from_str("[\"/hello/x\"]\ndir = \"x\"\n").unwrap();
    config.validate().expect("a longer prefix is fine");
}

#[test]
fn relative_static_dirs_follow_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crabcat.toml");
    let text = "[apps.a]\nstatic_dir = \"a-files\"\n\n[static.\"/\"]\ndir = \"public\"\n\n[static.\"/Abs\"]\ndir = \"/srv/x\"\n";
    std::fs::write(&file, text).unwrap();
    let config = Config::load(Some(&file), &Overrides::default()).unwrap();
    assert_eq!(
        config.apps["a"].static_dir.as_deref(),
        Some(dir.path().join("a-files").as_path())
    );
    assert_eq!(config.statics["/"].dir, dir.path().join("public"));
    assert_eq!(config.statics["/Abs"].dir, Path::new("/srv/x"));
}

#[test]
fn datasource_urls_name_a_supported_backend() {
    let config = |url: &str| {
        let mut config = Config::default();
        let datasource = DatasourceConfig {
            url: url.to_owned(),
            ..Default::default()
        };
        config.datasources.insert("default".into(), datasource);
        config
    };
    for ok in [
        "sqlite://data/x.db",
        "postgres://u@h/db",
        "postgresql://u@h/db",
        "mysql://root@127.0.0.1:3306/test",
        "mariadb://root@127.0.0.1/test",
    ] {
        assert!(config(ok).validate().is_ok(), "{ok}");
    }
    let err = config("oracle://u@h/db").validate().unwrap_err().to_string();
    assert!(
        err.contains("datasources.default.url") && err.contains("mysql://"),
        "{err}"
    );
}

#[test]
fn the_manager_user_and_password_are_checked() {
    let check = |toml: &str| {
        let config: Config = toml::from_str(toml).expect("parses");
        config.validate().map_err(|e| e.to_string())
    };
    assert!(check("[admin.manager]\nuser = \"deployer\"\n").is_ok());
    assert!(check("[admin.manager]\nuser = \"deployer\"\npassword = \"0123456789abcdef\"\n").is_ok());
    let err = check("[admin.manager]\nuser = \"a:b\"\n").unwrap_err();
    assert!(err.contains("admin.manager.user"), "{err}");
    let err = check("[admin.manager]\nuser = \"\"\n").unwrap_err();
    assert!(err.contains("admin.manager.user"), "{err}");
    let err = check("[admin.manager]\nuser = \"u\"\npassword = \"short\"\n").unwrap_err();
    assert!(err.contains("admin.manager.password") && err.contains("16"), "{err}");
    let both = "[admin.manager]\nuser = \"u\"\npassword = \"0123456789abcdef\"\npassword_file = \"p\"\n";
    assert!(check(both).unwrap_err().contains("not both"));
    let err = toml::from_str::<Config>("[admin.manager]\nusr = \"u\"\n").unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[test]
fn root_is_mounted_at_the_root() {
    let config = Config::default();
    assert_eq!(config.context_path("ROOT"), "/");
    assert_eq!(config.context_path("shop"), "/shop");
    let config: Config = toml::from_str("[apps.ROOT]\ncontext_path = \"/legacy\"\n").unwrap();
    assert_eq!(config.context_path("ROOT"), "/legacy");
}

/// The commented `[admin.manager]` keys, uncommented (one password source),
/// are valid.
#[test]
fn the_example_manager_section_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crabcat.example.toml");
    let text = std::fs::read_to_string(&path).expect("crabcat.example.toml at the repository root");
    let keys: String = text
        .lines()
        .skip_while(|line| *line != "[admin.manager]")
        .skip(1)
        .take_while(|line| line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| line.starts_with("user =") || line.starts_with("password ="))
        .map(|line| format!("{line}\n"))
        .collect();
    let parsed: Config = toml::from_str(&format!("[admin.manager]\n{keys}")).expect("parses");
    parsed.validate().expect("valid");
    assert_eq!(parsed.admin.manager.user.as_deref(), Some("deployer"));
    assert!(parsed.admin.manager.password.is_some());
}
