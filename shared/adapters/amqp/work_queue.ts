/**
 * @module
 * The work-queue port on RabbitMQ (amqplib). Publishing uses a confirm channel (persistent, mandatory,
 * resolved on the broker's ack); queues are durable; delayed retry uses one queue per distinct delay,
 * `<name>.retry-q.<ms>`, with a per-queue TTL that dead-letters back to `<name>`. Delivery is at least once:
 * consumers must be idempotent by message id. The connection is re-established with capped backoff and
 * consumers re-attached after a broker restart.
 */

import type { ConsumeOptions, ConsumerHandle, QueueMessage, QueueSpec, WorkQueue } from "../../ports/work_queue.ts";
import { dlqQueueOf, retryLaterDelayOf } from "../../ports/work_queue.ts";
import {
  type AmqpConnection,
  type ConfirmedPublish,
  confirmedPublisher,
  ConfirmTimeoutError,
  connectAmqp,
  ignoreErrorEvents,
  quietly,
  UnroutableError,
} from "./_amqplib.ts";
import { AmqpConsumer, retryQueueOf } from "./_consumer.ts";

/** Options for {@linkcode createAmqpWorkQueue}. */
export interface AmqpWorkQueueOptions {
  /** `amqp://user:password@host:port/vhost`; a `heartbeat` query parameter overrides the default 10 s. */
  readonly url: string;
  /** Bound on one connection attempt, and on how long declare()/consume() wait for a connection. @default 5000 */
  readonly connectTimeoutMs?: number;
  /** Bound on publish(): waiting for a connection during an outage plus the broker's confirm. @default 10000 */
  readonly publishTimeoutMs?: number;
}

const connectTimeoutMsDefault = 5_000;
const publishTimeoutMsDefault = 10_000;
/** Dead-peer detection: with 10 s heartbeats a silent broker is noticed within ~20 s. */
const heartbeatSecondsDefault = 10;
/** Reconnect backoff: 100 ms doubling to 3 s, with jitter so a fleet does not reconnect in lockstep. */
const reconnectDelayMsMin = 100;
const reconnectDelayMsMax = 3_000;
/** Pause between publish attempts after the channel dropped, while the reconnect is under way. */
const publishRetryPauseMs = 50;
/** @default 10, as the port documents; AMQP's prefetch-count is an unsigned short. */
const prefetchDefault = 10;
const prefetchMax = 65_535;
/** Retries per queue: each distinct delay is a queue on the broker. */
const retriesMax = 25;

/** Creates a {@linkcode WorkQueue} on RabbitMQ. Connects in the background at once. */
export function createAmqpWorkQueue(options: AmqpWorkQueueOptions): WorkQueue {
  return new AmqpWorkQueue(options);
}

class AmqpWorkQueue implements WorkQueue {
  readonly #url: string;
  readonly #connectTimeoutMs: number;
  readonly publishTimeoutMs: number;
  #connection: AmqpConnection | undefined;
  #publish: ConfirmedPublish | undefined;
  #connected = deferred();
  #lastError: unknown;
  #closed = false;
  readonly #declared = new Map<string, readonly number[]>();
  readonly #consumers = new Set<AmqpConsumer>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  /** Pending #pause() calls, released by close() so nothing waits on a cleared timer. */
  readonly #pauses = new Set<() => void>();

  constructor(options: AmqpWorkQueueOptions) {
    this.#url = withDefaultHeartbeat(options.url);
    this.#connectTimeoutMs = options.connectTimeoutMs ?? connectTimeoutMsDefault;
    this.publishTimeoutMs = options.publishTimeoutMs ?? publishTimeoutMsDefault;
    void this.#connectLoop();
  }

  async declare(spec: QueueSpec): Promise<void> {
    const retryDelaysMs = validSpec(spec);
    const connection = await this.#whenConnected(this.#connectTimeoutMs);
    await assertTopology(connection, spec.name, retryDelaysMs);
    this.#declared.set(spec.name, retryDelaysMs);
  }

  async publish(
    queue: string,
    body: string,
    options?: { readonly id?: string; readonly headers?: Readonly<Record<string, string>> },
  ): Promise<void> {
    this.#assertOpen();
    const message = { id: options?.id ?? crypto.randomUUID(), headers: { ...options?.headers } };
    const deadlineMs = Date.now() + this.publishTimeoutMs;
    for (;;) {
      try {
        await this.#whenConnected(deadlineMs - Date.now());
        return await this.#publish!(queue, body, message, Math.max(1, deadlineMs - Date.now()));
      } catch (error) {
        if (error instanceof UnroutableError || this.#closed) throw error;
        if (error instanceof ConfirmTimeoutError || Date.now() >= deadlineMs) {
          throw new Error(
            `Publish of message "${message.id}" to queue "${queue}" was not confirmed within ` +
              `${this.publishTimeoutMs} ms: ${errorText(error)}`,
            { cause: error },
          );
        }
        // The channel closed before the confirm (broker restart): publish again once reconnected. The
        // first copy may have been stored, so this can duplicate, never lose.
        await this.#pause(Math.min(publishRetryPauseMs, deadlineMs - Date.now()));
      }
    }
  }

  async consume(
    queue: string,
    handler: (message: QueueMessage) => Promise<void>,
    options?: ConsumeOptions,
  ): Promise<ConsumerHandle> {
    const prefetch = options?.prefetch ?? prefetchDefault;
    if (!Number.isSafeInteger(prefetch) || prefetch < 1 || prefetch > prefetchMax) {
      throw new RangeError(`consume() "prefetch" must be an integer from 1 to ${prefetchMax}, got ${prefetch}`);
    }
    const retryDelaysMs = this.#declared.get(queue);
    if (!retryDelaysMs) {
      throw new Error(
        `Queue "${queue}" was not declared by this work queue: call declare({ name, retryDelaysMs }) first`,
      );
    }
    const consumer = new AmqpConsumer(this, queue, retryDelaysMs, prefetch, handler, retryLaterDelayOf(options));
    // Registered before starting, so a reconnect during the start re-attaches it too.
    this.#consumers.add(consumer);
    try {
      await consumer.start(await this.#whenConnected(this.#connectTimeoutMs));
    } catch (error) {
      this.#consumers.delete(consumer);
      await consumer.cancel();
      throw error;
    }
    return {
      cancel: async () => {
        this.#consumers.delete(consumer);
        await consumer.cancel();
      },
    };
  }

  async ping(timeoutMs: number): Promise<void> {
    const deadlineMs = Date.now() + timeoutMs;
    const connection = await this.#whenConnected(timeoutMs);
    // Opening a channel is a round trip to the broker.
    const opening = connection.createChannel();
    const remainingMs = Math.max(1, deadlineMs - Date.now());
    const channel = await withTimeout(opening, remainingMs, `RabbitMQ did not open a channel within ${timeoutMs} ms`)
      .catch((error) => {
        opening.then((late) => quietly(() => late.close()), () => undefined);
        throw error;
      });
    await quietly(() => channel.close());
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const release of this.#pauses) release();
    this.#connected.reject(new Error("Work queue is closed"));
    await Promise.all([...this.#consumers].map((consumer) => consumer.cancel()));
    this.#consumers.clear();
    const connection = this.#connection;
    this.#connection = undefined;
    this.#publish = undefined;
    if (connection) await quietly(() => connection.close());
  }

  // ConsumerHost
  currentConnection(): AmqpConnection | undefined {
    return this.#connection;
  }

  later(action: () => void, delayMs: number): void {
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      action();
    }, delayMs);
    this.#timers.add(timer);
  }

  warn(message: string, error?: unknown): void {
    console.warn(`[amqp work queue] ${message}${error === undefined ? "" : `: ${errorText(error)}`}`);
  }

  async #connectLoop(): Promise<void> {
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        await this.#connectOnce();
        if (attempt > 0) this.warn(`Reconnected after ${attempt} failed attempt(s)`);
        return;
      } catch (error) {
        this.#lastError = error;
        const delayMs = Math.min(reconnectDelayMsMin * 2 ** Math.min(attempt, 16), reconnectDelayMsMax);
        await this.#pause(delayMs * (0.5 + Math.random() / 2));
      }
    }
  }

  async #connectOnce(): Promise<void> {
    const connection = await connectAmqp(this.#url, { timeout: this.#connectTimeoutMs });
    let lost = false;
    ignoreErrorEvents(connection);
    connection.on("error", (error: unknown) => this.#lastError = error);
    connection.on("close", () => {
      lost = true;
      this.#onConnectionLost(connection);
    });
    connection.on("blocked", (reason: unknown) => this.warn(`Broker blocked publishing (${reason})`));
    try {
      const publisher = await connection.createConfirmChannel();
      ignoreErrorEvents(publisher);
      // A failed publishing channel is rare (it only uses the default exchange); recover through a full
      // reconnect rather than a second recovery path.
      publisher.on("close", () => void quietly(() => connection.close()));
      // Re-declare after a restart: durable queues survive, but a broker rebuilt from scratch would not have them.
      for (const [name, retryDelaysMs] of this.#declared) await assertTopology(connection, name, retryDelaysMs);
      if (lost) throw new Error("Connection closed while it was being set up");
      if (this.#closed) return await quietly(() => connection.close());
      this.#connection = connection;
      this.#publish = confirmedPublisher(publisher);
    } catch (error) {
      await quietly(() => connection.close());
      throw error;
    }
    this.#connected.resolve();
    for (const consumer of this.#consumers) {
      consumer.start(connection).catch((error) => {
        this.warn("Cannot re-attach a consumer after reconnecting; reconnecting again", error);
        void quietly(() => connection.close());
      });
    }
  }

  #onConnectionLost(connection: AmqpConnection): void {
    if (this.#connection !== connection || this.#closed) return;
    this.#connection = undefined;
    this.#publish = undefined;
    this.#connected = deferred();
    this.warn(`Connection lost (${errorText(this.#lastError)}); reconnecting`);
    void this.#connectLoop();
  }

  /** The live connection; while reconnecting, waits up to `timeoutMs` for it. */
  async #whenConnected(timeoutMs: number): Promise<AmqpConnection> {
    this.#assertOpen();
    if (!this.#connection) {
      await withTimeout(
        this.#connected.promise,
        Math.max(0, timeoutMs),
        () => `RabbitMQ is unreachable: not connected within ${timeoutMs} ms (${errorText(this.#lastError)})`,
      );
    }
    if (!this.#connection) throw new Error(`RabbitMQ connection dropped again (${errorText(this.#lastError)})`);
    return this.#connection;
  }

  #pause(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#closed) return resolve();
      const release = () => {
        this.#pauses.delete(release);
        resolve();
      };
      this.#pauses.add(release);
      this.later(release, Math.max(0, delayMs));
    });
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error("Work queue is closed: create a new one");
  }
}

/** Declares `name`, its DLQ and one retry queue per distinct delay, all durable. Idempotent. */
async function assertTopology(connection: AmqpConnection, name: string, retryDelaysMs: readonly number[]) {
  // A separate channel: a declaration refused by the broker (PRECONDITION_FAILED) closes its channel.
  const channel = await connection.createChannel();
  ignoreErrorEvents(channel);
  try {
    await channel.assertQueue(name, { durable: true });
    await channel.assertQueue(dlqQueueOf(name), { durable: true });
    for (const delayMs of new Set(retryDelaysMs)) {
      // Per-queue TTL (not per-message): every message in this queue waits the same time, so the head is
      // always the next to expire and dead-letter back to `name` through the default exchange.
      // A quorum queue with at-least-once dead-lettering: a classic queue moves an expired message to its
      // dead-letter target at most once, so a broker stopping mid-move could lose a parked retry (seen once
      // in CI: webhooks_restart_test's heavy variant, one delivery's retry never came back). At-least-once
      // dead-lettering keeps the message until the target queue confirmed it; it needs `reject-publish`.
      await channel.assertQueue(retryQueueOf(name, delayMs), {
        durable: true,
        arguments: {
          "x-queue-type": "quorum",
          "x-message-ttl": delayMs,
          "x-dead-letter-exchange": "",
          "x-dead-letter-routing-key": name,
          "x-dead-letter-strategy": "at-least-once",
          "x-overflow": "reject-publish",
        },
      });
    }
  } finally {
    await quietly(() => channel.close());
  }
}

function validSpec(spec: QueueSpec): readonly number[] {
  if (!spec.name || spec.name.length > 200) {
    throw new TypeError(`Queue name must be 1 to 200 characters, got "${spec.name}"`);
  }
  const retryDelaysMs = [...spec.retryDelaysMs ?? []];
  if (retryDelaysMs.length > retriesMax) {
    throw new RangeError(`Queue "${spec.name}" asks for ${retryDelaysMs.length} retries; at most ${retriesMax}`);
  }
  for (const delayMs of retryDelaysMs) {
    if (!Number.isSafeInteger(delayMs) || delayMs < 1) {
      throw new RangeError(`Queue "${spec.name}" retry delays must be positive integers (ms), got ${delayMs}`);
    }
  }
  return Object.freeze(retryDelaysMs);
}

function withDefaultHeartbeat(url: string): string {
  if (/[?&]heartbeat=/.test(url)) return url;
  return `${url}${url.includes("?") ? "&" : "?"}heartbeat=${heartbeatSecondsDefault}`;
}

function errorText(error: unknown): string {
  if (error === undefined) return "no error recorded";
  return error instanceof Error ? error.message : String(error);
}

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody may be waiting when close() rejects it.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: string | (() => string)): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(typeof message === "string" ? message : message())), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
