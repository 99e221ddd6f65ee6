/**
 * @module
 * The delivery worker: consumes the lane queues with manual acks and POSTs each delivery, signed afresh
 * (new `webhook-timestamp`) at every attempt, through a per-endpoint circuit breaker and with a timeout: one
 * deadline per attempt (`deliveryTimeoutMs`), shared by resolving the destination and the POST, so a partner whose
 * DNS is slow holds a prefetch slot no longer than one whose endpoint is.
 *
 * - 2xx: delivered (ack). 410 Gone: the subscription is disabled and nothing more is sent to it (ack).
 * - Anything else (a 3xx too: redirects are never followed), a timeout or a network error: the attempt is
 *   recorded and the handler throws, so the work queue parks the message in the lane's next retry queue.
 *   After the last real attempt fails it records the final attempt and the `webhook.delivery.failed` event
 *   (outbox, same transaction), stores the message in the lane's DLQ (confirmed) and only then acks it.
 * - A destination the egress policy refuses (`destination_check.ts`; under `public`: a non-public IP literal, a
 *   name that does not resolve or resolves to a non-public address) gets no request: the attempt is recorded as
 *   failed with the reason and follows the same schedule to the DLQ (DNS can change; the outcome model is kept).
 * - An open circuit sends nothing and does not use up an attempt: the delivery moves to the next step
 *   (and, at the last step, starts the schedule again, at most 3 times), so a flapping endpoint does not
 *   push deliveries into the DLQ untried.
 * - A secret that does not open with this process's keys sends nothing and uses up no attempt: the delivery waits
 *   the first retry delay (in a retry queue, no prefetch slot held) and is tried again, by whichever instance takes
 *   it, until it has failed to open for `secretUnreadableGraceMs`; then it fails for good (final row, event, DLQ).
 * - An endpoint (origin) with `endpointConcurrency` attempts in flight in this process sends nothing and uses up no
 *   attempt: the delivery is parked the same way, through the first retry queue (endpoint_bulkhead.ts), so a slow
 *   partner holds at most that many prefetch slots; after ENDPOINT_DEFERRALS_MAX deferrals it fails for good.
 *
 * Idempotent by delivery id: a delivery with a terminal row (delivered, gone, skipped, final) is not sent
 * again; a unique index keeps that row single even when two copies race. A copy whose last attempt fails
 * after the other copy delivered is acked, not dead-lettered.
 */
import {
  BrokenCircuitError,
  circuitBreaker,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  handleAll,
} from "cockatiel";
import client from "prom-client";
import { webhookDeliveryFailed } from "../../../shared/contracts/events/ecommerce.ts";
import { log, metrics } from "../../../shared/observability/mod.ts";
import type { ConsumerHandle, QueueMessage, Sql, SqlExecutor, WorkQueue } from "../../../shared/ports/mod.ts";
import { dlqQueueOf, RetryLaterError, retryLaterOnFailure } from "../../../shared/ports/mod.ts";
import { appendToOutbox, envelopeFor } from "../outbox/mod.ts";
import { destinationRefusalOf, RESOLVE_TIMEOUT_MS_DEFAULT, type ResolveHost } from "./destination_check.ts";
import type { WebhookEgress } from "./egress_policy.ts";
import { DELIVERY_LANES, type DeliveryMessage, laneOf, laneQueueOf, parseDeliveryMessage } from "./delivery_queues.ts";
import type { SecretBox } from "./secret_box.ts";
import { signatureHeaders } from "./signing.ts";
import { deliveryTargetOf, disableSubscription } from "./subscription_store.ts";
import {
  createEndpointBulkhead,
  deferDelivery,
  deferralsOf,
  ENDPOINT_CONCURRENCY_DEFAULT,
  ENDPOINT_FULL,
  endpointBusyError,
  endpointOf,
} from "./endpoint_bulkhead.ts";

const attemptsTotal = new client.Counter({
  name: "bv_webhook_delivery_attempts_total",
  help: "Webhook delivery attempts, by outcome",
  labelNames: ["outcome"] as const,
  registers: [metrics.registry],
});
/** Seed 003 section 10: webhook_retry_attempts_total. */
const retryAttemptsTotal = new client.Counter({
  name: "bv_webhook_retry_attempts_total",
  help: "Webhook delivery attempts after the first (retries)",
  registers: [metrics.registry],
});

/** Endpoints whose breaker state is kept; the least recently used is forgotten beyond it. */
const BREAKERS_MAX = 10_000;
const ERROR_CHARS_MAX = 500;
const PRODUCER = "webhooks-service";
/** Header counting how often a delivery restarted the schedule because its circuit was open at the last step. */
const CYCLE_HEADER = "x-webhook-cycle";
const CYCLES_MAX = 3;
/** Header on a delivery whose secret did not open: when it first failed to (ms since the epoch). */
const SECRET_UNREADABLE_SINCE_HEADER = "x-webhook-secret-unreadable-since";
/** How long a delivery's secret may keep failing to open before the delivery fails for good: 10 minutes. */
export const SECRET_UNREADABLE_GRACE_MS_DEFAULT = 600_000;

export interface BreakerOptions {
  /** Consecutive failures that open an endpoint's circuit. @default 5 */
  readonly consecutiveFailures?: number;
  /** Time before a half-open trial. @default min(30 s, first retry delay) */
  readonly halfOpenAfterMs?: number;
}

export interface DeliveryWorkerOptions {
  readonly sql: Sql;
  readonly queue: WorkQueue;
  readonly box: SecretBox;
  readonly nudgeOutbox: () => void;
  readonly retryDelaysMs: readonly number[];
  readonly deliveryTimeoutMs: number;
  readonly breaker?: BreakerOptions;
  /** Messages in flight per lane (so at most lanes × prefetch concurrent POSTs). @default 16 */
  readonly prefetch?: number;
  /** Which destinations may be sent to (egress_policy.ts). No default: the wiring decides. */
  readonly egress: WebhookEgress;
  /** Resolves a destination's name under `public` (tests stand in for DNS). @default A and AAAA over DNS */
  readonly resolveHost?: ResolveHost;
  /**
   * How long a delivery is tried again while its subscription's secret does not open with this process's keys
   * (during a rolling change of the secrets key another instance may already have the key); then it fails for
   * good. 0, or a schedule without retries, fails it at the first try. @default 10 minutes
   */
  readonly secretUnreadableGraceMs?: number;
  /**
   * Attempts in flight per destination origin in this process; a delivery finding its endpoint full is deferred
   * (endpoint_bulkhead.ts). Keep it well below lanes × prefetch, the slots it protects. @default 4
   */
  readonly endpointConcurrency?: number;
}

type Outcome = "DELIVERED" | "FAILED" | "CIRCUIT_OPEN" | "GONE" | "SKIPPED";

interface AttemptResult {
  readonly outcome: Outcome;
  readonly httpStatus: number | null;
  readonly error: string | null;
  readonly durationMs: number;
}

/** The endpoint failed this attempt: the work queue moves the message to the schedule's next step. */
class DeliveryAttemptFailed extends Error {
  override name = "DeliveryAttemptFailed";
}

class HttpStatusError extends Error {
  constructor(readonly status: number) {
    super(`The endpoint answered HTTP ${status}`);
  }
}

/** The lane consumers of one process. */
export interface DeliveryWorker {
  /**
   * Stops for a shutdown: messages arriving from now on are handed back untried, deliveries in flight may finish
   * (up to `deliveryTimeoutMs` more), then the consumers are cancelled. Cancelling at once would hand a delivery
   * whose POST is still in flight back to the lane, and another instance would POST it again meanwhile.
   */
  stop(): Promise<void>;
}

/** Starts one consumer per lane. */
export async function startDeliveryWorker(options: DeliveryWorkerOptions): Promise<DeliveryWorker> {
  const handle = createDeliveryHandler(options);
  const inFlight = new Set<Promise<void>>();
  let stopping = false;
  const tracked = (message: QueueMessage): Promise<void> => {
    // Never acked (that would drop it): it stays unacked until the cancel below returns it to the lane.
    if (stopping) return Promise.reject(new RetryLaterError("The webhook delivery worker is stopping"));
    const running = handle(message);
    const settled = running.then(() => {}, () => {}).finally(() => inFlight.delete(settled));
    inFlight.add(settled);
    return running;
  };
  const handles: ConsumerHandle[] = [];
  for (let lane = 0; lane < DELIVERY_LANES; lane++) {
    handles.push(await options.queue.consume(laneQueueOf(lane), tracked, { prefetch: options.prefetch ?? 16 }));
  }
  return {
    stop: async () => {
      stopping = true;
      // An attempt lasts at most deliveryTimeoutMs; its bookkeeping afterwards is a few statements.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waitedOut = new Promise<void>((resolve) => timer = setTimeout(resolve, options.deliveryTimeoutMs + 1_000));
      await Promise.race([Promise.all(inFlight), waitedOut]);
      clearTimeout(timer);
      await Promise.all(handles.map((handle) => handle.cancel()));
    },
  };
}

/** The handler of one delivery message (exported for tests of its decisions). */
export function createDeliveryHandler(options: DeliveryWorkerOptions): (message: QueueMessage) => Promise<void> {
  const { sql, box, queue } = options;
  const attemptsMax = options.retryDelaysMs.length + 1;
  const secretUnreadableGraceMs = options.secretUnreadableGraceMs ?? SECRET_UNREADABLE_GRACE_MS_DEFAULT;
  const breakerFor = breakers(options);
  const bulkhead = createEndpointBulkhead(options.endpointConcurrency ?? ENDPOINT_CONCURRENCY_DEFAULT);
  const handler = async (message: QueueMessage) => {
    // A malformed message throws here: a counted failure (retry steps, then the DLQ).
    const delivery = parseDeliveryMessage(message.body);
    // From here a failure is the endpoint's (DeliveryAttemptFailed: the next step of the schedule) or the
    // database's or RabbitMQ's: those are retried later at the same step, never allowed to use up the schedule
    // or dead-letter an untried delivery without its final row and failure event.
    await retryLaterOnFailure(
      "Webhook delivery bookkeeping",
      () => handle(delivery, message),
      (error) => error instanceof DeliveryAttemptFailed,
    );
  };

  async function handle(delivery: DeliveryMessage, message: QueueMessage): Promise<void> {
    const lane = laneQueueOf(laneOf(delivery.deliveryId));
    const cycle = Number(message.headers[CYCLE_HEADER] ?? "0");
    const unreadableSince = unreadableSinceOf(message);
    // A restarted schedule (below), or a delivery whose secret did not open (secretUnreadable), is republished to
    // the lane, where it arrives at attempt 1 at once. It is sent on to the first retry queue untried, so its next
    // try waits the first retry delay like any retry (holding no prefetch slot meanwhile) instead of following the
    // last one immediately. No row: nothing was attempted.
    const deferrals = deferralsOf(message);
    if ((cycle > 0 || unreadableSince !== undefined || deferrals > 0) && message.attempt === 1 && attemptsMax > 1) {
      const why = cycle > 0
        ? `Schedule restarted (cycle ${cycle})`
        : unreadableSince !== undefined
        ? "Signing secret did not open"
        : `Endpoint busy (deferral ${deferrals})`;
      throw new DeliveryAttemptFailed(`${why}: waiting for the first retry delay`);
    }
    const history = await historyOf(sql, delivery.deliveryId);
    if (history.terminal) {
      // Redelivered after the final attempt was committed but before it reached the DLQ: finish the move.
      if (history.terminal.final) await deadLetter(queue, lane, message, history.terminal.error, history.failures);
      return;
    }
    const target = await deliveryTargetOf(sql, box, delivery.subscriptionId);
    // Deleted or disabled since the event was dispatched: nothing to send (an unknown id cannot be recorded).
    if (!target) {
      return log.warn("webhook delivery for an unknown subscription dropped", { ...delivery, body: undefined });
    }
    const attemptNumber = history.failures + 1;
    const record = (tx: SqlExecutor, result: AttemptResult, final = false) =>
      insertAttempt(tx, delivery, attemptNumber, result, final);
    if (target.status !== "ACTIVE") {
      const error = `Subscription is ${target.status.toLowerCase()}`;
      await record(sql, { outcome: "SKIPPED", httpStatus: null, error, durationMs: 0 });
      return;
    }
    if (target.secretsError !== undefined) {
      const unreadable = { error: target.secretsError, since: unreadableSince };
      return await secretUnreadable(delivery, message, lane, unreadable, history.failures, record);
    }
    const endpoint = endpointOf(target.url);
    const result = await bulkhead.tryRun(
      endpoint,
      () => attempt(target.url, target.secrets, delivery, breakerFor(target.url), options),
    );
    if (result === ENDPOINT_FULL) {
      // Parking goes back through the lane and the first retry queue, so the delivery comes back at step 2: for a
      // delivery at step 1 or 2 that is where it was going anyway, but one further along its schedule would have its
      // later, longer delays cut short (diff review). It, and a schedule without retries (no retry queue to park in),
      // waits the work queue's retry-later delay at the same step instead, holding its prefetch slot meanwhile.
      if (attemptsMax === 1 || message.attempt > 2) {
        throw new RetryLaterError(`Webhook endpoint ${endpoint} is busy: delivered again later`);
      }
      if (await deferDelivery(queue, lane, message)) return;
      attemptsTotal.inc({ outcome: "FAILED" });
      const error = endpointBusyError(endpoint, bulkhead.limit);
      const busy = { outcome: "FAILED", httpStatus: null, error, durationMs: 0 } as const;
      return await failForGood(delivery, message, lane, busy, history.failures + 1, record);
    }
    attemptsTotal.inc({ outcome: result.outcome });
    if (result.outcome !== "CIRCUIT_OPEN" && attemptNumber > 1) retryAttemptsTotal.inc();
    if (result.outcome === "DELIVERED") return void await record(sql, result);
    if (result.outcome === "GONE") {
      await sql.transaction(async (tx) => {
        await record(tx, result);
        await disableSubscription(tx, target.id, "The endpoint answered 410 Gone");
      });
      log.info("webhook subscription disabled: endpoint answered 410", { subscriptionId: target.id });
      return;
    }
    const failures = history.failures + (result.outcome === "FAILED" ? 1 : 0);
    // Only real requests use up the budget. An open circuit defers the delivery to the next step; if it was
    // the last step, the message starts the schedule again (at most CYCLES_MAX times) instead of dying
    // untried. Past that, or after attemptsMax real failures, it is dead-lettered.
    if (failures < attemptsMax && !(message.attempt >= attemptsMax && cycle >= CYCLES_MAX)) {
      await record(sql, result);
      if (message.attempt < attemptsMax) throw new DeliveryAttemptFailed(result.error ?? "Delivery failed");
      await queue.publish(lane, message.body, {
        id: message.id,
        headers: { ...message.headers, [CYCLE_HEADER]: String(cycle + 1) },
      });
      return;
    }
    await failForGood(delivery, message, lane, result, failures, record);
  }

  /**
   * The subscription's secret does not open with this process's keys. During a rolling change of the secrets key
   * another instance (or this one, restarted) may already have the key that sealed it, and a moment later the
   * delivery would go out: so for `secretUnreadableGraceMs` it is handed back, republished to its lane with the
   * time it first failed to open (header), from where it goes on untried to the first retry queue (see handle()).
   * It waits there holding no prefetch slot, and whichever instance takes it next tries again. Past the window
   * the key is taken to be missing (not being rolled out): the delivery fails for good, for the operator to see.
   * The header stays on the message for the rest of its life (a copy never drops a header), so a secret that stops
   * opening again later in the same delivery's life counts from the first time; a delivery lives a few hours.
   */
  async function secretUnreadable(
    delivery: DeliveryMessage,
    message: QueueMessage,
    lane: string,
    unreadable: { readonly error: string; readonly since: number | undefined },
    failures: number,
    record: (tx: SqlExecutor, result: AttemptResult, final?: boolean) => Promise<boolean>,
  ): Promise<void> {
    const now = Date.now();
    const since = unreadable.since ?? now;
    // Ids and the reason only: the reason is the key check's error text, never the secret.
    const fields = {
      deliveryId: delivery.deliveryId,
      subscriptionId: delivery.subscriptionId,
      unreadableForMs: now - since,
      graceMs: secretUnreadableGraceMs,
      error: unreadable.error,
    };
    if (now - since < secretUnreadableGraceMs && attemptsMax > 1) {
      log.warn(
        "webhook delivery cannot be signed: its secret does not open with this process's keys; tried again later",
        fields,
      );
      await queue.publish(lane, message.body, {
        id: message.id,
        headers: { ...message.headers, [SECRET_UNREADABLE_SINCE_HEADER]: String(since) },
      });
      return;
    }
    log.error(
      "webhook delivery cannot be signed: its secret did not open within the grace window; moved to the DLQ",
      fields,
    );
    attemptsTotal.inc({ outcome: "FAILED" });
    const result = { outcome: "FAILED", httpStatus: null, error: unreadable.error, durationMs: 0 } as const;
    await failForGood(delivery, message, lane, result, failures + 1, record);
  }

  /** The final attempt row and the failure event (one transaction), then the DLQ; a racing copy's row wins. */
  async function failForGood(
    delivery: DeliveryMessage,
    message: QueueMessage,
    lane: string,
    result: AttemptResult,
    failures: number,
    record: (tx: SqlExecutor, result: AttemptResult, final?: boolean) => Promise<boolean>,
  ): Promise<void> {
    const error = result.error ?? "Delivery failed";
    const recorded = await sql.transaction(async (tx) => {
      if (!(await record(tx, result, true))) return false;
      await appendToOutbox(
        tx,
        envelopeFor(webhookDeliveryFailed, {
          subscriptionId: delivery.subscriptionId,
          eventId: delivery.eventId,
          attempts: failures,
          lastError: error,
        }, PRODUCER),
      );
      return true;
    });
    if (!recorded) {
      // A racing copy wrote the terminal row since our history read. Only its own final failure belongs in
      // the DLQ (finishing its move, as a redelivery would); if it delivered, or the endpoint answered 410,
      // or the subscription was skipped, this copy's failure is moot: ack it.
      const now = await historyOf(sql, delivery.deliveryId);
      if (now.terminal?.final) await deadLetter(queue, lane, message, now.terminal.error, now.failures);
      return;
    }
    options.nudgeOutbox();
    log.warn("webhook delivery failed for good; moved to the DLQ", {
      deliveryId: delivery.deliveryId,
      subscriptionId: delivery.subscriptionId,
      attempts: failures,
      error,
    });
    await deadLetter(queue, lane, message, error, failures);
  }
  return handler;
}

/** When the delivery's secret first failed to open (secretUnreadable), or undefined. */
function unreadableSinceOf(message: QueueMessage): number | undefined {
  const since = Number(message.headers[SECRET_UNREADABLE_SINCE_HEADER]);
  return Number.isSafeInteger(since) && since > 0 ? since : undefined;
}

/** Stores the message in the lane's DLQ (confirmed) with the port's dead-letter headers; then it is acked. */
async function deadLetter(
  queue: WorkQueue,
  lane: string,
  message: QueueMessage,
  error: string | null,
  attempts: number,
): Promise<void> {
  await queue.publish(dlqQueueOf(lane), message.body, {
    id: message.id,
    headers: { ...message.headers, "x-bv-error": error ?? "Delivery failed", "x-bv-attempts": String(attempts) },
  });
}

async function attempt(
  url: string,
  secrets: readonly string[],
  delivery: { readonly deliveryId: string; readonly body: string },
  breaker: CircuitBreakerPolicy,
  options: Pick<DeliveryWorkerOptions, "deliveryTimeoutMs" | "egress" | "resolveHost">,
): Promise<AttemptResult> {
  const started = performance.now();
  const durationMs = () => Math.round(performance.now() - started);
  // One deadline for the whole attempt: resolving and the POST share it, so an attempt (and the prefetch slot it
  // holds) never lasts much longer than deliveryTimeoutMs, however the time splits between DNS and the endpoint.
  const deadline = started + options.deliveryTimeoutMs;
  // Rounded up: at the start it is the whole timeout, and it is 0 only once the deadline has passed.
  const remainingMs = () => Math.max(0, Math.ceil(deadline - performance.now()));
  const timeoutError = `No answer within ${options.deliveryTimeoutMs} ms`;
  // Outside the breaker: no request is made, so the endpoint's health is not in question.
  const refusal = await destinationRefusalOf(url, {
    egress: options.egress,
    resolveHost: options.resolveHost,
    resolveTimeoutMs: Math.min(RESOLVE_TIMEOUT_MS_DEFAULT, remainingMs()),
  });
  if (refusal) return { outcome: "FAILED", httpStatus: null, error: refusal, durationMs: durationMs() };
  // Resolving used the whole budget: a timeout like the POST's, kept outside the breaker (nothing was sent).
  if (remainingMs() === 0) {
    const error = `${timeoutError} (resolving the destination used all of it; not sent)`;
    return { outcome: "FAILED", httpStatus: null, error, durationMs: durationMs() };
  }
  // Half-open: another delivery's trial request is in flight, and cockatiel would make this one wait for its
  // verdict while this attempt's deadline runs, so it would reach the endpoint with only what the wait left and
  // could time out against a healthy endpoint (a FAILED attempt that re-opens the circuit). It is treated as an
  // open circuit instead: no request, no attempt used, the slot freed at once. Checked with no await before
  // execute(), so the state cannot change in between.
  if (breaker.state === CircuitState.HalfOpen) return circuitOpen("Circuit half-open: a trial request is in flight");
  try {
    const status = await breaker.execute(async () => {
      const headers = await signatureHeaders(
        { webhookId: delivery.deliveryId, timestampSec: Math.floor(Date.now() / 1000), body: delivery.body },
        secrets,
      );
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "BitVelocity-Webhooks/1", ...headers },
        body: delivery.body,
        // Standard Webhooks: a redirect is a failure (the partner should update the URL), never followed. It is
        // also the egress policy's: a public URL answering 302 to http://169.254.169.254/ must not be fetched.
        redirect: "manual",
        // Whatever resolving left of the attempt's deadline.
        signal: AbortSignal.timeout(remainingMs()),
      });
      // The body is not needed; cancelling it frees the connection at once.
      await response.body?.cancel().catch(() => undefined);
      // 410 is a deliberate answer from a healthy endpoint: it does not count against the circuit.
      if ((response.status < 200 || response.status > 299) && response.status !== 410) {
        throw new HttpStatusError(response.status);
      }
      return response.status;
    });
    return {
      outcome: status === 410 ? "GONE" : "DELIVERED",
      httpStatus: status,
      error: null,
      durationMs: durationMs(),
    };
  } catch (error) {
    if (error instanceof BrokenCircuitError) return circuitOpen("Circuit open: the endpoint failed repeatedly");
    if (error instanceof HttpStatusError) {
      return { outcome: "FAILED", httpStatus: error.status, error: error.message, durationMs: durationMs() };
    }
    const timedOut = error instanceof DOMException && error.name === "TimeoutError";
    const text = timedOut ? timeoutError : `Request failed: ${error instanceof Error ? error.message : String(error)}`;
    return { outcome: "FAILED", httpStatus: null, error: text.slice(0, ERROR_CHARS_MAX), durationMs: durationMs() };
  }
}

/** No request was made: the endpoint's circuit does not allow one now. */
function circuitOpen(error: string): AttemptResult {
  return { outcome: "CIRCUIT_OPEN", httpStatus: null, error, durationMs: 0 };
}

/** One breaker per endpoint URL, kept in LRU order and bounded. */
function breakers(options: DeliveryWorkerOptions): (url: string) => CircuitBreakerPolicy {
  const consecutiveFailures = options.breaker?.consecutiveFailures ?? 5;
  const halfOpenAfter = options.breaker?.halfOpenAfterMs ?? Math.min(30_000, options.retryDelaysMs[0] ?? 30_000);
  const byUrl = new Map<string, CircuitBreakerPolicy>();
  return (url) => {
    let breaker = byUrl.get(url);
    if (breaker) byUrl.delete(url);
    else {
      breaker = circuitBreaker(handleAll, { halfOpenAfter, breaker: new ConsecutiveBreaker(consecutiveFailures) });
      breaker.onBreak(() => log.warn("webhook endpoint circuit opened", { url, halfOpenAfterMs: halfOpenAfter }));
    }
    byUrl.set(url, breaker);
    if (byUrl.size > BREAKERS_MAX) byUrl.delete(byUrl.keys().next().value!);
    return breaker;
  };
}

/** Real failures so far, and the terminal row if the delivery is finished. */
async function historyOf(
  sql: SqlExecutor,
  deliveryId: string,
): Promise<{ failures: number; terminal: { final: boolean; error: string | null } | undefined }> {
  const rows = await sql.query<{ outcome: string; final: boolean; error: string | null }>`
    select outcome, final, error from webhook_delivery_attempts where delivery_id = ${deliveryId} order by id`;
  const terminal = rows.find((r) => r.final || ["DELIVERED", "GONE", "SKIPPED"].includes(r.outcome));
  return { failures: rows.filter((r) => r.outcome === "FAILED").length, terminal };
}

/** Records one attempt; resolves false when a terminal row existed already (a racing duplicate). */
async function insertAttempt(
  tx: SqlExecutor,
  delivery: { deliveryId: string; subscriptionId: string; eventId: string; eventType: string },
  attemptNumber: number,
  result: { outcome: string; httpStatus: number | null; error: string | null; durationMs: number },
  final: boolean,
): Promise<boolean> {
  const rows = await tx.query`
    insert into webhook_delivery_attempts
      (delivery_id, subscription_id, event_id, event_type, attempt, outcome, final, http_status, error, duration_ms)
    values (${delivery.deliveryId}, ${delivery.subscriptionId}, ${delivery.eventId}, ${delivery.eventType},
            ${attemptNumber}, ${result.outcome}, ${final}, ${result.httpStatus}, ${
    result.error?.slice(0, ERROR_CHARS_MAX) ?? null
  },
            ${result.durationMs})
    on conflict do nothing returning id`;
  return rows.length > 0;
}
