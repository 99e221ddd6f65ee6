/**
 * @module
 * Shared set-up of the webhook tests on real infrastructure: a throw-away PostgreSQL database, a RabbitMQ
 * vhost, webhooks started on them with a schedule in milliseconds, a test partner receiver, and helpers to
 * subscribe and to publish order events.
 */
import { createAmqpWorkQueue } from "../../../shared/adapters/amqp/mod.ts";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { createEnvelope, type Envelope } from "../../../shared/contracts/envelope.ts";
import { orderCreated } from "../../../shared/contracts/events/ecommerce.ts";
import type { EventLog, Sql, WorkQueue } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { createTestVhost } from "../../../shared/testing/rabbit_vhost.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { type Behaviour, startTestReceiver, type TestReceiver } from "./_test_receiver.ts";
import { startWebhooks, type Webhooks, type WebhooksDeps, webhooksMigrations } from "./mod.ts";

export const trace = { producer: "order-service", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "c-1" };

export interface RealFixture {
  readonly sql: Sql;
  readonly queue: WorkQueue;
  readonly eventLog: EventLog;
  readonly receiver: TestReceiver;
  webhooks: Webhooks;
  /** Starts webhooks again on the same ports (after `webhooks.close()`). */
  restart(): Promise<void>;
  /** Subscribes a fresh partner route (of `receiver`) to order.created; resolves with the subscription id. */
  subscribe(
    path: string,
    behaviour: Omit<Behaviour, "secrets">,
    receiver?: TestReceiver,
  ): Promise<{ id: string; secret: string }>;
  /** Publishes a fresh order.created event (the first one `accept` takes); resolves with its envelope. */
  publishOrderCreated(accept?: (envelope: Envelope) => boolean | Promise<boolean>): Promise<Envelope>;
  close(): Promise<void>;
}

export async function startRealFixture(
  options:
    & Partial<
      Pick<
        WebhooksDeps,
        "retryDelaysMs" | "deliveryTimeoutMs" | "breaker" | "egress" | "endpointConcurrency" | "prefetch"
      >
    >
    & {
      readonly eventLog?: EventLog;
      readonly publishTimeoutMs?: number;
    } = {},
): Promise<RealFixture> {
  const [db, vhost, tokens] = await Promise.all([createTestDatabase(), createTestVhost(), createTestTokens()]);
  const sql = createPostgresSql({ url: db.url });
  await migrate(sql, [...outboxMigrations, ...webhooksMigrations]);
  const queue = createAmqpWorkQueue({
    url: vhost.url,
    connectTimeoutMs: 3_000,
    publishTimeoutMs: options.publishTimeoutMs ?? 10_000,
  });
  const eventLog = options.eventLog ?? createMemoryEventLog();
  const receiver = startTestReceiver();
  const region = uniqueName("wh");
  const start = async () => {
    const started = await startWebhooks({
      sql,
      eventLog,
      queue,
      verifier: tokens.verifier,
      nudgeOutbox: () => {},
      region,
      retryDelaysMs: options.retryDelaysMs ?? [200, 400, 600, 800, 1_000],
      deliveryTimeoutMs: options.deliveryTimeoutMs ?? 2_000,
      breaker: options.breaker,
      // The test receiver listens on loopback, which `public` refuses.
      egress: options.egress ?? "any",
      // Every route of the test receiver is one origin: tests of other behaviours are not shaped by the per-endpoint
      // cap (64 = 4 lanes × prefetch 16, no cap); the bulkhead's own test sets it.
      endpointConcurrency: options.endpointConcurrency ?? 64,
      prefetch: options.prefetch,
    });
    await started.ready;
    return started;
  };
  const partner = await tokens.token(uniqueName("partner"), ["PARTNER"]);
  const fixture: RealFixture = {
    sql,
    queue,
    eventLog,
    receiver,
    webhooks: await start(),
    restart: async () => {
      fixture.webhooks = await start();
    },
    subscribe: async (path, behaviour, on = receiver) => {
      const route = { ...behaviour, secrets: [] as string[] };
      const url = on.route(path, route);
      const response = await fixture.webhooks.routes.request("/api/v1/webhooks/subscriptions", {
        method: "POST",
        headers: { authorization: `Bearer ${partner}`, "content-type": "application/json" },
        body: JSON.stringify({ url, events: [orderCreated.eventType] }),
      });
      if (response.status !== 201) throw new Error(`Subscribing failed: ${response.status} ${await response.text()}`);
      const created = await response.json();
      route.secrets.push(created.secret);
      return { id: created.id, secret: created.secret };
    },
    publishOrderCreated: async (accept = () => true) => {
      const fresh = () => {
        const orderId = crypto.randomUUID();
        const envelope = createEnvelope(orderCreated, {
          orderId,
          userId: "u-1",
          totalAmount: "129.50",
          currency: "USD",
          items: [{ productId: "p-1", qty: 2, price: "64.75" }],
        }, trace);
        return { orderId, envelope };
      };
      let { orderId, envelope } = fresh();
      for (let tries = 1; !(await accept(envelope)); tries++) {
        if (tries === 10_000) throw new Error("publishOrderCreated(): no event accepted in 10000 tries");
        ({ orderId, envelope } = fresh());
      }
      await eventLog.publish(envelope.eventType, [{ key: orderId, value: JSON.stringify(envelope) }]);
      return envelope;
    },
    close: async () => {
      await fixture.webhooks.close().catch(() => undefined);
      await receiver.close();
      await queue.close();
      await eventLog.close();
      await sql.close();
      await Promise.allSettled([db.drop(), vhost.drop()]);
    },
  };
  return fixture;
}

/** Attempts recorded for one event at one subscription, in order. */
export async function attemptsOf(
  sql: Sql,
  subscriptionId: string,
  eventId: string,
): Promise<{ attempt: number; outcome: string; final: boolean; http_status: number | null }[]> {
  return await sql.query`
    select attempt, outcome, final, http_status from webhook_delivery_attempts
    where subscription_id = ${subscriptionId} and event_id = ${eventId} order by attempt, id`;
}
