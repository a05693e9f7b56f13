//! The way to Redis: one node (a self-reconnecting multiplexed connection) or
//! a cluster (the `redis` crate's cluster client, which follows slots and
//! failovers), chosen by the URL; and the check that Redis will never evict
//! what we keep (on every primary of a cluster).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisFuture, Value};
use tokio::sync::OnceCell;

use crate::error::with_causes;
use crate::store::StoreError;

/// Where commands go.
#[derive(Clone)]
pub(super) enum Link {
    /// A connection, and what opened it (for a twin).
    Node(
        ConnectionManager,
        Arc<(redis::Client, ConnectionManagerConfig)>,
    ),
    /// Connected on first use (Redis may be down when the service starts).
    Cluster(Arc<(ClusterClient, OnceCell<ClusterConnection>)>),
}

/// A connection ready for one command.
#[derive(Clone)]
pub(super) enum Conn {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Link {
    /// `url`, or several comma-separated node URLs: a cluster.
    pub(super) fn open(url: &str, timeout: Duration) -> Result<Link, StoreError> {
        let nodes: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        if nodes.len() > 1 {
            return Link::cluster(nodes, timeout);
        }
        let client = redis::Client::open(url).map_err(|e| StoreError::new(with_causes(&e)))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        Link::node(Arc::new((client, config)))
    }

    fn node(opener: Arc<(redis::Client, ConnectionManagerConfig)>) -> Result<Link, StoreError> {
        ConnectionManager::new_lazy_with_config(opener.0.clone(), opener.1.clone())
            .map(|manager| Link::Node(manager, opener))
            .map_err(|e| StoreError::new(with_causes(&e)))
    }

    /// Another link to the same Redis, on connections of its own: `WAIT`
    /// blocks the connection it is sent on, and the reads multiplexed there
    /// with it, until the replicas answer or the timeout passes.
    pub(super) fn twin(&self) -> Result<Link, StoreError> {
        match self {
            Link::Node(_, opener) => Link::node(opener.clone()),
            Link::Cluster(cluster) => Ok(Link::Cluster(Arc::new((
                cluster.0.clone(),
                OnceCell::new(),
            )))),
        }
    }

    /// A cluster reached through any of `nodes`.
    pub(super) fn cluster<'a>(
        nodes: impl IntoIterator<Item = &'a str>,
        timeout: Duration,
    ) -> Result<Link, StoreError> {
        let client = ClusterClient::builder(nodes)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(2)
            .min_retry_wait(50)
            .max_retry_wait(500)
            .build()
            .map_err(|e| StoreError::new(with_causes(&e)))?;
        Ok(Link::Cluster(Arc::new((client, OnceCell::new()))))
    }

    /// Whether the node behind this link has cluster mode on.
    pub(super) async fn is_cluster_node(&self) -> Result<bool, StoreError> {
        let mut conn = self.conn().await.map_err(super::store_error)?;
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut conn)
            .await
            .map_err(super::store_error)?;
        Ok(info.lines().any(|line| line.trim() == "cluster_enabled:1"))
    }

    pub(super) async fn conn(&self) -> redis::RedisResult<Conn> {
        match self {
            Link::Node(connection, _) => Ok(Conn::Node(connection.clone())),
            Link::Cluster(cluster) => cluster
                .1
                .get_or_try_init(|| cluster.0.get_async_connection())
                .await
                .cloned()
                .map(Conn::Cluster),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The text of each node's answer to an `INFO`: one node answers a string; a
/// cluster, one per primary, however the client nests them.
pub(super) fn info_texts(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_texts(value, &mut out);
    out
}

fn collect_texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::BulkString(bytes) => out.push(String::from_utf8_lossy(bytes).into_owned()),
        Value::VerbatimString { text, .. } | Value::SimpleString(text) => out.push(text.clone()),
        Value::Array(items) | Value::Set(items) => {
            items.iter().for_each(|item| collect_texts(item, out))
        }
        Value::Map(pairs) => pairs.iter().for_each(|(_, item)| collect_texts(item, out)),
        _ => {}
    }
}

/// How many replicas each primary has connected now (`INFO replication`).
pub(super) async fn replicas_per_primary(link: &Link) -> Result<Vec<u64>, StoreError> {
    let mut conn = link.conn().await.map_err(super::store_error)?;
    let info: Value = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await
        .map_err(super::store_error)?;
    Ok(info_texts(&info)
        .iter()
        .filter(|text| text.lines().any(|line| line.trim() == "role:master"))
        .map(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("connected_slaves:"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0)
        })
        .collect())
}
