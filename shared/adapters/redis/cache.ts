/**
 * @module
 * The cache port on Redis (ioredis). One key prefix per region keeps keys AND pub/sub channels apart on a
 * shared server: ioredis applies `keyPrefix` to keys only, so channels are prefixed here. Pub/sub uses a
 * second connection (a subscribed Redis connection cannot run other commands), opened on first subscribe.
 * The versioned fill and invalidation are Lua scripts, so each check-and-write is one atomic step on the
 * server, and a command resent after a reconnect is checked again when it finally runs.
 */

import { Redis, type RedisOptions } from "ioredis";
import type { Cache } from "../../ports/cache.ts";
import { validFill, validMark, validTtlMs } from "../../ports/cache_checks.ts";

/** Options for {@linkcode createRedisCache}. */
export interface RedisCacheOptions {
  /** `redis://[user:password@]host:port[/db]`. */
  readonly url: string;
  /** Prepended to every key and channel, e.g. `"bv:east:"`. Must not be empty. */
  readonly keyPrefix: string;
  /** Bound on establishing the TCP connection. @default 5000 */
  readonly connectTimeoutMs?: number;
  /** Bound on each command, including time spent queued while disconnected. @default 2000 */
  readonly commandTimeoutMs?: number;
}

/** Default bounds; every limit has a name. */
const connectTimeoutMsDefault = 5_000;
const commandTimeoutMsDefault = 2_000;
/** Reconnect backoff: 50 ms doubling, capped so a restarted Redis is found again within ~2 s. */
const reconnectDelayMsMin = 50;
const reconnectDelayMsMax = 2_000;
/** A queued command gives up after this many reconnect attempts (commandTimeout usually fires first). */
const maxRetriesPerRequest = 3;

/**
 * KEYS: entry, mark; ARGV: value, version, ttlMs, markTtlMs. Returns 1 when stored, 0 when the mark is higher.
 * Versions are compared as Lua numbers (exact up to 2^53, the port's bound) and stored as the caller's text.
 */
const setUnlessStaleScript = `
local raw = redis.call('GET', KEYS[2])
if raw then
  if not string.match(raw, '^%-?%d+$') then return redis.error_reply('ERR value is not an integer or out of range') end
  if tonumber(raw) > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
return 1`;

/** KEYS: mark, then the keys to delete; ARGV: version, markTtlMs. Returns how many of those keys existed. */
const invalidateVersionScript = `
local raw = redis.call('GET', KEYS[1])
local mark = ARGV[1]
if raw then
  if not string.match(raw, '^%-?%d+$') then return redis.error_reply('ERR value is not an integer or out of range') end
  if tonumber(raw) > tonumber(ARGV[1]) then mark = raw end
end
local existed = 0
if #KEYS > 1 then existed = redis.call('DEL', unpack(KEYS, 2)) end
redis.call('SET', KEYS[1], mark, 'PX', ARGV[2])
return existed`;

/** Creates a {@linkcode Cache} backed by Redis; connects at once and reconnects forever with capped backoff. */
export function createRedisCache(options: RedisCacheOptions): Cache {
  if (!options.keyPrefix) {
    throw new TypeError('createRedisCache() requires a non-empty "keyPrefix" (for example "bv:east:")');
  }
  const keyPrefix = options.keyPrefix;
  const redisOptions: RedisOptions = {
    keyPrefix,
    connectTimeout: options.connectTimeoutMs ?? connectTimeoutMsDefault,
    commandTimeout: options.commandTimeoutMs ?? commandTimeoutMsDefault,
    maxRetriesPerRequest,
    // Never give up reconnecting (returning a number, never null): a process outlives Redis restarts.
    retryStrategy: (times) => Math.min(reconnectDelayMsMin * 2 ** Math.min(times, 16), reconnectDelayMsMax),
    // Commands issued while (re)connecting wait in the offline queue instead of failing at once, so a
    // cache created synchronously is usable immediately and a blip is invisible to callers. The wait is
    // bounded by commandTimeout, so a caller never hangs longer than that. Caveat: a timed-out write may
    // still be applied once the connection returns (as with any timeout on a sent command).
    enableOfflineQueue: true,
    // A subscriber connection re-subscribes to its channels after a reconnect.
    autoResubscribe: true,
    lazyConnect: false,
    // Shows up in CLIENT LIST, so an operator (or a test) can tell which region's cache a connection is.
    connectionName: `bv-cache:${keyPrefix}`.replace(/[^\w:.-]/g, "_"),
  };
  const client = new Redis(options.url, redisOptions);
  const errors = trackLastError(client);
  const subscriptions = new Map<string, Set<(message: string) => void>>();
  let subscriber: Redis | undefined;
  // Subscribe/unsubscribe calls are chained so a channel's first subscribe and last unsubscribe never race.
  let subscriptionChanges: Promise<unknown> = Promise.resolve();
  let closed = false;

  function getSubscriber(): Redis {
    if (subscriber) return subscriber;
    subscriber = client.duplicate();
    trackLastError(subscriber);
    subscriber.on("message", (channel: string, message: string) => {
      for (const onMessage of subscriptions.get(channel) ?? []) deliver(onMessage, channel, message);
    });
    return subscriber;
  }

  function serialize<T>(change: () => Promise<T>): Promise<T> {
    const next = subscriptionChanges.then(change, change);
    subscriptionChanges = next.catch(() => undefined);
    return next;
  }

  return {
    get: (key) => client.get(key),
    async set(key, value, setOptions) {
      const ttlMs = setOptions?.ttlMs;
      if (ttlMs === undefined) await client.set(key, value);
      else await client.set(key, value, "PX", validTtlMs(ttlMs));
    },
    del: (...keys) => keys.length === 0 ? Promise.resolve(0) : client.del(...keys),
    async incr(key, by = 1) {
      return await client.incrby(key, validIncrement(by));
    },
    ttlMs: (key) => client.pttl(key),
    async setUnlessStale(key, value, fill) {
      const { version, ttlMs, markTtlMs } = validFill(key, fill);
      // Both keys are passed as KEYS, so ioredis prefixes them as it does any other key.
      const stored = await client.eval(setUnlessStaleScript, 2, key, fill.markKey, value, version, ttlMs, markTtlMs);
      return stored === 1;
    },
    async invalidateVersion(keys, mark) {
      const { version, markTtlMs } = validMark(keys, mark);
      const unique = [...new Set(keys)];
      const existed = await client.eval(
        invalidateVersionScript,
        1 + unique.length,
        mark.markKey,
        ...unique,
        version,
        markTtlMs,
      );
      return existed as number;
    },
    publish: (channel, message) => client.publish(keyPrefix + channel, message),
    subscribe(channel, onMessage) {
      const fullChannel = keyPrefix + channel;
      return serialize(async () => {
        // After close() a subscriber connection would be opened again and never closed.
        if (closed) throw new Error("Cache is closed: create a new one");
        const handlers = subscriptions.get(fullChannel) ?? new Set();
        if (handlers.size === 0) await getSubscriber().subscribe(fullChannel);
        // A fresh function per subscription, so subscribing the same callback twice needs two unsubscribes.
        const entry = (message: string) => onMessage(message);
        handlers.add(entry);
        subscriptions.set(fullChannel, handlers);
        let unsubscribed = false;
        return () =>
          serialize(async () => {
            if (unsubscribed) return;
            unsubscribed = true;
            handlers.delete(entry);
            if (handlers.size > 0) return;
            subscriptions.delete(fullChannel);
            if (!closed) await getSubscriber().unsubscribe(fullChannel);
          });
      });
    },
    async ping(timeoutMs) {
      await withTimeout(client.ping(), timeoutMs, () => {
        const cause = errors.last ? `: ${errors.last.message}` : "";
        return `Redis did not answer PING within ${timeoutMs} ms (status "${client.status}")${cause}`;
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([disconnect(client), subscriber ? disconnect(subscriber) : undefined]);
    },
  };
}

/** Runs one subscriber callback; a throwing callback must not break delivery to the others. */
function deliver(onMessage: (message: string) => void, channel: string, message: string): void {
  try {
    onMessage(message);
  } catch (error) {
    console.error(`Cache subscriber for channel "${channel}" threw; the message is dropped for it`, error);
  }
}

/** Keeps the last connection error for diagnostics; without a listener ioredis logs "Unhandled error event". */
function trackLastError(redis: Redis): { last: Error | undefined } {
  const errors: { last: Error | undefined } = { last: undefined };
  redis.on("error", (error: Error) => errors.last = error);
  redis.on("ready", () => errors.last = undefined);
  return errors;
}

/** QUIT when connected (pending replies arrive first), otherwise drop the socket; resolves once it has ended. */
async function disconnect(redis: Redis): Promise<void> {
  if (redis.status === "end") return;
  const ended = new Promise<void>((resolve) => redis.once("end", () => resolve()));
  if (redis.status === "ready") {
    await redis.quit().catch(() => redis.disconnect());
    return await ended;
  }
  redis.disconnect();
  if (redis.status === "reconnecting") {
    // Between reconnect attempts there is no socket, so disconnect() only cancels the next attempt: no
    // "end" event follows and queued commands would linger until their timeouts. Reject them now.
    // (flushQueue is public in ioredis' JavaScript but missing from its typings.)
    (redis as unknown as { flushQueue(error: Error): void }).flushQueue(new Error("Connection is closed."));
    return;
  }
  await ended;
}

/** INCRBY takes a 64-bit integer; we accept the JavaScript-safe subset. */
function validIncrement(by: number): number {
  if (!Number.isSafeInteger(by)) throw new RangeError(`Cache incr "by" must be a safe integer, got ${by}`);
  return by;
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
