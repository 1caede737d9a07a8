//! Sessions on a real SQLite file: what a request reads, what it writes
//! back, and what the store keeps.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};

use super::*;
use crate::config::{AppConfig, DatasourceConfig, SessionsConfig};
use crate::db::Datasources;

fn store(dir: &tempfile::TempDir) -> Arc<Store> {
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let config = DatasourceConfig {
        url,
        ..DatasourceConfig::default()
    };
    let datasources = Datasources::from_config(&BTreeMap::from([("default".to_owned(), config)])).unwrap();
    Arc::new(Store::new(Arc::clone(datasources.get("default").unwrap())))
}

fn app(store: &Arc<Store>, name: &str, sessions: &SessionsConfig) -> AppSessions {
    let settings = Settings::of(sessions, &AppConfig::default());
    AppSessions::new(name.into(), &format!("/{name}"), Arc::clone(store), settings)
}

/// The request headers of a browser that got `set_cookie`.
fn sent_back(set_cookie: &HeaderValue) -> HeaderMap {
    let pair = set_cookie.to_str().unwrap().split(';').next().unwrap().to_owned();
    HeaderMap::from_iter([(COOKIE, HeaderValue::try_from(pair).unwrap())])
}

#[tokio::test]
async fn a_new_session_is_stored_only_once_written_and_found_by_its_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let guestbook = app(&store, "guestbook", &SessionsConfig::default());

    let untouched = guestbook.open(&HeaderMap::new()).await.unwrap();
    assert!(!untouched.needs_saving());
    assert_eq!(
        guestbook.save(&untouched, false).await.unwrap(),
        None,
        "no cookie for nothing"
    );

    let mut session = guestbook.open(&HeaderMap::new()).await.unwrap();
    session.set("name", br#""Ada""#).unwrap();
    let cookie = guestbook
        .save(&session, false)
        .await
        .unwrap()
        .expect("a new session sets its cookie");
    let text = cookie.to_str().unwrap();
    assert!(text.starts_with("CRABCAT_SESSION="), "{text}");
    assert!(text.ends_with("; Path=/guestbook; HttpOnly; SameSite=Lax"), "{text}");

    let again = guestbook.open(&sent_back(&cookie)).await.unwrap();
    assert_eq!(again.get("name"), Some(&br#""Ada""#[..]));
    assert!(!again.needs_saving(), "just written: no touch due");

    // Another app's cookie path is another app's session.
    let bank = app(&store, "bank", &SessionsConfig::default());
    assert_eq!(bank.open(&sent_back(&cookie)).await.unwrap().get("name"), None);
    assert_eq!(
        store.counts(now_millis()).await.unwrap(),
        BTreeMap::from([("guestbook".to_owned(), 1)])
    );
}

#[tokio::test]
async fn the_store_keeps_the_ids_hash_never_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let guestbook = app(&store, "guestbook", &SessionsConfig::default());
    let mut session = guestbook.open(&HeaderMap::new()).await.unwrap();
    session.set("k", b"1").unwrap();
    let cookie = guestbook.save(&session, false).await.unwrap().unwrap();
    let id = cookie.to_str().unwrap().split(['=', ';']).nth(1).unwrap().to_owned();
    let bytes = std::fs::read(dir.path().join("sessions.db")).unwrap();
    let file = String::from_utf8_lossy(&bytes);
    assert!(!file.contains(&id), "the id is in the database file");
    let wal = std::fs::read(dir.path().join("sessions.db-wal")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&wal).contains(&id), "the id is in the WAL");
    assert!(
        file.contains(&cookie::hash(&id)) || String::from_utf8_lossy(&wal).contains(&cookie::hash(&id)),
        "its hash is what is kept"
    );
}

#[tokio::test]
async fn renew_moves_the_attributes_to_a_new_id_and_the_old_one_is_dead() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let guestbook = app(&store, "guestbook", &SessionsConfig::default());
    let mut session = guestbook.open(&HeaderMap::new()).await.unwrap();
    session.set("user", br#""ada""#).unwrap();
    let first = guestbook.save(&session, false).await.unwrap().unwrap();

    let mut session = guestbook.open(&sent_back(&first)).await.unwrap();
    session.renew();
    session.set("role", br#""admin""#).unwrap();
    let second = guestbook
        .save(&session, true)
        .await
        .unwrap()
        .expect("a renewed session sets a new cookie");
    assert_ne!(first, second);
    assert!(second.to_str().unwrap().ends_with("; Secure"), "over TLS: Secure");

    let old = guestbook.open(&sent_back(&first)).await.unwrap();
    assert_eq!(old.get("user"), None, "the old id opens nothing");
    let new = guestbook.open(&sent_back(&second)).await.unwrap();
    assert_eq!(new.get("user"), Some(&br#""ada""#[..]));
    assert_eq!(new.get("role"), Some(&br#""admin""#[..]));
}

#[tokio::test]
async fn invalidate_deletes_and_clears_the_cookie_and_later_writes_start_anew() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let guestbook = app(&store, "guestbook", &SessionsConfig::default());
    let mut session = guestbook.open(&HeaderMap::new()).await.unwrap();
    session.set("user", br#""ada""#).unwrap();
    let cookie = guestbook.save(&session, false).await.unwrap().unwrap();

    let mut session = guestbook.open(&sent_back(&cookie)).await.unwrap();
    session.invalidate();
    assert_eq!(session.get("user"), None);
    let cleared = guestbook.save(&session, false).await.unwrap().unwrap();
    assert!(cleared.to_str().unwrap().ends_with("Max-Age=0"), "{cleared:?}");
    assert_eq!(guestbook.open(&sent_back(&cookie)).await.unwrap().get("user"), None);

    let mut session = guestbook.open(&sent_back(&cookie)).await.unwrap();
    session.invalidate();
    session.set("flash", br#""bye""#).unwrap();
    let fresh = guestbook.save(&session, false).await.unwrap().unwrap();
    assert_ne!(fresh, cookie);
    assert_eq!(
        guestbook.open(&sent_back(&fresh)).await.unwrap().get("flash"),
        Some(&br#""bye""#[..])
    );
}

#[tokio::test]
async fn a_session_past_its_idle_timeout_or_lifetime_is_gone_and_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let short = SessionsConfig {
        idle_timeout: Duration::from_millis(300),
        ..SessionsConfig::default()
    };
    let guestbook = app(&store, "guestbook", &short);
    let mut session = guestbook.open(&HeaderMap::new()).await.unwrap();
    session.set("k", b"1").unwrap();
    let cookie = guestbook.save(&session, false).await.unwrap().unwrap();
    assert_eq!(
        guestbook.open(&sent_back(&cookie)).await.unwrap().get("k"),
        Some(&b"1"[..])
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        guestbook.open(&sent_back(&cookie)).await.unwrap().get("k"),
        None,
        "idle too long"
    );

    let (swept, next) = store.sweep(now_millis()).await.unwrap();
    assert_eq!((swept, next), (1, None));

    let brief = SessionsConfig {
        max_lifetime: Duration::from_millis(300),
        ..SessionsConfig::default()
    };
    let guestbook = app(&store, "guestbook", &brief);
    let mut session = guestbook.open(&HeaderMap::new()).await.unwrap();
    session.set("k", b"1").unwrap();
    let cookie = guestbook.save(&session, false).await.unwrap().unwrap();
    let (swept, next) = store.sweep(now_millis()).await.unwrap();
    assert_eq!(swept, 0);
    assert!(
        next.is_some_and(|at| at <= now_millis() + 300),
        "expires with its lifetime"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        guestbook.open(&sent_back(&cookie)).await.unwrap().get("k"),
        None,
        "lived too long"
    );
}

#[tokio::test]
async fn concurrent_requests_of_one_session_each_keep_the_attributes_they_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let guestbook = Arc::new(app(&store, "guestbook", &SessionsConfig::default()));
    let mut session = guestbook.open(&HeaderMap::new()).await.unwrap();
    session.set("shared", b"0").unwrap();
    let cookie = guestbook.save(&session, false).await.unwrap().unwrap();

    // Every request opens the session before any saves, then writes its
    // own attribute and the shared one.
    let mut opened = Vec::new();
    for _ in 0..8 {
        opened.push(guestbook.open(&sent_back(&cookie)).await.unwrap());
    }
    let saves = opened.into_iter().enumerate().map(|(i, mut session)| {
        let guestbook = Arc::clone(&guestbook);
        tokio::spawn(async move {
            session.set(&format!("k{i}"), i.to_string().as_bytes()).unwrap();
            session.set("shared", i.to_string().as_bytes()).unwrap();
            guestbook.save(&session, false).await.unwrap()
        })
    });
    for save in saves.collect::<Vec<_>>() {
        assert_eq!(save.await.unwrap(), None, "no new cookie");
    }
    let merged = guestbook.open(&sent_back(&cookie)).await.unwrap();
    for i in 0..8 {
        assert_eq!(
            merged.get(&format!("k{i}")),
            Some(i.to_string().as_bytes()),
            "k{i} lost"
        );
    }
    let shared = merged.get("shared").unwrap();
    assert!(
        (0..8).any(|i| shared == i.to_string().as_bytes()),
        "one of the writes wins"
    );
}

#[test]
fn a_write_past_the_size_limit_is_refused_and_changes_nothing() {
    let mut session = Session::fresh(100);
    session.set("a", &[b'x'; 60]).unwrap();
    let error = session.set("b", &[b'x'; 60]).unwrap_err();
    assert_eq!((error.size, error.max), (122, 100));
    assert_eq!(session.get("b"), None);
    session.set("a", &[b'y'; 90]).unwrap();
    session.remove("a");
    session.set("b", &[b'x'; 90]).unwrap();
    assert!(session.needs_saving());
}
