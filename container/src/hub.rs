//! The pub/sub hub: topics that WebSocket connections subscribe to and that
//! an app publishes to (the "channel layer" of Django Channels).
//!
//! Topics belong to an app by name, not to an instance, so a reload keeps
//! them: the new instance publishes to the subscribers the old one made
//! until their connections close, and to its own. Publishing never waits:
//! each subscriber has a bounded queue, and one that falls behind is told
//! to go (its connection is closed with 1008) instead of silently missing
//! messages. In cluster mode every message is also relayed to the other
//! nodes (`cluster::bus`), which deliver it to their own subscribers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages a subscriber may have queued before it counts as too slow.
pub const SUBSCRIBER_QUEUE: usize = 256;

/// One published message, shared by every subscriber it reaches: a queue
/// slot is one pointer, and a delivery one reference count.
pub type HubMessage = Arc<Published>;

/// What was published, and where.
#[derive(Debug)]
pub struct Published {
    pub topic: Box<str>,
    pub payload: Bytes,
}

/// A subscriber: where its messages go, and how to tell it it fell behind.
#[derive(Debug, Clone)]
pub struct Subscriber {
    id: u64,
    queue: mpsc::Sender<HubMessage>,
    too_slow: CancellationToken,
}

impl Subscriber {
    /// A new subscriber, and the receiving end of its queue.
    pub fn new() -> (Subscriber, mpsc::Receiver<HubMessage>) {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let (queue, messages) = mpsc::channel(SUBSCRIBER_QUEUE);
        let subscriber = Subscriber {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            queue,
            too_slow: CancellationToken::new(),
        };
        (subscriber, messages)
    }

    /// A second queue for the same connection, with whom it shares the
    /// too-slow signal: either queue full marks both.
    pub fn sibling(&self) -> (Subscriber, mpsc::Receiver<HubMessage>) {
        let (mut sibling, messages) = Subscriber::new();
        sibling.too_slow = self.too_slow.clone();
        (sibling, messages)
    }

    /// Cancelled when a publish found this subscriber's queue full.
    pub fn too_slow(&self) -> &CancellationToken {
        &self.too_slow
    }
}

type Topics = HashMap<Arc<str>, Vec<Subscriber>>;

/// A message on its way to the other nodes of a cluster.
#[derive(Debug)]
pub struct Relayed {
    pub app: Box<str>,
    pub message: HubMessage,
}

/// Messages waiting for the cluster's bus before publishing drops them.
pub const RELAY_QUEUE: usize = 4096;

/// Every app's topics.
#[derive(Debug, Default)]
pub struct Hub {
    apps: Mutex<HashMap<Arc<str>, Topics>>,
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    relay: OnceLock<mpsc::Sender<Relayed>>,
    relay_dropped: AtomicU64,
}

/// What the hub has done, for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HubStats {
    pub published: u64,
    pub delivered: u64,
    /// Messages not delivered because the subscriber was too slow.
    pub dropped: u64,
    pub subscriptions: u64,
    /// Messages not relayed to the other nodes because the bus was behind.
    pub relay_dropped: u64,
}

impl Hub {
    /// The container's hub.
    pub fn global() -> &'static Hub {
        static HUB: LazyLock<Hub> = LazyLock::new(Hub::default);
        &HUB
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Topics>> {
        // Nothing here panics while holding the lock; if something did, the
        // map is still consistent (every change is one push or retain).
        self.apps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribes `subscriber` to `topic` of `app` (once, however often asked).
    pub fn subscribe(&self, app: &Arc<str>, topic: &str, subscriber: &Subscriber) {
        let mut apps = self.lock();
        let topics = apps.entry(Arc::clone(app)).or_default();
        let subscribers = topics.entry(Arc::from(topic)).or_default();
        if !subscribers.iter().any(|s| s.id == subscriber.id) {
            subscribers.push(subscriber.clone());
        }
    }

    /// Ends the subscription of `subscriber` to `topic` of `app`.
    pub fn unsubscribe(&self, app: &str, topic: &str, subscriber: &Subscriber) {
        let mut apps = self.lock();
        let Some(topics) = apps.get_mut(app) else { return };
        if let Some(subscribers) = topics.get_mut(topic) {
            subscribers.retain(|s| s.id != subscriber.id);
            if subscribers.is_empty() {
                topics.remove(topic);
            }
        }
    }

    /// From now on, relays every message published on this node to
    /// `relay` too (cluster mode). Returns false if a relay was already set.
    pub fn relay_to(&self, relay: mpsc::Sender<Relayed>) -> bool {
        self.relay.set(relay).is_ok()
    }

    /// Queues `payload` for every subscriber of `topic` of `app` on this
    /// node, and relays it to the other nodes in cluster mode; never waits.
    /// Returns how many local subscribers it was queued for.
    pub fn publish(&self, app: &str, topic: &str, payload: Bytes) -> u64 {
        self.published.fetch_add(1, Ordering::Relaxed);
        let message = Arc::new(Published {
            topic: Box::from(topic),
            payload,
        });
        let queued = self.deliver(app, &message);
        if let Some(relay) = self.relay.get() {
            let relayed = Relayed {
                app: Box::from(app),
                message,
            };
            if relay.try_send(relayed).is_err() {
                self.relay_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        queued
    }

    /// Queues a message another node published for this node's subscribers.
    pub fn deliver_relayed(&self, app: &str, topic: &str, payload: Bytes) -> u64 {
        let message = Arc::new(Published {
            topic: Box::from(topic),
            payload,
        });
        self.deliver(app, &message)
    }

    /// Queues `message` for every local subscriber of its topic of `app`.
    fn deliver(&self, app: &str, message: &HubMessage) -> u64 {
        let mut apps = self.lock();
        let Some(subscribers) = apps.get_mut(app).and_then(|topics| topics.get_mut(&*message.topic)) else {
            return 0;
        };
        let mut queued = 0;
        let mut dropped = 0;
        subscribers.retain(|s| match s.queue.try_send(Arc::clone(message)) {
            Ok(()) => {
                queued += 1;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped += 1;
                s.too_slow.cancel();
                true
            }
            // Its connection is gone: forget it.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        self.delivered.fetch_add(queued, Ordering::Relaxed);
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        queued
    }

    /// Counters, and subscriptions now.
    pub fn stats(&self) -> HubStats {
        let subscriptions = self
            .lock()
            .values()
            .flat_map(HashMap::values)
            .map(Vec::len)
            .sum::<usize>();
        HubStats {
            published: self.published.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            subscriptions: subscriptions as u64,
            relay_dropped: self.relay_dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publish_reaches_subscribers_of_the_topic_and_app_only() {
        let hub = Hub::default();
        let (app, other): (Arc<str>, Arc<str>) = ("chat".into(), "other".into());
        let (a, mut a_rx) = Subscriber::new();
        let (b, mut b_rx) = Subscriber::new();
        let (c, mut c_rx) = Subscriber::new();
        hub.subscribe(&app, "room:1", &a);
        hub.subscribe(&app, "room:1", &a);
        hub.subscribe(&app, "room:2", &b);
        hub.subscribe(&other, "room:1", &c);
        assert_eq!(hub.publish("chat", "room:1", Bytes::from_static(b"hi")), 1);
        let got = a_rx.recv().await.unwrap();
        assert_eq!((&*got.topic, &got.payload[..]), ("room:1", &b"hi"[..]));
        assert!(a_rx.try_recv().is_err(), "subscribed twice, delivered once");
        assert!(b_rx.try_recv().is_err());
        assert!(c_rx.try_recv().is_err());
        hub.unsubscribe("chat", "room:1", &a);
        assert_eq!(hub.publish("chat", "room:1", Bytes::new()), 0);
    }

    #[tokio::test]
    async fn a_full_queue_marks_the_subscriber_too_slow_and_a_closed_one_is_forgotten() {
        let hub = Hub::default();
        let app: Arc<str> = "chat".into();
        let (slow, _slow_rx) = Subscriber::new();
        let (gone, gone_rx) = Subscriber::new();
        hub.subscribe(&app, "t", &slow);
        hub.subscribe(&app, "t", &gone);
        drop(gone_rx);
        for _ in 0..SUBSCRIBER_QUEUE {
            assert_eq!(hub.publish("chat", "t", Bytes::new()), 1);
        }
        assert!(!slow.too_slow().is_cancelled());
        assert_eq!(hub.publish("chat", "t", Bytes::new()), 0);
        assert!(slow.too_slow().is_cancelled());
        let stats = hub.stats();
        assert_eq!((stats.dropped, stats.subscriptions), (1, 1));
    }

    #[tokio::test]
    async fn a_full_sibling_queue_marks_the_connection_too_slow() {
        let hub = Hub::default();
        let app: Arc<str> = "chat".into();
        let (module, _module_rx) = Subscriber::new();
        let (client, _client_rx) = module.sibling();
        hub.subscribe(&app, "t", &client);
        for _ in 0..=SUBSCRIBER_QUEUE {
            hub.publish("chat", "t", Bytes::new());
        }
        assert!(module.too_slow().is_cancelled(), "one signal for the connection");
    }

    #[tokio::test]
    async fn a_relay_gets_every_published_message_and_relayed_ones_stay_local() {
        let hub = Hub::default();
        let (relay, mut relayed) = mpsc::channel(1);
        assert!(hub.relay_to(relay.clone()));
        assert!(!hub.relay_to(relay), "one relay");
        let app: Arc<str> = "chat".into();
        let (local, mut local_rx) = Subscriber::new();
        hub.subscribe(&app, "t", &local);
        assert_eq!(hub.publish("chat", "nobody-here", Bytes::from_static(b"a")), 0);
        let got = relayed.try_recv().unwrap();
        assert_eq!(
            (&*got.app, &*got.message.topic, &got.message.payload[..]),
            ("chat", "nobody-here", &b"a"[..])
        );
        assert_eq!(hub.deliver_relayed("chat", "t", Bytes::from_static(b"b")), 1);
        assert_eq!(&local_rx.recv().await.unwrap().payload[..], b"b");
        assert!(relayed.try_recv().is_err(), "a relayed message is not relayed back");
        hub.publish("chat", "t", Bytes::new());
        hub.publish("chat", "t", Bytes::new());
        assert_eq!(hub.stats().relay_dropped, 1, "the relay's queue held one");
    }
}
