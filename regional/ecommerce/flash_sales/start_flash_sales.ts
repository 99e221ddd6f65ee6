/**
 * @module
 * Wires the flash sales context of one process: the SSE hub, the price projection (the region's consumer
 * group) and its reconciler, the end sweeper and the routes. The caller applies `flashSalesMigrations` first
 * (after the outbox and catalog ones) and mounts `routes` at "/".
 */
import type { Hono } from "hono";
import type { TokenVerifier } from "../../../shared/auth/verifier.ts";
import { flashSaleStarted } from "../../../shared/contracts/events/ecommerce.ts";
import { flashSaleEnded } from "../../../shared/contracts/events/pricing.ts";
import { type Cache, dlqTopicOf, type EventLog, type Sql } from "../../../shared/ports/mod.ts";
import { startFlashSaleHub } from "./flash_sale_hub.ts";
import { startFlashPriceProjection } from "./flash_price_projection.ts";
import { startFlashPriceReconciler } from "./flash_price_reconciler.ts";
import { createFlashSaleRoutes } from "./routes.ts";
import { startSaleEnder } from "./sale_ender.ts";

export interface FlashSalesDeps {
  readonly sql: Sql;
  readonly cache: Cache;
  readonly eventLog: EventLog;
  readonly verifier: TokenVerifier;
  /** Wakes the outbox relay after a commit that appended events. */
  readonly nudgeOutbox: () => void;
  /** Names the consumer group (`ecommerce-<region>.flash-sales`) and the pub/sub channel. */
  readonly region: string;
}

/** Tuning with safe defaults; tests shorten the intervals. */
export interface FlashSalesOptions {
  /** Broadcasts kept for `Last-Event-ID` resume, in memory per hub. @default 100 */
  readonly recentEventsMax?: number;
  /** Broadcasts kept in the log table (catch-up and hub start). @default 1000 */
  readonly broadcastsRetained?: number;
  /** Streams (SSE and WebSocket) per process (`BV_FLASH_SALE_STREAMS_MAX`). @default 10000 */
  readonly subscribersMax?: number;
  /** @default 15000 */
  readonly heartbeatMs?: number;
  /** @default 5000 */
  readonly catchUpIntervalMs?: number;
  /** Longest sleep of the end sweeper. @default 1000 */
  readonly endCheckIntervalMsMax?: number;
  /** How often running sales' prices are re-projected from the database into the cache. @default 15000 */
  readonly priceReconcileIntervalMs?: number;
  /** @default `ecommerce-${region}.flash-sales` */
  readonly groupId?: string;
  /** @default Date.now */
  readonly now?: () => number;
}

/** The running context: routes to mount, the hub (for metrics and tests) and an orderly close. */
export interface FlashSales {
  readonly routes: Hono;
  readonly hub: { subscribers(): number; sockets(): number };
  close(): Promise<void>;
}

/** The topics flash sales publish, each with its dead-letter topic. */
export const FLASH_SALE_TOPICS: readonly string[] = [flashSaleStarted.eventType, flashSaleEnded.eventType]
  .flatMap((topic) => [topic, dlqTopicOf(topic)]);

const REGION = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Starts flash sales; resolves once the consumer is ready, so a sale started afterwards is never missed. */
export async function startFlashSales(deps: FlashSalesDeps, options: FlashSalesOptions = {}): Promise<FlashSales> {
  if (!REGION.test(deps.region)) {
    throw new TypeError(
      `startFlashSales() region must be lower-case letters, digits, "-" or "_"; got "${deps.region}"`,
    );
  }
  const now = options.now ?? Date.now;
  const recentEventsMax = options.recentEventsMax ?? 100;
  const broadcastsRetained = options.broadcastsRetained ?? 1_000;
  if (!(broadcastsRetained >= recentEventsMax)) {
    throw new RangeError(`broadcastsRetained (${broadcastsRetained}) must be at least recentEventsMax`);
  }
  const channel = `flash_sales:${deps.region}`;
  await deps.eventLog.ensureTopics(FLASH_SALE_TOPICS.map((name) => ({ name, partitions: 3 })));
  const hub = await startFlashSaleHub({
    sql: deps.sql,
    cache: deps.cache,
    channel,
    recentEventsMax,
    subscribersMax: options.subscribersMax,
    heartbeatMs: options.heartbeatMs,
    catchUpIntervalMs: options.catchUpIntervalMs,
    subscriberQueueMax: Math.max(256, recentEventsMax + 64),
  });
  const closers: (() => Promise<void>)[] = [() => hub.close()];
  const close = async () => {
    for (const closeOne of closers.splice(0).reverse()) await closeOne();
  };
  try {
    const projection = await startFlashPriceProjection({
      sql: deps.sql,
      cache: deps.cache,
      eventLog: deps.eventLog,
      groupId: options.groupId ?? `ecommerce-${deps.region}.flash-sales`,
      channel,
      broadcastsRetained,
      now,
    });
    closers.push(() => projection.close());
    await projection.ready;
    // The projection sets a price once, from the started event; this puts back what the cache loses later
    // (restart, eviction). The first pass is awaited, so a restarted process serves running prices at once.
    const reconciler = startFlashPriceReconciler({
      sql: deps.sql,
      cache: deps.cache,
      intervalMs: options.priceReconcileIntervalMs,
      now,
    });
    closers.push(() => reconciler.stop());
    await reconciler.firstPass;
    const ender = startSaleEnder({
      sql: deps.sql,
      nudgeOutbox: deps.nudgeOutbox,
      checkIntervalMsMax: options.endCheckIntervalMsMax,
      now,
    });
    closers.push(() => ender.stop());
    const routes = createFlashSaleRoutes({ ...deps, hub, onSaleStarted: () => ender.wake(), now });
    return { routes, hub: { subscribers: () => hub.subscribers(), sockets: () => hub.sockets() }, close };
  } catch (error) {
    await close();
    throw error;
  }
}
