//! The local view's feed: every write script publishes the key it changed on
//! one channel; each instance subscribes on one node and drops what its view
//! kept of that key. A cluster carries each message to every node over its
//! bus, so one subscription hears every primary's writes, as long as the node
//! it is on still hears every primary.
//!
//! That is checked, not assumed: every second the feed publishes a beat of its
//! own on each primary, and the view answers only while the feed hears every
//! primary's beat. A node that stops hearing a primary (a partial partition),
//! a silent connection (pinged every second) or a primary that cannot be
//! reached takes the view down within `BEAT_MISSED`, and every check asks
//! Redis until the feed, on this node or the next, hears them all again.
//!
//! Staleness: a logout on one instance reaches the others one pub/sub
//! delivery later while the feed is up; when the feed's node stops hearing
//! the primary that took it, after at most `BEAT_MISSED` (3 s); and never
//! later than the view's `max_age`.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_core::Stream;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisResult};

use super::Announced;
use super::view::LocalView;

/// How often the feed beats and pings, and how long each may take.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a primary's beat may go unheard before the view steps aside.
const BEAT_MISSED: Duration = Duration::from_secs(3);

/// What a beat starts with: no key the store writes starts with a NUL.
const BEAT: &str = "\0authx-beat:";

/// Keeps `view` current from `channel` on any of `nodes`, until the view is
/// dropped. Messages name the changed key: `key_prefix` and the subject.
pub(super) fn spawn_feed(
    view: Weak<LocalView>,
    announced: Arc<Announced>,
    nodes: Vec<String>,
    channel: String,
    key_prefix: String,
) {
    tokio::spawn(async move {
        let mut failures = 0u32;
        for url in nodes.iter().cycle() {
            let opened = match Feed::open(url, &channel).await {
                Ok(mut feed) => Ok(feed
                    .hears_every_primary(&view, &key_prefix)
                    .await
                    .then_some(feed)),
                Err(e) => Err(e),
            };
            match opened {
                Ok(Some(mut feed)) => {
                    failures = 0;
                    let Some(strong) = view.upgrade() else { return };
                    strong.reset(true);
                    drop(strong);
                    // What was written while no feed listened was never
                    // announced: every open stream looks again.
                    announced.changes.announce_all();
                    tracing::info!(
                        "tower-authx: revocation feed up; answering from the local view"
                    );
                    let gone = feed.follow(&view, &announced, &key_prefix).await;
                    if let Some(strong) = view.upgrade() {
                        strong.reset(false);
                    }
                    if gone {
                        return;
                    }
                    tracing::warn!("tower-authx: revocation feed down; asking Redis directly");
                }
                Ok(None) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(
                            node = url.as_str(),
                            "tower-authx: revocation feed does not hear every primary; asking Redis directly"
                        );
                    }
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(error = %e, "tower-authx: revocation feed cannot subscribe; asking Redis directly");
                    }
                }
            }
            if view.strong_count() == 0 {
                return;
            }
            let backoff = Duration::from_millis(50 * u64::from(failures.min(20)));
            tokio::time::sleep(backoff).await;
        }
    });
}

/// A subscription on one node, and the primaries whose beats it must hear.
struct Feed {
    sink: PubSubSink,
    stream: PubSubStream,
    channel: String,
    /// This process's beats (others' are ignored).
    mine: String,
    primaries: Vec<Primary>,
}

/// A primary: where it is, a connection to beat on, when its beat was heard.
struct Primary {
    info: ConnectionInfo,
    connection: Option<MultiplexedConnection>,
    heard: Option<Instant>,
}

/// What one message on the channel is to the feed.
enum Message {
    /// A write changed this subject's key.
    Changed(String),
    /// A beat (ours or another instance's), counted.
    Beat,
    /// Anything else: it may have named anything.
    Unknown,
}

impl Feed {
    /// Subscribes on `url` and finds every primary (the node alone, or each
    /// primary of its cluster that serves slots).
    async fn open(url: &str, channel: &str) -> RedisResult<Feed> {
        let seed = url.into_connection_info()?;
        let client = redis::Client::open(seed.clone())?;
        let opened = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            let mut plain = client.get_multiplexed_async_connection().await?;
            let primaries = primaries(&seed, &mut plain).await?;
            RedisResult::Ok((pubsub.split(), primaries))
        };
        let ((sink, stream), primaries) = tokio::time::timeout(HEARTBEAT, opened)
            .await
            .map_err(|_| timed_out())??;
        Ok(Feed {
            sink,
            stream,
            channel: channel.to_owned(),
            mine: format!("{BEAT}{}:", uuid::Uuid::new_v4()),
            primaries: primaries
                .into_iter()
                .map(|info| Primary {
                    info,
                    connection: None,
                    heard: None,
                })
                .collect(),
        })
    }

    /// Beats on every primary, then waits (applying what comes meanwhile)
    /// until each beat is heard; `false` when one is not within `BEAT_MISSED`.
    async fn hears_every_primary(&mut self, view: &Weak<LocalView>, key_prefix: &str) -> bool {
        let started = Instant::now();
        self.beat().await;
        while !self.all_heard_since(started) {
            let left = BEAT_MISSED.saturating_sub(started.elapsed());
            if left.is_zero()
                || !self
                    .next(view, None, key_prefix, left)
                    .await
                    .unwrap_or(true)
            {
                return false;
            }
        }
        true
    }

    /// Applies messages until the feed ends, falls silent, or stops hearing a
    /// primary; `true` when the view itself is gone.
    async fn follow(
        &mut self,
        view: &Weak<LocalView>,
        announced: &Announced,
        key_prefix: &str,
    ) -> bool {
        let mut tick = Instant::now() + HEARTBEAT;
        loop {
            // The tick comes when due, however busy the channel: a steady
            // stream of writes must not keep the beats from being checked.
            let left = tick.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                match self.next(view, Some(announced), key_prefix, left).await {
                    Some(true) => continue,
                    Some(false) => return view.strong_count() == 0,
                    None => {}
                }
            }
            // A tick: every primary heard lately, the connection alive.
            if view.strong_count() == 0 {
                return true;
            }
            let since = Instant::now().checked_sub(BEAT_MISSED);
            if since.is_some_and(|since| !self.all_heard_since(since)) {
                return false;
            }
            self.beat().await;
            let pong = tokio::time::timeout(HEARTBEAT, self.sink.ping::<redis::Value>()).await;
            if !matches!(pong, Ok(Ok(_))) {
                return false;
            }
            tick = Instant::now() + HEARTBEAT;
        }
    }

    /// The next message within `wait`, applied: `Some(true)` to go on,
    /// `Some(false)` when the feed must be left, `None` when none came.
    async fn next(
        &mut self,
        view: &Weak<LocalView>,
        announced: Option<&Announced>,
        key_prefix: &str,
        wait: Duration,
    ) -> Option<bool> {
        let next = poll_fn(|cx| Pin::new(&mut self.stream).poll_next(cx));
        let message = tokio::time::timeout(wait, next).await.ok()?;
        let Some(message) = message else {
            return Some(false);
        };
        let Some(view) = view.upgrade() else {
            return Some(false);
        };
        let payload = message.get_payload::<String>().ok();
        Some(match self.read(payload.as_deref(), key_prefix) {
            Message::Changed(subject) => {
                view.invalidate(&subject);
                // Before the feed is up, the announcement of everything
                // covers this one.
                if let Some(announced) = announced {
                    announced.changes.announce(&subject);
                }
                true
            }
            Message::Beat => true,
            Message::Unknown => false,
        })
    }

    fn read(&mut self, payload: Option<&str>, key_prefix: &str) -> Message {
        let Some(payload) = payload else {
            return Message::Unknown;
        };
        if payload.starts_with(BEAT) {
            let ours = payload
                .strip_prefix(self.mine.as_str())
                .and_then(|index| index.parse::<usize>().ok());
            if let Some(primary) = ours.and_then(|i| self.primaries.get_mut(i)) {
                primary.heard = Some(Instant::now());
            }
            return Message::Beat;
        }
        match payload.strip_prefix(key_prefix) {
            Some(subject) => Message::Changed(subject.to_owned()),
            None => Message::Unknown,
        }
    }

    fn all_heard_since(&self, since: Instant) -> bool {
        self.primaries
            .iter()
            .all(|p| p.heard.is_some_and(|heard| heard >= since))
    }

    /// Publishes this process's beat on every primary (a primary that cannot
    /// be reached is simply not heard).
    async fn beat(&mut self) {
        for (index, primary) in self.primaries.iter_mut().enumerate() {
            let beat = format!("{}{index}", self.mine);
            let published = tokio::time::timeout(HEARTBEAT, async {
                if primary.connection.is_none() {
                    let client = redis::Client::open(primary.info.clone())?;
                    primary.connection = Some(client.get_multiplexed_async_connection().await?);
                }
                let Some(connection) = primary.connection.as_mut() else {
                    return Ok(());
                };
                redis::cmd("PUBLISH")
                    .arg(&self.channel)
                    .arg(&beat)
                    .query_async::<i64>(connection)
                    .await
                    .map(drop)
            })
            .await;
            if !matches!(published, Ok(Ok(()))) {
                primary.connection = None;
            }
        }
    }
}

/// Where each primary that serves slots is: the seed node alone, or, in a
/// cluster, every such primary its `CLUSTER NODES` names (with the seed's
/// credentials and TLS).
async fn primaries(
    seed: &ConnectionInfo,
    connection: &mut MultiplexedConnection,
) -> RedisResult<Vec<ConnectionInfo>> {
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(connection)
        .await?;
    if !info.lines().any(|line| line.trim() == "cluster_enabled:1") {
        return Ok(vec![seed.clone()]);
    }
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(connection)
        .await?;
    let mut found = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(address), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        let serves_slots = fields.len() > 8;
        let primary = flags.split(',').any(|f| f == "master")
            && !flags
                .split(',')
                .any(|f| matches!(f, "fail" | "fail?" | "noaddr" | "handshake"));
        let address = address.split(['@', ',']).next().unwrap_or_default();
        let Some((host, port)) = address.rsplit_once(':') else {
            continue;
        };
        if !primary || !serves_slots || host.is_empty() {
            continue;
        }
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.to_owned(), port),
        };
        found.push(seed.clone().set_addr(addr));
    }
    Ok(found)
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}
