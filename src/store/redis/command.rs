//! What the store sends Redis: a plain command, a write script (with its
//! `WAIT` in one pipeline when writes wait for replicas), or a script that
//! never waits.

use std::time::Duration;

use redis::{ErrorKind, ServerErrorKind};

use super::link::Conn;

/// A plain command, a write script on one subject's key with its arguments
/// (waiting for replicas when configured), or a script that never waits.
pub(super) enum Command {
    Plain(redis::Cmd),
    Script(redis::Script, String, Vec<String>),
    Check(redis::Script, String, Vec<String>),
}

impl Command {
    /// The command's answer and, for a write that waits for `replicas`, how
    /// many replicas have it. The write and its `WAIT` go in one pipeline, so
    /// both reach the same node on the same connection: asked on its own, a
    /// cluster client sends `WAIT` to whichever primaries its map names (a
    /// stale map after a failover: one that did not take the write, whose
    /// replicas then vouch for it).
    pub(super) async fn run<T: redis::FromRedisValue>(
        &self,
        connection: &mut Conn,
        replicas: Option<(u32, Duration)>,
    ) -> redis::RedisResult<(T, Option<i64>)> {
        match (self, replicas) {
            (Command::Plain(command), _) => Ok((command.query_async(connection).await?, None)),
            (Command::Script(script, key, args), None) | (Command::Check(script, key, args), _) => {
                let mut invocation = script.key(key);
                for arg in args {
                    invocation.arg(arg);
                }
                Ok((invocation.invoke_async(connection).await?, None))
            }
            (Command::Script(script, key, args), Some((wanted, timeout))) => {
                let mut pipe = redis::pipe();
                pipe.cmd("EVALSHA")
                    .arg(script.get_hash())
                    .arg(1)
                    .arg(key)
                    .arg(args)
                    .cmd("WAIT")
                    .arg(wanted)
                    .arg(timeout.as_millis() as u64);
                // A node without the script (restarted, promoted) refuses the
                // first EVALSHA; its WAIT is then waited out once more.
                let (answer, acked) = match pipe.query_async(connection).await {
                    Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        script.load_async(connection).await?;
                        pipe.query_async(connection).await?
                    }
                    other => other?,
                };
                Ok((answer, Some(acked)))
            }
        }
    }
}

/// Whether a second attempt can succeed: the connection dropped (Redis restarted)
/// and the manager has reconnected meanwhile.
pub(super) fn worth_retrying(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error()
}
