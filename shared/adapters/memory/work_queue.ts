/**
 * @module
 * The work-queue port in process, with the RabbitMQ adapter's semantics: declared queues with a `.dlq`,
 * retries after per-attempt delays (timers instead of TTL queues), per-consumer prefetch, unacked
 * messages handed back when a consumer is cancelled, and the same `x-bv-*` headers. One instance is one
 * broker; nothing survives the process, so it is for development and tests only.
 */

import type { ConsumerHandle, QueueMessage, QueueSpec, WorkQueue } from "../../ports/work_queue.ts";
import { dlqQueueOf, retryLaterDelayOf, RetryLaterError } from "../../ports/work_queue.ts";

/** Options for {@linkcode createMemoryWorkQueue}. */
export interface MemoryWorkQueueOptions {
  /**
   * Messages waiting in one queue at most; publish() rejects beyond it. Retries and dead-lettering are
   * not refused (that would lose a message already accepted): they are bounded by messages in flight. So that
   * an unconsumed dead-letter queue cannot grow for as long as the process runs, publish() to a queue also
   * rejects while its DLQ holds this many: pushback, as RabbitMQ blocks publishers at its memory alarm,
   * rather than dropping dead letters. A DLQ thus holds at most about twice this many plus the prefetch.
   * @default 10000
   */
  readonly maxQueueLength?: number;
}

const maxQueueLengthDefault = 10_000;
const prefetchDefault = 10;
const prefetchMax = 65_535;
const retriesMax = 25;
const errorHeaderCharsMax = 1_000;

interface StoredMessage {
  readonly id: string;
  readonly body: string;
  /** User headers plus x-bv-error / x-bv-attempts; the attempt travels separately. */
  readonly headers: Readonly<Record<string, string>>;
  readonly attempt: number;
}

interface QueueState {
  readonly name: string;
  /** Undefined for a queue that exists (a DLQ) but was not declared itself, so cannot be consumed. */
  retryDelaysMs: readonly number[] | undefined;
  readonly ready: StoredMessage[];
  readonly consumers: Consumer[];
  nextConsumer: number;
}

interface Consumer {
  readonly queue: QueueState;
  readonly prefetch: number;
  readonly handler: (message: QueueMessage) => Promise<void>;
  readonly inFlight: Set<Delivery>;
  readonly retryLaterDelayMs: number;
}

interface Delivery {
  readonly message: StoredMessage;
  /** Set once acked, moved on or handed back; a late outcome of a handed-back delivery is ignored. */
  settled: boolean;
}

/** Creates an in-process {@linkcode WorkQueue}. */
export function createMemoryWorkQueue(options: MemoryWorkQueueOptions = {}): WorkQueue {
  const maxQueueLength = options.maxQueueLength ?? maxQueueLengthDefault;
  if (!Number.isSafeInteger(maxQueueLength) || maxQueueLength < 1) {
    throw new RangeError(`createMemoryWorkQueue() "maxQueueLength" must be a positive integer, got ${maxQueueLength}`);
  }
  const queues = new Map<string, QueueState>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let closed = false;

  function queueState(name: string): QueueState {
    let state = queues.get(name);
    if (!state) {
      state = { name, retryDelaysMs: undefined, ready: [], consumers: [], nextConsumer: 0 };
      queues.set(name, state);
    }
    return state;
  }

  function existing(name: string): QueueState {
    const state = queues.get(name);
    if (!state) throw new Error(`Queue "${name}" does not exist: declare it before publishing to it`);
    return state;
  }

  function assertOpen(): void {
    if (closed) throw new Error("Work queue is closed: create a new one");
  }

  /** Hands ready messages to consumers with free prefetch slots, round robin, as the broker does. */
  function dispatch(queue: QueueState): void {
    while (queue.ready.length > 0 && !closed) {
      const consumer = nextFreeConsumer(queue);
      if (!consumer) return;
      deliver(consumer, queue.ready.shift()!);
    }
  }

  function nextFreeConsumer(queue: QueueState): Consumer | undefined {
    for (let i = 0; i < queue.consumers.length; i++) {
      const consumer = queue.consumers[(queue.nextConsumer + i) % queue.consumers.length];
      if (consumer.inFlight.size < consumer.prefetch) {
        queue.nextConsumer = (queue.nextConsumer + i + 1) % queue.consumers.length;
        return consumer;
      }
    }
    return undefined;
  }

  function deliver(consumer: Consumer, message: StoredMessage): void {
    const delivery: Delivery = { message, settled: false };
    consumer.inFlight.add(delivery);
    const view: QueueMessage = {
      id: message.id,
      body: message.body,
      headers: { ...message.headers },
      attempt: message.attempt,
    };
    // Handlers run asynchronously, never inside publish() or dispatch().
    Promise.resolve().then(() => consumer.handler(view)).then(
      () => settle(consumer, delivery),
      (error) => {
        if (error instanceof RetryLaterError) return requeueLater(consumer, delivery);
        if (settle(consumer, delivery)) moveOn(consumer.queue, message, error);
      },
    );
  }

  /** Marks a delivery done and frees its slot; false when it was already handed back (consumer cancelled). */
  function settle(consumer: Consumer, delivery: Delivery): boolean {
    if (delivery.settled || closed) return false;
    delivery.settled = true;
    consumer.inFlight.delete(delivery);
    dispatch(consumer.queue);
    return true;
  }

  /**
   * Not the message's fault: it stays in flight (its prefetch slot held, as RabbitMQ's unacked message) for
   * the consumer's `retryLaterDelayMs`, then goes back to the head of the queue at the same attempt. A
   * consumer cancelled meanwhile has handed it back already.
   */
  function requeueLater(consumer: Consumer, delivery: Delivery): void {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!settle(consumer, delivery)) return;
      consumer.queue.ready.unshift(delivery.message);
      dispatch(consumer.queue);
    }, consumer.retryLaterDelayMs);
    timers.add(timer);
  }

  function moveOn(queue: QueueState, message: StoredMessage, error: unknown): void {
    const headers = { ...message.headers, "x-bv-error": describeError(error) };
    const delayMs = queue.retryDelaysMs?.[message.attempt - 1];
    if (delayMs === undefined) {
      const dlq = queueState(dlqQueueOf(queue.name));
      dlq.ready.push({ ...message, headers: { ...headers, "x-bv-attempts": String(message.attempt) }, attempt: 1 });
      return dispatch(dlq);
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      queue.ready.push({ ...message, headers, attempt: message.attempt + 1 });
      dispatch(queue);
    }, delayMs);
    timers.add(timer);
  }

  function cancel(consumer: Consumer): void {
    const queue = consumer.queue;
    const index = queue.consumers.indexOf(consumer);
    if (index < 0) return;
    queue.consumers.splice(index, 1);
    // Unacked messages go back to the head of the queue in their original order, as RabbitMQ requeues them.
    const handedBack = [...consumer.inFlight].map((delivery) => {
      delivery.settled = true;
      return delivery.message;
    });
    consumer.inFlight.clear();
    queue.ready.unshift(...handedBack);
    dispatch(queue);
  }

  return {
    declare: (spec) =>
      run(() => {
        const retryDelaysMs = validSpec(spec);
        queueState(spec.name).retryDelaysMs = retryDelaysMs;
        queueState(dlqQueueOf(spec.name));
      }),
    publish: (queueName, body, publishOptions) =>
      run(() => {
        const queue = existing(queueName);
        if (queue.ready.length >= maxQueueLength) {
          throw new Error(
            `Queue "${queueName}" is full (${maxQueueLength} messages waiting): consumers are behind; retry later`,
          );
        }
        const dlq = queues.get(dlqQueueOf(queueName));
        if (dlq !== undefined && dlq.ready.length >= maxQueueLength) {
          throw new Error(
            `Queue "${queueName}" refuses messages: its dead-letter queue "${dlq.name}" is full ` +
              `(${maxQueueLength} messages); consume it to make room`,
          );
        }
        const id = publishOptions?.id ?? crypto.randomUUID();
        queue.ready.push({ id, body, headers: { ...publishOptions?.headers }, attempt: 1 });
        queueMicrotask(() => dispatch(queue));
      }),
    consume: (queueName, handler, consumeOptions) =>
      run((): ConsumerHandle => {
        const prefetch = validPrefetch(consumeOptions?.prefetch ?? prefetchDefault);
        const retryLaterDelayMs = retryLaterDelayOf(consumeOptions);
        const queue = queues.get(queueName);
        if (!queue?.retryDelaysMs) {
          throw new Error(
            `Queue "${queueName}" was not declared by this work queue: call declare({ name, retryDelaysMs }) first`,
          );
        }
        const consumer: Consumer = { queue, prefetch, handler, inFlight: new Set(), retryLaterDelayMs };
        queue.consumers.push(consumer);
        queueMicrotask(() => dispatch(queue));
        return { cancel: () => Promise.resolve(cancel(consumer)) };
      }),
    ping: () => run(() => undefined),
    close() {
      if (!closed) {
        for (const queue of queues.values()) for (const consumer of [...queue.consumers]) cancel(consumer);
        closed = true;
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
      }
      return Promise.resolve();
    },
  };

  function run<T>(operation: () => T): Promise<T> {
    try {
      assertOpen();
      return Promise.resolve(operation());
    } catch (error) {
      return Promise.reject(error);
    }
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

function validPrefetch(prefetch: number): number {
  if (!Number.isSafeInteger(prefetch) || prefetch < 1 || prefetch > prefetchMax) {
    throw new RangeError(`consume() "prefetch" must be an integer from 1 to ${prefetchMax}, got ${prefetch}`);
  }
  return prefetch;
}

function describeError(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.length > errorHeaderCharsMax ? `${text.slice(0, errorHeaderCharsMax - 1)}…` : text;
}
