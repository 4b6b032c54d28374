//! The Redis backend: several host replicas share one store. A key is `cbh:<namespace>:<key>`;
//! each namespace keeps a sorted set of its keys by expiry, so the entry quota holds across
//! replicas. Writes are Lua scripts (atomic on the server) that read the server's clock, so
//! replicas with different clocks agree on expiry.

use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Script};

use super::{KvError, Limits, PAGE};

pub struct RedisStore {
    connection: ConnectionManager,
    write: Script,
}

/// Sets or increments KEYS[1], indexed in KEYS[2]. ARGV: mode (`set`/`incr`), value or delta,
/// time to live in ms (0: none), the entry quota. Refuses with the status `QUOTA` (a new key over
/// the quota) or `NOTANUMBER` (an increment of a value that is not an integer): answers, not
/// errors, so that they are told apart by value rather than by an error's text.
const WRITE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local ttl = tonumber(ARGV[3])
local exists = redis.call('EXISTS', KEYS[1]) == 1
if not exists then
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
    return redis.status_reply('QUOTA')
  end
  if ttl > 0 then
    redis.call('ZADD', KEYS[2], now + ttl, KEYS[1])
  else
    redis.call('ZADD', KEYS[2], '+inf', KEYS[1])
  end
end
if ARGV[1] == 'incr' then
  local value = redis.pcall('INCRBY', KEYS[1], ARGV[2])
  if type(value) == 'table' and value.err then
    return redis.status_reply('NOTANUMBER')
  end
  if not exists and ttl > 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  return value
end
if exists then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
elseif ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
"#;

fn backend(error: redis::RedisError) -> KvError {
    KvError::Backend(error.to_string())
}

fn key(ns: &str, key: &str) -> String {
    format!("cbh:{ns}:{key}")
}

fn index(ns: &str) -> String {
    format!("cbh-index:{ns}")
}

impl RedisStore {
    /// Connects (and reconnects by itself later) to `url`.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let client = redis::Client::open(url).with_context(|| format!("redis url {url:?}"))?;
        let connection = ConnectionManager::new(client)
            .await
            .with_context(|| format!("connecting to redis at {url}"))?;
        Ok(Self {
            connection,
            write: Script::new(WRITE),
        })
    }

    pub async fn ping(&self) -> bool {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .is_ok()
    }

    pub async fn get(&self, ns: &str, k: &str) -> Result<Option<Vec<u8>>, KvError> {
        let mut connection = self.connection.clone();
        connection.get(key(ns, k)).await.map_err(backend)
    }

    async fn write(
        &self,
        ns: &str,
        k: &str,
        mode: &str,
        value: &[u8],
        limits: Limits,
    ) -> Result<redis::Value, KvError> {
        let mut connection = self.connection.clone();
        let ttl = limits.ttl.map_or(0, |t| t.as_millis() as u64);
        self.write
            .key(key(ns, k))
            .key(index(ns))
            .arg(mode)
            .arg(value)
            .arg(ttl)
            .arg(limits.max_entries)
            .invoke_async(&mut connection)
            .await
            .map_err(backend)
            .and_then(|value| match value {
                redis::Value::SimpleString(status) if status == "QUOTA" => Err(KvError::Quota(
                    format!("the bucket holds {} keys, the limit", limits.max_entries),
                )),
                redis::Value::SimpleString(status) if status == "NOTANUMBER" => {
                    Err(KvError::NotANumber(k.to_owned()))
                }
                value => Ok(value),
            })
    }

    pub async fn set(
        &self,
        ns: &str,
        k: &str,
        value: &[u8],
        limits: Limits,
    ) -> Result<(), KvError> {
        self.write(ns, k, "set", value, limits).await.map(|_| ())
    }

    pub async fn increment(
        &self,
        ns: &str,
        k: &str,
        delta: u64,
        limits: Limits,
    ) -> Result<u64, KvError> {
        match self
            .write(ns, k, "incr", delta.to_string().as_bytes(), limits)
            .await?
        {
            redis::Value::Int(value) => Ok(value.max(0) as u64),
            other => Err(KvError::Backend(format!("unexpected reply {other:?}"))),
        }
    }

    pub async fn delete(&self, ns: &str, k: &str) -> Result<(), KvError> {
        let mut connection = self.connection.clone();
        let full = key(ns, k);
        redis::pipe()
            .atomic()
            .del(&full)
            .zrem(index(ns), &full)
            .query_async::<()>(&mut connection)
            .await
            .map_err(backend)
    }

    pub async fn list(&self, ns: &str, cursor: u64) -> Result<(Vec<String>, Option<u64>), KvError> {
        let mut connection = self.connection.clone();
        let now = crate::util::unix_ms();
        let keys: Vec<String> = connection
            .zrangebyscore_limit(
                index(ns),
                format!("({now}"),
                "+inf",
                cursor as isize,
                PAGE as isize + 1,
            )
            .await
            .map_err(backend)?;
        let prefix = key(ns, "").len();
        let more = keys.len() > PAGE;
        Ok((
            keys.into_iter()
                .take(PAGE)
                .map(|k| k[prefix.min(k.len())..].to_owned())
                .collect(),
            more.then_some(cursor + PAGE as u64),
        ))
    }
}
