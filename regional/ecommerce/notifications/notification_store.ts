/**
 * @module
 * `order_notifications`: every order event once (unique `event_id`), numbered per order (`seq`) and
 * region-wide (`id`, the stream position clients resume from). Inserts take one transaction-scoped
 * advisory lock, so the next `id` is drawn only after the previous row committed: ids become visible in
 * increasing order, and a reader that has seen id N can never later find a row below N appearing. That is
 * what makes "resume after N" gap-free on the personal channel, whose rows come from every partition.
 */
import type { Envelope } from "../../../shared/contracts/envelope.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import type { OrderEventView } from "./protocol.ts";

/** Advisory-lock key serialising notification inserts (an arbitrary constant: "bvnotif"). */
const INSERT_LOCK_KEY = 0x62766e6f746966n;

/** The order status each order event announces. */
export const STATUS_BY_EVENT_TYPE: Readonly<Record<string, string>> = Object.freeze({
  "ecommerce.order.order.created.v1": "PENDING",
  "ecommerce.order.order.paid.v1": "PAID",
  "ecommerce.order.order.canceled.v1": "CANCELED",
  "ecommerce.order.order.fulfilled.v1": "FULFILLED",
});

/** A stored notification: what clients see plus the owner (never sent, used to authorise). */
export interface StoredNotification extends OrderEventView {
  readonly userId: string;
}

interface NotificationRow extends Record<string, unknown> {
  id: string;
  order_id: string;
  seq: number;
  event_id: string;
  event_type: string;
  status: string;
  user_id: string;
  occurred_at: Date;
}

function toNotification(row: NotificationRow): StoredNotification {
  return {
    id: row.id,
    orderId: row.order_id,
    seq: row.seq,
    eventId: row.event_id,
    eventType: row.event_type,
    status: row.status,
    userId: row.user_id,
    occurredAt: row.occurred_at.toISOString(),
  };
}

/**
 * Stores an order event unless its eventId is stored already; resolves with the row and whether this call
 * inserted it. The envelope's payload must carry `orderId` and `userId` (every order event does).
 */
export async function recordOrderEvent(
  sql: Sql,
  envelope: Envelope<{ readonly orderId: string; readonly userId: string }>,
): Promise<{ readonly notification: StoredNotification; readonly inserted: boolean }> {
  const status = STATUS_BY_EVENT_TYPE[envelope.eventType];
  if (status === undefined) throw new TypeError(`"${envelope.eventType}" is not an order event`);
  const { orderId, userId } = envelope.payload;
  return await sql.transaction(async (tx) => {
    const found = await tx.query<NotificationRow>`
      select id::text as id, order_id, seq, event_id::text as event_id, event_type, status, user_id, occurred_at
      from order_notifications where event_id = ${envelope.eventId}`;
    if (found.length > 0) return { notification: toNotification(found[0]), inserted: false };
    await tx.query`select pg_advisory_xact_lock(${INSERT_LOCK_KEY.toString()}::int8)`;
    // Under the lock: a twin delivery in another process may have inserted the row while we waited.
    const rows = await tx.query<NotificationRow>`
      insert into order_notifications (order_id, seq, event_id, event_type, status, user_id, occurred_at)
      select ${orderId}::text, coalesce(max(seq), 0) + 1, ${envelope.eventId}::uuid, ${envelope.eventType}::text,
             ${status}::text, ${userId}::text, ${new Date(envelope.occurredAt)}::timestamptz
      from order_notifications where order_id = ${orderId}
      on conflict (event_id) do nothing
      returning id::text as id, order_id, seq, event_id::text as event_id, event_type, status, user_id, occurred_at`;
    if (rows.length > 0) return { notification: toNotification(rows[0]), inserted: true };
    const twin = await tx.query<NotificationRow>`
      select id::text as id, order_id, seq, event_id::text as event_id, event_type, status, user_id, occurred_at
      from order_notifications where event_id = ${envelope.eventId}`;
    if (twin.length === 0) throw new Error(`Event "${envelope.eventId}" vanished while being recorded`);
    return { notification: toNotification(twin[0]), inserted: false };
  });
}

/** Whether an event may be stored now, given the event types its order has stored (see `lifecycle_gate.ts`). */
export type AdmitOrderEvent = (
  envelope: Envelope<{ readonly orderId: string; readonly userId: string }>,
  storedEventTypes: ReadonlySet<string>,
) => boolean;

/**
 * Stores a batch of order events in ONE transaction under one advisory lock (the same rows
 * {@linkcode recordOrderEvent} would write, in the given order); events stored before are returned as they
 * are. One commit per Kafka batch instead of one transaction per event is what lets the consumer keep up
 * with 50 orders/s on a busy process (bench `order_to_websocket`). A new event that `admit` refuses (its
 * predecessor is not stored yet) is left out of the result and not stored; `admit` sees the order's types
 * read under the lock plus those stored earlier in the batch.
 */
export async function recordOrderEvents(
  sql: Sql,
  envelopes: readonly Envelope<{ readonly orderId: string; readonly userId: string }>[],
  admit: AdmitOrderEvent = () => true,
): Promise<{ readonly notification: StoredNotification; readonly inserted: boolean }[]> {
  for (const envelope of envelopes) {
    if (STATUS_BY_EVENT_TYPE[envelope.eventType] === undefined) {
      throw new TypeError(`"${envelope.eventType}" is not an order event`);
    }
  }
  if (envelopes.length === 0) return [];
  return await sql.transaction(async (tx) => {
    await tx.query`select pg_advisory_xact_lock(${INSERT_LOCK_KEY.toString()}::int8)`;
    // Under the lock, so a twin delivery in another process has either committed or not started. An order
    // has at most 4 rows, so reading the batch's orders whole costs no more than reading its event ids and
    // also tells which of each order's events are stored.
    // `= any(array)` uses the (order_id, id) index; `in (select jsonb_array_elements_text(…))` was planned as a
    // hash join over a sequential scan of the whole table (the set-returning function is estimated at 100 rows).
    const orderIds = [...new Set(envelopes.map((e) => e.payload.orderId))];
    const found = await tx.query<NotificationRow>`
      select id::text as id, order_id, seq, event_id::text as event_id, event_type, status, user_id, occurred_at
      from order_notifications where order_id = any(${orderIds}::text[])`;
    const stored = new Map(found.map((row) => [row.event_id, toNotification(row)]));
    const typesByOrder = new Map<string, Set<string>>();
    const typesOf = (orderId: string) => {
      let types = typesByOrder.get(orderId);
      if (types === undefined) typesByOrder.set(orderId, types = new Set());
      return types;
    };
    for (const row of found) typesOf(row.order_id).add(row.event_type);
    const results: { notification: StoredNotification; inserted: boolean }[] = [];
    for (const envelope of envelopes) {
      const known = stored.get(envelope.eventId);
      if (known) {
        results.push({ notification: known, inserted: false });
        continue;
      }
      const { orderId, userId } = envelope.payload;
      if (!admit(envelope, typesOf(orderId))) continue;
      const [row] = await tx.query<NotificationRow>`
        insert into order_notifications (order_id, seq, event_id, event_type, status, user_id, occurred_at)
        select ${orderId}::text, coalesce(max(seq), 0) + 1, ${envelope.eventId}::uuid, ${envelope.eventType}::text,
               ${STATUS_BY_EVENT_TYPE[envelope.eventType]}::text, ${userId}::text,
               ${new Date(envelope.occurredAt)}::timestamptz
        from order_notifications where order_id = ${orderId}
        returning id::text as id, order_id, seq, event_id::text as event_id, event_type, status, user_id, occurred_at`;
      const notification = toNotification(row);
      stored.set(envelope.eventId, notification);
      typesOf(orderId).add(envelope.eventType);
      results.push({ notification, inserted: true });
    }
    return results;
  });
}

/** The newest notification of each order in `orderIds` (one query), keyed by order id. */
export async function latestNotificationsOfOrders(
  sql: Sql,
  orderIds: readonly string[],
): Promise<Map<string, StoredNotification>> {
  if (orderIds.length === 0) return new Map();
  const rows = await sql.query<NotificationRow>`
    select distinct on (order_id)
           id::text as id, order_id, seq, event_id::text as event_id, event_type, status, user_id, occurred_at
    from order_notifications where order_id = any(${[...orderIds]}::text[])
    order by order_id, case status when 'FULFILLED' then 3 when 'CANCELED' then 3 when 'PAID' then 2 else 1 end desc,
             id desc`;
  return new Map(rows.map((row) => [row.order_id, toNotification(row)]));
}

/** The target of a read: one order, or every order of one user. */
export type ChannelKey = { readonly kind: "order"; readonly orderId: string } | {
  readonly kind: "user";
  readonly userId: string;
};

/** Notifications of `channel` after stream position `after`, oldest first, at most `limit`. */
export async function readNotificationsAfter(
  sql: Sql,
  channel: ChannelKey,
  after: string,
  limit: number,
): Promise<StoredNotification[]> {
  const rows = channel.kind === "order"
    ? await sql.query<NotificationRow>`
        select id::text as id, order_id, seq, event_id::text as event_id, event_type, status, user_id, occurred_at
        from order_notifications where order_id = ${channel.orderId} and id > ${after}::int8
        order by id limit ${limit}`
    : await sql.query<NotificationRow>`
        select id::text as id, order_id, seq, event_id::text as event_id, event_type, status, user_id, occurred_at
        from order_notifications where user_id = ${channel.userId} and id > ${after}::int8
        order by id limit ${limit}`;
  return rows.map(toNotification);
}

/** The newest notification of a channel (its id is "now" for a subscription that wants no history). */
export async function latestNotification(sql: Sql, channel: ChannelKey): Promise<StoredNotification | null> {
  const rows = channel.kind === "order"
    ? await sql.query<NotificationRow>`
        select id::text as id, order_id, seq, event_id::text as event_id, event_type, status, user_id, occurred_at
        from order_notifications where order_id = ${channel.orderId}
        order by case status when 'FULFILLED' then 3 when 'CANCELED' then 3 when 'PAID' then 2 else 1 end desc, id desc
        limit 1`
    : await sql.query<NotificationRow>`
        select id::text as id, order_id, seq, event_id::text as event_id, event_type, status, user_id, occurred_at
        from order_notifications where user_id = ${channel.userId} order by id desc limit 1`;
  return rows.length === 0 ? null : toNotification(rows[0]);
}

/** Ids and channels of every notification after `after` (the hub's safety-net tail), oldest first. */
export async function tailNotifications(
  sql: Sql,
  after: string,
  limit: number,
): Promise<{ id: string; orderId: string; userId: string }[]> {
  const rows = await sql.query<{ id: string; order_id: string; user_id: string }>`
    select id::text as id, order_id, user_id from order_notifications where id > ${after}::int8
    order by id limit ${limit}`;
  return rows.map((r) => ({ id: r.id, orderId: r.order_id, userId: r.user_id }));
}

/** The highest stream position stored, "0" when the table is empty. */
export async function highestNotificationId(sql: Sql): Promise<string> {
  const rows = await sql.query<{ id: string }>`select coalesce(max(id), 0)::text as id from order_notifications`;
  return rows[0].id;
}
