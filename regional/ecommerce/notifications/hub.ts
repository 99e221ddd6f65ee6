/**
 * @module
 * The in-process hub between stored notifications and connected clients. A subscription is a cursor (the
 * last stream position its client got) on a channel (one order, or one user's orders); the database is the
 * only source of what to send. A "ring" for an order and its user makes every matching subscription read
 * the rows after its cursor, in id order, and deliver them. Live delivery, replay after a reconnect and
 * catching up after a pause are therefore the same code path, which is why there is no gap and no
 * duplicate: a row is sent exactly when the cursor passes it.
 *
 * Rings come from the consumer in this process; a slow tail of the table (one query per `tailIntervalMs`)
 * also rings for rows another process stored, so several replicas behind one balancer still deliver.
 */
import { log } from "../../../shared/observability/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import {
  type ChannelKey,
  highestNotificationId,
  readNotificationsAfter,
  type StoredNotification,
  tailNotifications,
} from "./notification_store.ts";

/** Who a sink belongs to (read on every delivery, so a re-authenticated socket is checked anew). */
export interface SinkOwner {
  readonly userId: string;
  readonly roles: readonly string[];
}

/** A connected client (a WebSocket or an SSE stream) as the hub sees it. */
export interface NotificationSink {
  owner(): SinkOwner;
  /** False while the client may not take more (closed, or its ack window is full): delivery pauses. */
  canDeliver(): boolean;
  deliver(channel: string, notification: StoredNotification): void;
  /** The order belongs to someone else: tell the client and drop the subscription (the hub already has). */
  deny(channel: string): void;
}

/** One subscription held by the hub. */
export interface HubSubscription {
  readonly channel: string;
  readonly key: ChannelKey;
  readonly sink: NotificationSink;
  /** The last stream position delivered (or the starting point). */
  readonly cursor: string;
}

export interface NotificationHubOptions {
  readonly sql: Sql;
  /** Rows read per query. @default 100 */
  readonly pageSize?: number;
  /** How often the table is tailed for rows stored by other processes. @default 1000 */
  readonly tailIntervalMs?: number;
  /** Delay before a subscription whose read failed (database blip) tries again. @default 1000 */
  readonly retryDelayMs?: number;
}

export interface NotificationHub {
  /** Starts delivering `channel` to `sink` after stream position `cursor`. */
  add(sink: NotificationSink, channel: string, key: ChannelKey, cursor: string): HubSubscription;
  remove(subscription: HubSubscription): void;
  /** Something was stored for this order and user: the matching subscriptions catch up. */
  ring(orderId: string, userId: string): void;
  /** The sink may take more again (an ack opened its window): its subscriptions catch up. */
  wake(sink: NotificationSink): void;
  /** Subscriptions held now (tests check that disconnects free them). */
  subscriptionCount(): number;
  close(): Promise<void>;
}

interface Entry extends HubSubscription {
  cursor: string;
  pumping: boolean;
  again: boolean;
  removed: boolean;
  retry?: ReturnType<typeof setTimeout>;
}

const indexOf = (key: ChannelKey) => key.kind === "order" ? `order:${key.orderId}` : `user:${key.userId}`;

/** Creates the hub and starts its tail; resolves once the tail knows where the table ends. */
export async function createNotificationHub(options: NotificationHubOptions): Promise<NotificationHub> {
  const { sql } = options;
  const pageSize = options.pageSize ?? 100;
  const retryDelayMs = options.retryDelayMs ?? 1_000;
  const byIndex = new Map<string, Set<Entry>>();
  const bySink = new Map<NotificationSink, Set<Entry>>();
  const inflight = new Set<Promise<void>>();
  let closed = false;

  const mayRead = (owner: SinkOwner, row: StoredNotification) =>
    row.userId === owner.userId || owner.roles.includes("ADMIN");

  function pump(entry: Entry): void {
    if (entry.pumping) {
      entry.again = true;
      return;
    }
    entry.pumping = true;
    const running = drive(entry);
    inflight.add(running);
    void running.finally(() => inflight.delete(running));
  }

  async function drive(entry: Entry): Promise<void> {
    try {
      do {
        entry.again = false;
        await catchUp(entry);
      } while (entry.again && !entry.removed);
    } catch (error) {
      // The cursor did not move past anything undelivered, so trying later loses nothing.
      log.warn("notification catch-up failed; will retry", { channel: entry.channel, error: String(error) });
      if (!entry.removed && entry.retry === undefined) {
        entry.retry = setTimeout(() => {
          entry.retry = undefined;
          pump(entry);
        }, retryDelayMs);
      }
    } finally {
      entry.pumping = false;
    }
  }

  async function catchUp(entry: Entry): Promise<void> {
    while (!entry.removed && entry.sink.canDeliver()) {
      const rows = await readNotificationsAfter(sql, entry.key, entry.cursor, pageSize);
      for (const row of rows) {
        if (entry.removed || !entry.sink.canDeliver()) return;
        if (!mayRead(entry.sink.owner(), row)) {
          remove(entry);
          entry.sink.deny(entry.channel);
          return;
        }
        entry.sink.deliver(entry.channel, row);
        entry.cursor = row.id;
      }
      if (rows.length < pageSize) return;
    }
  }

  function remove(entry: HubSubscription): void {
    const e = entry as Entry;
    if (e.removed) return;
    e.removed = true;
    if (e.retry !== undefined) clearTimeout(e.retry);
    const index = indexOf(e.key);
    byIndex.get(index)?.delete(e);
    if (byIndex.get(index)?.size === 0) byIndex.delete(index);
    bySink.get(e.sink)?.delete(e);
    if (bySink.get(e.sink)?.size === 0) bySink.delete(e.sink);
  }

  function ring(orderId: string, userId: string): void {
    for (const index of [`order:${orderId}`, `user:${userId}`]) {
      for (const entry of byIndex.get(index) ?? []) pump(entry);
    }
  }

  // The tail: rows this process did not consume (another replica's consumer stored them).
  let tailCursor = await highestNotificationId(sql);
  let tailing: Promise<void> = Promise.resolve();
  let tailBusy = false;
  const tailTimer = setInterval(() => {
    // One tail query at a time: while the database is slow, ticks are skipped instead of piling up queries
    // on the pool (and an older query finishing last could move the cursor back).
    if (tailBusy) return;
    tailBusy = true;
    tailing = (async () => {
      if (closed) return;
      const rows = await tailNotifications(sql, tailCursor, 1_000);
      if (rows.length === 0) return;
      tailCursor = rows[rows.length - 1].id;
      if (byIndex.size === 0) return;
      const seen = new Set<string>();
      for (const row of rows) {
        if (seen.has(`${row.orderId}\n${row.userId}`)) continue;
        seen.add(`${row.orderId}\n${row.userId}`);
        ring(row.orderId, row.userId);
      }
    })().catch((error) => log.warn("notification tail failed; will retry", { error: String(error) }))
      .finally(() => tailBusy = false);
  }, options.tailIntervalMs ?? 1_000);

  return {
    add(sink, channel, key, cursor) {
      if (closed) throw new Error("The notification hub is closed");
      const entry: Entry = { channel, key, sink, cursor, pumping: false, again: false, removed: false };
      const index = indexOf(key);
      if (!byIndex.has(index)) byIndex.set(index, new Set());
      byIndex.get(index)!.add(entry);
      if (!bySink.has(sink)) bySink.set(sink, new Set());
      bySink.get(sink)!.add(entry);
      pump(entry);
      return entry;
    },
    remove,
    ring,
    wake(sink) {
      for (const entry of bySink.get(sink) ?? []) pump(entry);
    },
    subscriptionCount() {
      let count = 0;
      for (const entries of byIndex.values()) count += entries.size;
      return count;
    },
    async close() {
      closed = true;
      clearInterval(tailTimer);
      await tailing;
      for (const entries of [...byIndex.values()]) for (const entry of [...entries]) remove(entry);
      await Promise.allSettled([...inflight]);
    },
  };
}
