/**
 * @module
 * Starts partner webhooks in a region: declares the delivery lanes, starts the delivery worker and the
 * dispatcher, and answers the subscriptions API routes. The caller owns the ports (and closes them).
 */
import type { Hono } from "hono";
import type { TokenVerifier } from "../../../shared/auth/verifier.ts";
import { WEBHOOK_SECRETS_KEY_DEV_DEFAULT } from "../../../shared/config/config.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { EventLog, Sql, WorkQueue } from "../../../shared/ports/mod.ts";
import { declareDeliveryQueues, DEFAULT_RETRY_DELAYS_MS } from "./delivery_queues.ts";
import { type BreakerOptions, startDeliveryWorker } from "./delivery_worker.ts";
import { startDispatcher } from "./dispatcher.ts";
import { ENDPOINT_CONCURRENCY_DEFAULT } from "./endpoint_bulkhead.ts";
import { EGRESS_VARIABLE, type WebhookEgress } from "./egress_policy.ts";
import { createWebhookRoutes } from "./routes.ts";
import { createSecretBox } from "./secret_box.ts";

/** Standard Webhooks recommends 15 to 30 s for a receiver to answer. */
export const DEFAULT_DELIVERY_TIMEOUT_MS = 15_000;
/** A rotated-out secret keeps signing for a day, time for the partner to deploy the new one. */
export const DEFAULT_SECRET_OVERLAP_MS = 24 * 60 * 60_000;

export interface WebhooksDeps {
  readonly sql: Sql;
  readonly eventLog: EventLog;
  readonly queue: WorkQueue;
  readonly verifier: TokenVerifier;
  /** Wakes the outbox relay after the failure event was committed. */
  readonly nudgeOutbox: () => void;
  /** Names the dispatcher's consumer group: `ecommerce-<region>.webhooks`. */
  readonly region: string;
  /** The retry schedule. @default 30 s, 2 m, 5 m, 15 m, 30 m (tests pass milliseconds) */
  readonly retryDelaysMs?: readonly number[];
  /** Bound on one POST to a partner. @default 15000 */
  readonly deliveryTimeoutMs?: number;
  /** AES-256-GCM key (base64 of 32 bytes) sealing secrets at rest. @default none: stored as "plain:" (warned) */
  readonly secretsKey?: string;
  /** The key `secretsKey` replaced: still opens the secrets it sealed (a key rotation). @default none */
  readonly previousSecretsKey?: string;
  /** How long a delivery whose secret does not open is tried again before it fails for good. @default 10 min */
  readonly secretUnreadableGraceMs?: number;
  /** @default 24 h */
  readonly secretOverlapMs?: number;
  readonly breaker?: BreakerOptions;
  /**
   * Attempts in flight per destination origin in this process (`BV_WEBHOOK_ENDPOINT_CONCURRENCY`); a delivery whose
   * endpoint is full waits the first retry delay without using an attempt. @default 4
   */
  readonly endpointConcurrency?: number;
  /** Deliveries in flight per lane (4 lanes). @default 16 */
  readonly prefetch?: number;
  /** Where a new dispatcher group starts. @default "latest" */
  readonly from?: "earliest" | "latest";
  /**
   * Which destinations may be subscribed and delivered to (`BV_WEBHOOK_EGRESS`): `public` refuses loopback,
   * private, link-local (cloud metadata) and other non-public addresses; `any` is for development (a warning is
   * logged). No default: the wiring passes the configured value.
   */
  readonly egress: WebhookEgress;
}

export interface Webhooks {
  readonly routes: Hono;
  /** Resolves once the dispatcher joined its group (events published afterwards are dispatched). */
  readonly ready: Promise<void>;
  /**
   * Stops the dispatcher and the workers: deliveries in flight may finish (up to the delivery timeout), the
   * others return to their queues untried.
   */
  close(): Promise<void>;
}

export async function startWebhooks(deps: WebhooksDeps): Promise<Webhooks> {
  const retryDelaysMs = deps.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  const deliveryTimeoutMs = deps.deliveryTimeoutMs ?? DEFAULT_DELIVERY_TIMEOUT_MS;
  if (retryDelaysMs.length > 20 || retryDelaysMs.some((ms) => !Number.isSafeInteger(ms) || ms < 1)) {
    throw new RangeError(`startWebhooks() "retryDelaysMs" must be at most 20 positive integers, got ${retryDelaysMs}`);
  }
  if (!Number.isSafeInteger(deliveryTimeoutMs) || deliveryTimeoutMs < 100 || deliveryTimeoutMs > 60_000) {
    throw new RangeError(`startWebhooks() "deliveryTimeoutMs" must be 100 to 60000, got ${deliveryTimeoutMs}`);
  }
  const endpointConcurrency = deps.endpointConcurrency ?? ENDPOINT_CONCURRENCY_DEFAULT;
  if (!Number.isSafeInteger(endpointConcurrency) || endpointConcurrency < 1 || endpointConcurrency > 1_000) {
    throw new RangeError(`startWebhooks() "endpointConcurrency" must be 1 to 1000, got ${endpointConcurrency}`);
  }
  if (!/^[a-z0-9_-]{1,64}$/i.test(deps.region)) {
    throw new TypeError(`startWebhooks() "region" must be a short name such as "east", got "${deps.region}"`);
  }
  if (deps.egress !== "public" && deps.egress !== "any") {
    throw new TypeError(`startWebhooks() "egress" must be "public" or "any", got "${deps.egress}"`);
  }
  if (deps.egress === "any") {
    log.warn(
      'webhook egress is "any": deliveries may reach loopback, private and cloud metadata addresses; ' +
        `set ${EGRESS_VARIABLE}=public anywhere partners are not trusted`,
      { region: deps.region },
    );
  }
  const box = await createSecretBox(deps.secretsKey, deps.previousSecretsKey);
  if (!box.encrypted) log.warn("webhook secrets are stored unencrypted: pass a secretsKey to seal them at rest");
  if (deps.secretsKey === WEBHOOK_SECRETS_KEY_DEV_DEFAULT) {
    // The default is committed to the repository: anyone can open secrets sealed with it.
    log.warn(
      "webhook secrets are sealed with the committed development key: set BV_WEBHOOK_SECRETS_KEY " +
        "(openssl rand -base64 32) anywhere partners are real, with the current key as BV_WEBHOOK_SECRETS_KEY_PREVIOUS",
      { region: deps.region },
    );
  }

  await declareDeliveryQueues(deps.queue, retryDelaysMs);
  const workers = await startDeliveryWorker({
    sql: deps.sql,
    queue: deps.queue,
    box,
    nudgeOutbox: deps.nudgeOutbox,
    retryDelaysMs,
    deliveryTimeoutMs,
    breaker: deps.breaker,
    egress: deps.egress,
    secretUnreadableGraceMs: deps.secretUnreadableGraceMs,
    endpointConcurrency,
    prefetch: deps.prefetch,
  });
  const dispatcher = await startDispatcher({
    sql: deps.sql,
    eventLog: deps.eventLog,
    queue: deps.queue,
    groupId: `ecommerce-${deps.region}.webhooks`,
    from: deps.from,
  });
  const routes = createWebhookRoutes({
    sql: deps.sql,
    verifier: deps.verifier,
    box,
    secretOverlapMs: deps.secretOverlapMs ?? DEFAULT_SECRET_OVERLAP_MS,
    egress: deps.egress,
  });
  let closed = false;
  return {
    routes,
    ready: dispatcher.ready,
    close: async () => {
      if (closed) return;
      closed = true;
      await dispatcher.close();
      await workers.stop();
    },
  };
}
