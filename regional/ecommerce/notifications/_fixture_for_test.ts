/**
 * @module
 * Test fixture: the notification service on real (PostgreSQL, Redis, Kafka) or embedded (PGlite, memory)
 * adapters, served with `Deno.serve` on port 0, plus WebSocket and SSE clients that record what they get.
 */
import { createKafkaEventLog } from "../../../shared/adapters/kafka/mod.ts";
import { createMemoryCache, createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { createRedisCache } from "../../../shared/adapters/redis/mod.ts";
import { createEnvelope, type EventDefinition } from "../../../shared/contracts/envelope.ts";
import type { Cache, EventLog, Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { createTestTokens, type TestTokens } from "../../../shared/testing/test_tokens.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import {
  type NotificationLimits,
  notificationsMigrations,
  type OrderNotifications,
  startOrderNotifications,
} from "./mod.ts";

export interface Harness {
  readonly baseUrl: string;
  readonly wsUrl: string;
  readonly tokens: TestTokens;
  readonly sql: Sql;
  readonly cache: Cache;
  readonly eventLog: EventLog;
  readonly notifications: OrderNotifications;
  /** Publishes an order event straight to the log (as the outbox relay would). */
  publish<P extends { orderId: string }>(definition: EventDefinition<P>, payload: P): Promise<string>;
  close(): Promise<void>;
}

const trace = { producer: "order-service", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "c-notify" };

/** An `order.created` payload with one item. */
export const createdPayload = (orderId: string, userId: string) => ({
  orderId,
  userId,
  totalAmount: "10.00",
  currency: "EUR",
  items: [{ productId: crypto.randomUUID(), qty: 1, price: "10.00" }],
});

/** An `order.paid` payload matching {@linkcode createdPayload}. */
export const paidPayload = (orderId: string, userId: string) => ({
  orderId,
  userId,
  amount: "10.00",
  currency: "EUR",
  authCode: "A",
});

/** Starts the service on `kind` adapters. */
export async function startHarness(
  kind: "real" | "embedded",
  options?: {
    readonly heartbeatMs?: number;
    readonly limits?: Partial<NotificationLimits>;
    /** An embedded database shared by several harnesses (PGlite boots slowly); the caller closes it. */
    readonly sharedSql?: Sql;
    /** How long an order event waits for its predecessor. @default 5000 (the service's default) */
    readonly lifecycleHoldMs?: number;
    /** Receives the embedded event log's warnings (a held-back event is one per delivery). @default stderr */
    readonly eventLogWarn?: (message: string, fields: Record<string, unknown>) => void;
    /** The embedded event log's redelivery backoff. @default its own (200 ms doubling to 5 s) */
    readonly eventLogRetry?: { readonly initialDelayMs: number; readonly maxDelayMs: number };
  },
): Promise<Harness> {
  const cleanups: (() => Promise<void>)[] = [];
  let sql: Sql;
  let cache: Cache;
  let eventLog: EventLog;
  if (kind === "real") {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    sql = createPostgresSql({ url: db.url });
    const prefix = `${uniqueName("bvtest")}:`;
    cache = createRedisCache({ url: realInfra.redisUrl, keyPrefix: prefix });
    eventLog = createKafkaEventLog({
      brokers: realInfra.kafkaBrokers,
      clientId: uniqueName("notifications"),
      consumer: {
        sessionTimeoutMs: 10_000,
        rebalanceTimeoutMs: 10_000,
        heartbeatIntervalMs: 1_000,
        maxWaitTimeMs: 100,
      },
    });
  } else {
    sql = options?.sharedSql ?? await createPgliteSql();
    cache = createMemoryCache();
    eventLog = createMemoryEventLog({ warn: options?.eventLogWarn, handlerRetry: options?.eventLogRetry });
  }
  if (!options?.sharedSql) cleanups.push(() => sql.close());
  cleanups.push(() => cache.close(), () => eventLog.close());
  await migrate(sql, notificationsMigrations);
  const tokens = await createTestTokens();
  const notifications = await startOrderNotifications({
    sql,
    cache,
    eventLog,
    verifier: tokens.verifier,
    region: uniqueName("t").replaceAll("_", "-"),
    heartbeatMs: options?.heartbeatMs,
    // The shared topics hold other runs' events: a new test group starts at the end.
    from: "latest",
    limits: options?.limits,
    tailIntervalMs: 200,
    lifecycleHoldMs: options?.lifecycleHoldMs,
  });
  cleanups.push(() => notifications.close());
  await notifications.ready;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, notifications.routes.fetch);
  cleanups.push(() => server.shutdown());
  const origin = `127.0.0.1:${server.addr.port}`;
  return {
    baseUrl: `http://${origin}`,
    wsUrl: `ws://${origin}/ws/orders`,
    tokens,
    sql,
    cache,
    eventLog,
    notifications,
    async publish(definition, payload) {
      const envelope = createEnvelope(definition, payload, trace);
      await eventLog.publish(definition.eventType, [{ key: payload.orderId, value: JSON.stringify(envelope) }]);
      return envelope.eventId;
    },
    async close() {
      // Reverse order; later cleanups (server, service) must finish before the ports close.
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    },
  };
}

/** Polls `probe` until it returns something other than undefined (bounded). */
export async function eventually<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
) {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// deno-lint-ignore no-explicit-any
export type Frame = Record<string, any>;

/** Frames that carry an order event (not `subscribed`, `heartbeat`, errors). */
export const isEvent = (frame: Frame) => frame.type === "event";

export interface WsClient {
  readonly frames: Frame[];
  readonly closed: Promise<{ code: number; reason: string }>;
  send(frame: unknown): void;
  sendRaw(data: string | Uint8Array): void;
  /** The next frame (after those already taken) matching `predicate`. */
  next(predicate?: (frame: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** Every frame matching `predicate` received so far. */
  all(predicate: (frame: Frame) => boolean): Frame[];
  close(): Promise<void>;
}

/** Opens a WebSocket with the token in a header (Deno's extension) or in the query; resolves after "welcome". */
export async function connectWs(url: string, token: string | null, via: "header" | "query" = "header") {
  const target = via === "query" && token ? `${url}?access_token=${encodeURIComponent(token)}` : url;
  const init = via === "header" && token ? { headers: { authorization: `Bearer ${token}` } } : {};
  // deno-lint-ignore no-explicit-any
  const ws = new WebSocket(target, init as any);
  const frames: Frame[] = [];
  let taken = 0;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.onclose = (event) => resolve({ code: event.code, reason: event.reason });
  });
  ws.onmessage = (event) => frames.push(JSON.parse(String(event.data)));
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("WebSocket connection failed"));
  });
  const client: WsClient = {
    frames,
    closed,
    send: (frame) => ws.send(JSON.stringify(frame)),
    sendRaw: (data) => ws.send(data),
    async next(predicate = () => true, timeoutMs = 10_000) {
      return await eventually("the expected frame", () => {
        for (let i = taken; i < frames.length; i++) {
          if (predicate(frames[i])) {
            taken = i + 1;
            return frames[i];
          }
        }
        return undefined;
      }, timeoutMs);
    },
    all: (predicate) => frames.filter(predicate),
    async close() {
      if (ws.readyState !== WebSocket.CLOSED) ws.close(1000, "done");
      await closed;
    },
  };
  await client.next((f) => f.type === "welcome");
  return client;
}

export interface SseEvent {
  readonly id?: string;
  readonly event?: string;
  readonly data: string;
}

export interface SseClient {
  readonly status: number;
  readonly events: SseEvent[];
  /** Comment lines seen (heartbeats). */
  readonly comments: string[];
  readonly ended: Promise<void>;
  next(predicate?: (event: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  close(): Promise<void>;
}

/** Opens `/sse/orders/{id}` with fetch and parses the stream as it arrives. */
export async function openSse(baseUrl: string, orderId: string, token: string, lastEventId?: string) {
  const abort = new AbortController();
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: "text/event-stream" };
  if (lastEventId !== undefined) headers["last-event-id"] = lastEventId;
  const response = await fetch(`${baseUrl}/sse/orders/${orderId}`, { headers, signal: abort.signal });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let taken = 0;
  const ended = (async () => {
    if (!response.body) return;
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let at: number;
        while ((at = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          const event: { id?: string; event?: string; data: string[] } = { data: [] };
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) comments.push(line.slice(1).trim());
            else if (line.startsWith("id: ")) event.id = line.slice(4);
            else if (line.startsWith("event: ")) event.event = line.slice(7);
            else if (line.startsWith("data: ")) event.data.push(line.slice(6));
          }
          if (event.data.length > 0) events.push({ id: event.id, event: event.event, data: event.data.join("\n") });
        }
      }
    } catch {
      // Aborted by close().
    }
  })();
  const client: SseClient = {
    status: response.status,
    events,
    comments,
    ended,
    async next(predicate = () => true, timeoutMs = 10_000) {
      return await eventually("the expected SSE event", () => {
        for (let i = taken; i < events.length; i++) {
          if (predicate(events[i])) {
            taken = i + 1;
            return events[i];
          }
        }
        return undefined;
      }, timeoutMs);
    },
    async close() {
      abort.abort();
      await ended;
    },
  };
  return client;
}
