/**
 * @module
 * The region's broadcast log: every start and end the SSE hubs push, numbered. The number is the SSE event
 * id, the same on every process of the region, so a client resumes with `Last-Event-ID` wherever its
 * reconnect lands. Numbers are assigned under one advisory lock held to the commit, so a reader that sees
 * number n also sees every committed number below n (a rolled-back insert leaves a harmless hole).
 */
import { z } from "zod";
import type { Sql } from "../../../shared/ports/sql.ts";
import { processOnce } from "../outbox/mod.ts";

/** SSE event names; `event:` lines carry them. */
export type FlashSaleEventName = "flash_sale.started" | "flash_sale.ended";

/** One numbered broadcast, as stored, published on the region channel and replayed. */
export interface Broadcast {
  readonly seq: number;
  readonly eventId: string;
  readonly event: FlashSaleEventName;
  readonly data: Readonly<Record<string, unknown>>;
}

/** The processed_events consumer name of the broadcaster (one per region database). */
export const BROADCAST_CONSUMER = "flash-sales-broadcast";

/** Arbitrary constant advisory-lock key ("bvflash") serialising broadcast numbering. */
const BROADCAST_LOCK_KEY = 0x6276666c617368n;

const broadcastSchema = z.strictObject({
  seq: z.number().int().positive(),
  eventId: z.uuid(),
  event: z.enum(["flash_sale.started", "flash_sale.ended"]),
  data: z.record(z.string(), z.unknown()),
});

/** Parses a message from the region channel; null when it is not a broadcast. */
export function parseBroadcast(text: string): Broadcast | null {
  try {
    const parsed = broadcastSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * Numbers and stores the broadcast of event `eventId` once (idempotent by eventId through processOnce) and
 * keeps the newest `retain` rows. Resolves with the stored broadcast, or null when the event was recorded
 * before (a redelivery: it was broadcast then).
 */
export async function recordBroadcast(
  sql: Sql,
  input: { readonly eventId: string; readonly event: FlashSaleEventName; readonly data: Record<string, unknown> },
  retain: number,
): Promise<Broadcast | null> {
  let stored: Broadcast | null = null;
  await processOnce(sql, BROADCAST_CONSUMER, input.eventId, async (tx) => {
    await tx.query`select pg_advisory_xact_lock(${BROADCAST_LOCK_KEY.toString()}::int8)`;
    const [row] = await tx.query<{ seq: string }>`
      insert into flash_sale_broadcasts (event_id, event, data)
      values (${input.eventId}::uuid, ${input.event}, ${input.data})
      returning seq`;
    await tx.query`delete from flash_sale_broadcasts where seq <= ${row.seq}::int8 - ${retain}::int8`;
    stored = { seq: toSeq(row.seq), eventId: input.eventId, event: input.event, data: input.data };
  });
  return stored;
}

interface BroadcastRow extends Record<string, unknown> {
  seq: string;
  event_id: string;
  event: FlashSaleEventName;
  data: Record<string, unknown>;
}

/** Broadcasts numbered above `seq`, oldest first, at most `limit`. */
export async function readBroadcastsAfter(sql: Sql, seq: number, limit: number): Promise<Broadcast[]> {
  const rows = await sql.query<BroadcastRow>`
    select seq, event_id::text as event_id, event, data from flash_sale_broadcasts
    where seq > ${seq}::int8 order by seq limit ${limit}`;
  return rows.map(broadcastOf);
}

/** The newest `limit` broadcasts, oldest first. */
export async function readLatestBroadcasts(sql: Sql, limit: number): Promise<Broadcast[]> {
  const rows = await sql.query<BroadcastRow>`
    select seq, event_id::text as event_id, event, data from flash_sale_broadcasts
    order by seq desc limit ${limit}`;
  return rows.map(broadcastOf).reverse();
}

function broadcastOf(row: BroadcastRow): Broadcast {
  return { seq: toSeq(row.seq), eventId: row.event_id, event: row.event, data: row.data };
}

/** int8 arrives as a decimal string; numbering stays far below 2^53. */
function toSeq(text: string): number {
  const seq = Number(text);
  if (!Number.isSafeInteger(seq)) throw new RangeError(`Broadcast number "${text}" is not a safe integer`);
  return seq;
}
