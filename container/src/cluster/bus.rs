//! The hub across nodes: every message published on this node is sent to
//! the others with `NOTIFY`, and every message another node sent is
//! delivered to this node's subscribers.
//!
//! A `NOTIFY` payload must be text shorter than 8,000 bytes. A message is
//! sent as a small JSON document: the payload as a string when it is UTF-8
//! (chat messages are JSON), base64 otherwise; one that does not fit is
//! stored in `crabcat_cluster_hub` and the notification carries its row id.
//! One task sends this node's messages in order, several per statement
//! under load; PostgreSQL delivers one session's notifications in commit
//! order, so every node sees a publisher's messages in the order it
//! published them.
//!
//! Delivery is at most once, as a channel layer's: a node whose connection
//! is lost misses what is published until it is back, and a message the
//! bus could not keep up with is counted (`relay_dropped`) and dropped.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use crate::hub::{Hub, RELAY_QUEUE, Relayed};

/// The `NOTIFY` channel hub messages travel on.
const CHANNEL: &str = "crabcat_hub";
/// The longest notification sent as is; PostgreSQL refuses 8,000 bytes.
const MAX_INLINE: usize = 7_900;
/// Messages sent in one statement at most.
const BATCH: usize = 64;
/// How long a stored large message is kept for the nodes to read it.
const KEEP_STORED: Duration = Duration::from_secs(60);
/// How long to wait before listening or sending again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// One hub message as it travels between nodes.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Wire {
    /// The sending process (so that it skips its own messages).
    node: String,
    /// The sender's sequence number: PostgreSQL folds identical
    /// notifications of one transaction into one, these never are.
    seq: u64,
    app: String,
    topic: String,
    /// The payload, when it is UTF-8 and the notification fits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// The payload in base64, when it is not UTF-8 and the notification fits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
    /// The row of `crabcat_cluster_hub` holding the payload otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stored: Option<i64>,
}

impl Wire {
    /// The message, its payload not set yet.
    fn new(node: &str, seq: u64, relayed: &Relayed) -> Wire {
        Wire {
            node: node.to_owned(),
            seq,
            app: relayed.app.to_string(),
            topic: relayed.message.topic.to_string(),
            text: None,
            base64: None,
            stored: None,
        }
    }

    /// The message with its payload inline, or `None` if it does not fit.
    fn inline(node: &str, seq: u64, relayed: &Relayed) -> Option<String> {
        let payload = &relayed.message.payload;
        let mut wire = Wire::new(node, seq, relayed);
        // Text travels as a JSON string (control characters escaped, so the
        // notification holds no NUL); other bytes as base64.
        match std::str::from_utf8(payload) {
            Ok(text) => wire.text = Some(text.to_owned()),
            Err(_) => wire.base64 = Some(BASE64.encode(payload)),
        }
        let json = serde_json::to_string(&wire).ok()?;
        (json.len() <= MAX_INLINE).then_some(json)
    }

    /// The message pointing at stored row `id`.
    fn stored(node: &str, seq: u64, relayed: &Relayed, id: i64) -> String {
        let wire = Wire {
            stored: Some(id),
            ..Wire::new(node, seq, relayed)
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }
}

/// Relays this node's hub to the other nodes and theirs to it, until
/// `shutdown`.
pub fn start(cluster: &Arc<Cluster>, shutdown: &CancellationToken) {
    let (relay, outgoing) = mpsc::channel(RELAY_QUEUE);
    if !Hub::global().relay_to(relay) {
        tracing::warn!("the hub is already relayed; not starting a second bus");
        return;
    }
    // The node's name and a number of this process's own: a restarted node
    // must not take the messages of its previous life for its own.
    let node = format!("{}/{:016x}", cluster.node, rand::random::<u64>());
    tokio::spawn(send(Arc::clone(cluster), node.clone(), outgoing, shutdown.clone()));
    tokio::spawn(receive(cluster.store.pool().clone(), node, shutdown.clone()));
}

/// Sends this node's messages, in order, until `shutdown`.
async fn send(cluster: Arc<Cluster>, node: String, mut outgoing: mpsc::Receiver<Relayed>, shutdown: CancellationToken) {
    let pool = cluster.store.pool();
    let mut seq = 0u64;
    let mut last_sweep = std::time::Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            got = outgoing.recv_many(&mut batch, BATCH) => if got == 0 { return },
            () = shutdown.cancelled() => return,
        }
        let mut notes = Vec::with_capacity(batch.len());
        for relayed in batch.drain(..) {
            seq += 1;
            match Wire::inline(&node, seq, &relayed) {
                Some(note) => notes.push(note),
                None => match store(&cluster, &relayed.message.payload).await {
                    Ok(id) => notes.push(Wire::stored(&node, seq, &relayed, id)),
                    Err(error) => {
                        tracing::warn!(%error, app = %relayed.app, "a large hub message could not be stored for the other nodes; dropped")
                    }
                },
            }
        }
        if last_sweep.elapsed() > KEEP_STORED {
            last_sweep = std::time::Instant::now();
            sweep(pool).await;
        }
        if let Err(error) = notify(pool, &notes).await {
            tracing::warn!(%error, messages = notes.len(), "hub messages could not be sent to the other nodes; dropped");
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// Sends `notes` as notifications, in order, in one statement.
async fn notify(pool: &PgPool, notes: &[String]) -> Result<(), sqlx::Error> {
    if notes.is_empty() {
        return Ok(());
    }
    // A function scan of `unnest` yields the array in order, and one
    // statement's notifications are delivered in the order they were made.
    sqlx::query("SELECT pg_notify($1, note) FROM unnest($2::text[]) AS note")
        .bind(CHANNEL)
        .bind(notes)
        .execute(pool)
        .await
        .map(drop)
}

/// Stores a payload too large for a notification; returns its row id.
async fn store(cluster: &Cluster, payload: &[u8]) -> Result<i64, sqlx::Error> {
    cluster.store.ready().await?; // the table exists
    sqlx::query_scalar("INSERT INTO crabcat_cluster_hub (payload, created_at) VALUES ($1, $2) RETURNING id")
        .bind(payload)
        .bind(super::store::now_millis())
        .fetch_one(cluster.store.pool())
        .await
}

/// Deletes stored messages every node has had time to read.
async fn sweep(pool: &PgPool) {
    let before = super::store::now_millis() - i64::try_from(KEEP_STORED.as_millis()).unwrap_or(i64::MAX);
    let deleted = sqlx::query("DELETE FROM crabcat_cluster_hub WHERE created_at < $1")
        .bind(before)
        .execute(pool)
        .await;
    if let Err(error) = deleted {
        tracing::warn!(%error, "could not delete old large hub messages");
    }
}

/// Delivers the other nodes' messages to this node's subscribers, until
/// `shutdown`; listens again after a lost connection.
async fn receive(pool: PgPool, node: String, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = listen(&pool, &node) => {}
            () = shutdown.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// One connection's worth of listening; returns when it is lost.
async fn listen(pool: &PgPool, node: &str) {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "cannot listen to the other nodes' hub messages; retrying");
            return;
        }
    };
    if let Err(error) = listener.listen(CHANNEL).await {
        tracing::warn!(%error, "cannot listen to the other nodes' hub messages; retrying");
        return;
    }
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => deliver(pool, node, notification.payload()).await,
            Ok(None) => {
                tracing::warn!(
                    "lost the connection for the other nodes' hub messages; messages are missed until it is back"
                );
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "listening to the other nodes' hub messages failed; retrying");
                return;
            }
        }
    }
}

/// Delivers one notification, unless this node sent it.
async fn deliver(pool: &PgPool, node: &str, note: &str) {
    let wire: Wire = match serde_json::from_str(note) {
        Ok(wire) => wire,
        Err(error) => {
            tracing::warn!(%error, "a hub message from another node is not understood; dropped");
            return;
        }
    };
    if wire.node == node {
        return;
    }
    let payload = match (wire.text, wire.base64, wire.stored) {
        (Some(text), _, _) => Bytes::from(text),
        (None, Some(encoded), _) => match BASE64.decode(encoded) {
            Ok(bytes) => Bytes::from(bytes),
            Err(error) => return tracing::warn!(%error, "a hub message from another node is not base64; dropped"),
        },
        (None, None, Some(id)) => match stored(pool, id).await {
            Ok(Some(bytes)) => Bytes::from(bytes),
            Ok(None) => return tracing::warn!(id, "a large hub message was deleted before this node read it; dropped"),
            Err(error) => return tracing::warn!(%error, "a large hub message could not be read; dropped"),
        },
        (None, None, None) => Bytes::new(),
    };
    Hub::global().deliver_relayed(&wire.app, &wire.topic, payload);
}

/// The payload stored in row `id`.
async fn stored(pool: &PgPool, id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT payload FROM crabcat_cluster_hub WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Published;

    fn relayed(payload: &'static [u8]) -> Relayed {
        Relayed {
            app: "chat".into(),
            message: Arc::new(Published {
                topic: "room:lobby".into(),
                payload: Bytes::from_static(payload),
            }),
        }
    }

    #[test]
    fn text_travels_as_text_and_bytes_as_base64() {
        let note = Wire::inline("n1", 7, &relayed(br#"{"say":"hi"}"#)).unwrap();
        let wire: Wire = serde_json::from_str(&note).unwrap();
        assert_eq!(
            (wire.text.as_deref(), wire.base64, wire.seq),
            (Some(r#"{"say":"hi"}"#), None, 7)
        );
        let note = Wire::inline("n1", 8, &relayed(b"a\0b")).unwrap();
        assert!(!note.contains('\0'), "a notification cannot carry NUL");
        let wire: Wire = serde_json::from_str(&note).unwrap();
        assert_eq!(wire.text.as_deref(), Some("a\0b"));
        let note = Wire::inline("n1", 9, &relayed(b"\0\xff")).unwrap();
        let wire: Wire = serde_json::from_str(&note).unwrap();
        assert_eq!((wire.text, wire.base64.as_deref()), (None, Some("AP8=")));
    }

    #[test]
    fn a_message_too_large_for_a_notification_is_not_inlined() {
        let big: &'static [u8] = Box::leak(vec![b'x'; MAX_INLINE].into_boxed_slice());
        assert!(Wire::inline("n1", 1, &relayed(big)).is_none());
        let note = Wire::stored("n1", 1, &relayed(big), 42);
        assert!(note.len() < 200);
        let wire: Wire = serde_json::from_str(&note).unwrap();
        assert_eq!((wire.stored, wire.text), (Some(42), None));
    }
}
