//! What the store sends Redis: a plain command, a write script (with its
//! `WAIT` in one pipeline when writes wait for replicas), or a script that
//! never waits.

use std::time::Duration;

use redis::{ErrorKind, ServerErrorKind};

use super::link::{Conn, info_texts};

/// What a write waits for: `wanted` replicas of the node that took it, for
/// at most `timeout`; `strict`, or as many as that node has connected.
#[derive(Clone, Copy, Debug)]
pub(super) struct ReplicaWait {
    pub(super) wanted: u32,
    pub(super) timeout: Duration,
    pub(super) strict: bool,
}

/// How many replicas have a write, and how many the node that took it has.
#[derive(Clone, Copy, Debug)]
pub(super) struct Replicated {
    pub(super) acked: i64,
    pub(super) connected: i64,
}

/// A plain command, a write script on one subject's key with its arguments
/// (waiting for replicas when configured), or a script that never waits.
pub(super) enum Command {
    Plain(redis::Cmd),
    Script(redis::Script, String, Vec<String>),
    Check(redis::Script, String, Vec<String>),
}

impl Command {
    /// The command's answer and, for a write that waits for replicas, how
    /// many have it and how many the node has. The write, its `WAIT` and
    /// `INFO replication` go in one pipeline, so all reach the same node on
    /// the same connection: asked on its own, a cluster client sends `WAIT`
    /// to whichever primaries its map names (a stale map after a failover:
    /// one that did not take the write, whose replicas then vouch for it).
    pub(super) async fn run<T: redis::FromRedisValue>(
        &self,
        connection: &mut Conn,
        replicas: Option<ReplicaWait>,
    ) -> redis::RedisResult<(T, Option<Replicated>)> {
        match (self, replicas) {
            (Command::Plain(command), _) => Ok((command.query_async(connection).await?, None)),
            (Command::Script(script, key, args), None) | (Command::Check(script, key, args), _) => {
                let mut invocation = script.key(key);
                for arg in args {
                    invocation.arg(arg);
                }
                Ok((invocation.invoke_async(connection).await?, None))
            }
            (Command::Script(script, key, args), Some(wait)) => {
                let mut pipe = redis::pipe();
                pipe.cmd("EVALSHA")
                    .arg(script.get_hash())
                    .arg(1)
                    .arg(key)
                    .arg(args)
                    .cmd("WAIT")
                    .arg(wait.wanted)
                    .arg(wait.timeout.as_millis() as u64)
                    .cmd("INFO")
                    .arg("replication");
                // A node without the script (restarted, promoted) refuses the
                // first EVALSHA; its WAIT is then waited out once more.
                let (answer, acked, info): (T, i64, redis::Value) =
                    match pipe.query_async(connection).await {
                        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                            script.load_async(connection).await?;
                            pipe.query_async(connection).await?
                        }
                        other => other?,
                    };
                let connected = info_texts(&info)
                    .iter()
                    .flat_map(|text| text.lines())
                    .find_map(|line| line.strip_prefix("connected_slaves:"))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                Ok((answer, Some(Replicated { acked, connected })))
            }
        }
    }
}

/// Whether a second attempt can succeed: the connection dropped (Redis restarted)
/// and the manager has reconnected meanwhile.
pub(super) fn worth_retrying(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error()
}
