/**
 * @module
 * The notification service of a region, started in one call: the order-event consumer (one group per
 * topic, `ecommerce-<region>.notifications.<created|paid|canceled|fulfilled>`), the hub and the
 * `/ws/orders` and `/sse/orders/{id}` routes. The wiring mounts `routes` on the service app and calls
 * `close()` on shutdown.
 */
import type { Hono } from "hono";
import type { TokenVerifier } from "../../../shared/auth/mod.ts";
import type { Cache, EventLog, Sql } from "../../../shared/ports/mod.ts";
import { createNotificationHub } from "./hub.ts";
import { ORDER_TOPICS, startOrderEventConsumer } from "./order_event_consumer.ts";
import { DEFAULT_LIMITS, type NotificationLimits } from "./protocol.ts";
import { createNotificationRoutes } from "./routes.ts";

export interface OrderNotificationsDeps {
  readonly sql: Sql;
  readonly cache: Cache;
  readonly eventLog: EventLog;
  readonly verifier: TokenVerifier;
  /** Names the consumer group: `ecommerce-<region>.notifications`. */
  readonly region: string;
  /** Interval of SSE heartbeat comments. @default 15000 */
  readonly heartbeatMs?: number;
  /** Where a new consumer group starts. @default "earliest" (stores the topics' history once) */
  readonly from?: "earliest" | "latest";
  /** Overrides of {@linkcode DEFAULT_LIMITS}. */
  readonly limits?: Partial<NotificationLimits>;
  /** How often the table is tailed for rows stored by other replicas. @default 1000 */
  readonly tailIntervalMs?: number;
  /** How long an order event waits for its predecessor before it is stored anyway. @default 5000 */
  readonly lifecycleHoldMs?: number;
}

export interface OrderNotifications {
  /** Serves `GET /ws/orders` and `GET /sse/orders/:id`; mount with `app.route("/", routes)`. */
  readonly routes: Hono;
  /** Resolves once the consumer has joined its group (events published after it are delivered). */
  readonly ready: Promise<void>;
  /** Open connections and hub subscriptions right now (metrics, tests). */
  stats(): { readonly sockets: number; readonly sseStreams: number; readonly subscriptions: number };
  /** Closes sockets (1001) and streams, stops the consumer, then the hub. */
  close(): Promise<void>;
}

/** Starts the order notification service. */
export async function startOrderNotifications(deps: OrderNotificationsDeps): Promise<OrderNotifications> {
  if (!/^[a-z0-9-]{1,32}$/.test(deps.region)) {
    throw new TypeError(`startOrderNotifications got region "${deps.region}"; use lower-case letters, digits, "-"`);
  }
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  if (!(Number.isInteger(heartbeatMs) && heartbeatMs >= 100 && heartbeatMs <= 60_000)) {
    throw new RangeError(`heartbeatMs must be an integer from 100 to 60000, got ${heartbeatMs}`);
  }
  const limits: NotificationLimits = Object.freeze({ ...DEFAULT_LIMITS, ...deps.limits });
  await deps.eventLog.ensureTopics(ORDER_TOPICS.map((name) => ({ name, partitions: 3 })));
  const hub = await createNotificationHub({
    sql: deps.sql,
    pageSize: limits.replayPageSize,
    tailIntervalMs: deps.tailIntervalMs,
  });
  const consumer = await startOrderEventConsumer({
    eventLog: deps.eventLog,
    sql: deps.sql,
    cache: deps.cache,
    groupId: `ecommerce-${deps.region}.notifications`,
    from: deps.from,
    holdMs: deps.lifecycleHoldMs,
    onStored: (notification) => hub.ring(notification.orderId, notification.userId),
  });
  const http = createNotificationRoutes({ sql: deps.sql, hub, verifier: deps.verifier, limits, heartbeatMs });
  return {
    routes: http.routes,
    ready: consumer.ready,
    stats: () => ({ ...http.connections(), subscriptions: hub.subscriptionCount() }),
    close: async () => {
      http.closeAll();
      await consumer.close();
      await hub.close();
    },
  };
}
