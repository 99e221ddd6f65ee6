/**
 * @module
 * Test helpers of the analytics context: order paid/canceled envelopes with chosen event times, published
 * straight to the topics the projection reads, and bounded polling.
 */
import { createEnvelope, type Envelope } from "../../../shared/contracts/envelope.ts";
import { orderCanceled, orderPaid } from "../../../shared/contracts/events/ecommerce.ts";
import type { EventLog, RecordHeaders, Sql } from "../../../shared/ports/mod.ts";
import { REVENUE_CONSUMER } from "./revenue_projection.ts";
import { REVENUE_TOPICS, type RevenueTopics } from "./revenue_events.ts";

const trace = { producer: "order-service", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "c-analytics" };

/** An order.paid envelope at `at`. */
export function paidEvent(orderId: string, amount: string, currency: string, at: string): Envelope {
  return createEnvelope(orderPaid, { orderId, userId: "u-1", amount, currency, authCode: "A-1" }, {
    ...trace,
    now: () => new Date(at),
  });
}

/** An order.canceled envelope at `at`. */
export function canceledEvent(orderId: string, at: string): Envelope {
  return createEnvelope(orderCanceled, { orderId, userId: "u-1", reason: "canceled by admin" }, {
    ...trace,
    now: () => new Date(at),
  });
}

/** Publishes envelopes to the topic of their type (or the test's own topics), one record each, in order. */
export async function publishEvents(
  eventLog: EventLog,
  envelopes: readonly Envelope[],
  options?: { readonly topics?: RevenueTopics; readonly headers?: RecordHeaders },
): Promise<void> {
  const topics = options?.topics ?? REVENUE_TOPICS;
  for (const envelope of envelopes) {
    const topic = envelope.eventType === orderPaid.eventType ? topics.paid : topics.canceled;
    await eventLog.publish(topic, [{
      key: envelope.partitionKey,
      value: JSON.stringify(envelope),
      headers: options?.headers,
    }]);
  }
}

/** Polls `predicate` every 25 ms until it holds or `timeoutMs` passes. */
export async function waitFor(what: string, predicate: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!(await predicate())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Waits until the live projection has processed `count` distinct events. */
export async function waitForProcessed(sql: Sql, count: number, timeoutMs = 10_000): Promise<void> {
  await waitFor(`${count} events processed by the revenue projection`, async () => {
    const [{ n }] = await sql.query<{ n: number }>`
      select count(*)::int as n from processed_events where consumer = ${REVENUE_CONSUMER}`;
    return n >= count;
  }, timeoutMs);
}
