/**
 * @module
 * The work-queue port in process, with the RabbitMQ adapter's semantics: declared queues with a `.dlq`,
 * retries after per-attempt delays (timers instead of TTL queues), per-consumer prefetch, unacked
 * messages handed back when a consumer is cancelled, and the same `x-bv-*` headers. One instance is one
 * broker. With `dataDir` it is durable like RabbitMQ's durable queues and persistent messages: `publish()`
 * resolves once the message is journaled (the "confirm"), and acks, retries (with the time each is due) and
 * moves to the DLQ are journaled too, so every message not acked is back when the next process opens the
 * directory (see `_work_queue_journal.ts`). Without it nothing survives the process (tests).
 */

import type { ConsumerHandle, QueueMessage, QueueSpec, WorkQueue } from "../../ports/work_queue.ts";
import { dlqQueueOf, retryLaterDelayOf, RetryLaterError } from "../../ports/work_queue.ts";
import type { FileIo } from "./_jsonl_file.ts";
import { type JournaledMessage, type LiveMessage, WorkQueueJournal } from "./_work_queue_journal.ts";

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
  /**
   * Where to journal queues and messages, so that every message not acked survives a restart (the platform
   * uses `.data/embedded/<region>/queues`). One process at a time may open a directory. Without it nothing
   * survives the process.
   */
  readonly dataDir?: string;
  /**
   * fsync each journal write: survives power loss, not only a crashed process. Costs a disk flush per write
   * (writes queued meanwhile share it). @default false
   */
  readonly fsync?: boolean;
  /** Milliseconds since the epoch: when a retry is due, journaled so a restart keeps it. @default Date.now */
  readonly now?: () => number;
  /** Where warnings go (an ack or retry that could not be journaled). @default JSON lines on stderr */
  readonly warn?: (message: string, fields: Record<string, unknown>) => void;
  /** How the journal writes and cuts its file; tests make a write fail. @internal */
  readonly fileIo?: FileIo;
}

const maxQueueLengthDefault = 10_000;
const prefetchDefault = 10;
const prefetchMax = 65_535;
const retriesMax = 25;
const errorHeaderCharsMax = 1_000;

type StoredMessage = JournaledMessage;

interface QueueState {
  readonly name: string;
  /**
   * Undefined for a queue that exists (a DLQ, or one an earlier process declared) but was not declared by this
   * instance, so cannot be consumed.
   */
  retryDelaysMs: readonly number[] | undefined;
  readonly ready: StoredMessage[];
  /** Publishes being journaled: they count against `maxQueueLength` already. */
  publishing: number;
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

/** Creates an in-process {@linkcode WorkQueue}; with `dataDir` it first loads what an earlier process left there. */
export function createMemoryWorkQueue(options: MemoryWorkQueueOptions = {}): WorkQueue {
  const maxQueueLength = options.maxQueueLength ?? maxQueueLengthDefault;
  if (!Number.isSafeInteger(maxQueueLength) || maxQueueLength < 1) {
    throw new RangeError(`createMemoryWorkQueue() "maxQueueLength" must be a positive integer, got ${maxQueueLength}`);
  }
  const now = options.now ?? Date.now;
  const warn = options.warn ??
    ((message: string, fields: Record<string, unknown>) =>
      console.error(
        JSON.stringify({ time: new Date().toISOString(), level: "warn", source: "work-queue", message, ...fields }),
      ));
  const queues = new Map<string, QueueState>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let closed = false;
  let nextSeq = 1;
  const journal = options.dataDir === undefined
    ? undefined
    : new WorkQueueJournal(options.dataDir, { fsync: options.fsync ?? false, io: options.fileIo, warn });
  const opened = journal === undefined ? undefined : restore(journal);
  // Surfaced by the first call; an unobserved load failure must not crash the process on its own.
  opened?.catch(() => {});

  /** Brings back what the journal holds: queues, and every message not acked, as ready or waiting a retry. */
  async function restore(journal: WorkQueueJournal): Promise<void> {
    const contents = await journal.load();
    if (closed) return;
    nextSeq = contents.nextSeq;
    for (const name of contents.queues) {
      queueState(name);
      queueState(dlqQueueOf(name));
    }
    for (const { queue, message, dueAtMs } of contents.messages) {
      const state = queueState(queue);
      // A retry keeps the time it was due; one that fell due while the process was down is ready at once.
      if (dueAtMs !== undefined && dueAtMs > now()) later(() => enqueue(state, message), dueAtMs - now());
      else state.ready.push(message);
    }
  }

  function queueState(name: string): QueueState {
    let state = queues.get(name);
    if (!state) {
      state = { name, retryDelaysMs: undefined, ready: [], publishing: 0, consumers: [], nextConsumer: 0 };
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

  function assertRoom(queue: QueueState): void {
    if (queue.ready.length + queue.publishing >= maxQueueLength) {
      throw new Error(
        `Queue "${queue.name}" is full (${maxQueueLength} messages waiting): consumers are behind; retry later`,
      );
    }
    const dlq = queues.get(dlqQueueOf(queue.name));
    if (dlq !== undefined && dlq.ready.length >= maxQueueLength) {
      throw new Error(
        `Queue "${queue.name}" refuses messages: its dead-letter queue "${dlq.name}" is full ` +
          `(${maxQueueLength} messages); consume it to make room`,
      );
    }
  }

  /** Accepts a message: journaled first when durable, so `publish()` resolves only for one on disk. */
  async function accept(queue: QueueState, message: StoredMessage): Promise<void> {
    if (journal !== undefined) {
      queue.publishing++;
      try {
        await journal.add(queue.name, message);
      } finally {
        queue.publishing--;
      }
    }
    queue.ready.push(message);
    queueMicrotask(() => dispatch(queue));
  }

  function enqueue(queue: QueueState, message: StoredMessage): void {
    queue.ready.push(message);
    dispatch(queue);
  }

  function later(action: () => void, delayMs: number): void {
    const timer = setTimeout(() => {
      timers.delete(timer);
      action();
    }, delayMs);
    timers.add(timer);
  }

  /**
   * Journals an ack or a move without making anyone wait for it. One that fails leaves the message's earlier
   * line, so after a restart the message comes back as it was: a duplicate delivery, never a loss.
   */
  function journaled(write: Promise<void> | undefined, what: string, message: StoredMessage): void {
    write?.catch((error) =>
      warn(`Cannot journal ${what}; after a restart the message is delivered again`, {
        messageId: message.id,
        error: error instanceof Error ? error.message : String(error),
      })
    );
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
      () => {
        if (settle(consumer, delivery)) journaled(journal?.remove(message.seq), "an ack", message);
      },
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
   * consumer cancelled meanwhile has handed it back already. Nothing is journaled: it is still live.
   */
  function requeueLater(consumer: Consumer, delivery: Delivery): void {
    later(() => {
      if (!settle(consumer, delivery)) return;
      consumer.queue.ready.unshift(delivery.message);
      dispatch(consumer.queue);
    }, consumer.retryLaterDelayMs);
  }

  /** The next retry or the DLQ; either is one journal line replacing the message's earlier one. */
  function moveOn(queue: QueueState, message: StoredMessage, error: unknown): void {
    const headers = { ...message.headers, "x-bv-error": describeError(error) };
    const delayMs = queue.retryDelaysMs?.[message.attempt - 1];
    if (delayMs === undefined) {
      const dlq = queueState(dlqQueueOf(queue.name));
      const dead = { ...message, headers: { ...headers, "x-bv-attempts": String(message.attempt) }, attempt: 1 };
      journaled(journal?.update({ queue: dlq.name, message: dead }), `a move to "${dlq.name}"`, message);
      return enqueue(dlq, dead);
    }
    const retry = { ...message, headers, attempt: message.attempt + 1 };
    const live: LiveMessage = { queue: queue.name, message: retry, dueAtMs: now() + delayMs };
    journaled(journal?.update(live), `retry ${retry.attempt}`, message);
    later(() => enqueue(queue, retry), delayMs);
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

  function declare(spec: QueueSpec): Promise<void> {
    return run(() => {
      const retryDelaysMs = validSpec(spec);
      const apply = () => {
        queueState(spec.name).retryDelaysMs = retryDelaysMs;
        queueState(dlqQueueOf(spec.name));
      };
      // Journaled like a durable queue: after a restart it (and its DLQ) exists for publishers at once, while
      // consuming still needs a declare() by this instance, as on the RabbitMQ adapter.
      return journal === undefined ? apply() : journal.declare(spec.name).then(apply);
    });
  }

  return {
    declare,
    publish: (queueName, body, publishOptions) =>
      run(() => {
        const queue = existing(queueName);
        assertRoom(queue);
        const id = publishOptions?.id ?? crypto.randomUUID();
        return accept(queue, { seq: nextSeq++, id, body, headers: { ...publishOptions?.headers }, attempt: 1 });
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
    /**
     * Hands unacked messages back and stops timers. Nothing is acked or dropped on disk: what was not acked
     * is delivered by the next process. Waits for journal writes already under way.
     */
    async close() {
      if (!closed) {
        for (const queue of queues.values()) for (const consumer of [...queue.consumers]) cancel(consumer);
        closed = true;
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
      }
      await opened?.catch(() => {});
      await journal?.close();
    },
  };

  /**
   * Runs `operation` once the journal is loaded. Without a journal it runs at once, in the caller's turn, as
   * it always has: handlers then start only after the caller got its answer.
   */
  function run<T>(operation: () => T | Promise<T>): Promise<T> {
    try {
      assertOpen();
      if (opened === undefined) return Promise.resolve(operation());
    } catch (error) {
      return Promise.reject(error);
    }
    return opened.then(() => {
      assertOpen();
      return operation();
    });
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
