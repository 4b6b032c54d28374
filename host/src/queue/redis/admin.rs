//! What an operator does to the Redis queue (`callback-host queue`, the console): its depth and
//! dead letters, requeue and purge, beside the replicas that deliver from it.

use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;

use super::super::{DeadLetter, Event};
use super::{Keys, client, connect, stats};
use crate::config::QueueSettings;

/// The queue in Redis, for `callback-host queue` and `replay` (a running host may share it).
pub struct StreamAdmin {
    connection: ConnectionManager,
    keys: Keys,
}

impl StreamAdmin {
    pub async fn open(settings: &QueueSettings) -> anyhow::Result<Self> {
        Ok(Self {
            connection: connect(&client(settings)?, Duration::from_secs(5)).await?,
            keys: Keys::new(&settings.stream),
        })
    }

    pub async fn stats(&self) -> anyhow::Result<(u64, Option<Duration>, u64)> {
        let mut connection = self.connection.clone();
        let (depth, oldest) = stats(&mut connection, &self.keys).await?;
        let dead: u64 = connection.hlen(&self.keys.dead).await?;
        Ok((depth, oldest, dead))
    }

    /// The dead letters, oldest first.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<(String, DeadLetter)>> {
        let mut connection = self.connection.clone();
        let all: Vec<(String, String)> = connection.hgetall(&self.keys.dead).await?;
        let mut letters = all
            .into_iter()
            .map(|(id, json)| Ok((id, serde_json::from_str(&json)?)))
            .collect::<anyhow::Result<Vec<(String, DeadLetter)>>>()?;
        letters.sort_by_key(|(id, _)| stream_order(id));
        Ok(letters)
    }

    /// Puts dead letters (every one, or those named in `only`) back in the stream.
    pub async fn requeue(&self, only: Option<&[String]>) -> anyhow::Result<usize> {
        let mut connection = self.connection.clone();
        let mut count = 0;
        for (id, letter) in self.dead_letters().await? {
            if only.is_some_and(|only| !only.contains(&id)) {
                continue;
            }
            let event = Event {
                failures: 0,
                ..letter.event
            };
            let (removed,): (usize,) = redis::pipe()
                .atomic()
                .xadd(
                    &self.keys.stream,
                    "*",
                    &[("event", serde_json::to_string(&event)?)],
                )
                .ignore()
                .hdel(&self.keys.dead, &id)
                .query_async(&mut connection)
                .await?;
            count += removed;
        }
        Ok(count)
    }

    pub async fn purge_dead_letters(&self) -> anyhow::Result<u64> {
        let mut connection = self.connection.clone();
        let count: u64 = connection.hlen(&self.keys.dead).await?;
        let () = connection.del(&self.keys.dead).await?;
        Ok(count)
    }
}

/// Stream ids (`ms-seq`) in the order of the stream.
fn stream_order(id: &str) -> (u64, u64) {
    let mut parts = id.split('-').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}
