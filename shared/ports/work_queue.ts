/**
 * @module
 * The work-queue port: RabbitMQ semantics (publish with confirms, manual ack, delayed retry and
 * dead-lettering after the last attempt). Real adapter: amqplib; embedded adapter: in-process queue.
 */
import { RetryLaterError } from "./retry_later.ts";

/** Declares a queue and its retry topology. */
export interface QueueSpec {
  readonly name: string;
  /**
   * Delay before each retry; its length is the number of retries. After the last one fails the message
   * goes to the dead-letter queue ({@linkcode dlqQueueOf}). @default [] (no retry: dead-letter at once)
   */
  readonly retryDelaysMs?: readonly number[];
}

export interface QueueMessage {
  readonly id: string;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
  /** 1 for the first delivery, 2 for the first retry, and so on. */
  readonly attempt: number;
}

export interface ConsumeOptions {
  /** Messages in flight at once for this consumer. @default 10 */
  readonly prefetch?: number;
  /**
   * How long a message whose handler threw {@linkcode RetryLaterError} waits (unacked, holding its prefetch
   * slot) before it is delivered again at the same attempt. Validated by {@linkcode retryLaterDelayOf}.
   * @default 5000
   */
  readonly retryLaterDelayMs?: number;
}

export const RETRY_LATER_DELAY_MS_DEFAULT = 5_000;
const RETRY_LATER_DELAY_MS_MAX = 600_000;

/** The consumer's {@linkcode ConsumeOptions.retryLaterDelayMs}, checked: a whole number of ms from 1 to 10 min. */
export function retryLaterDelayOf(options: ConsumeOptions | undefined): number {
  const delayMs = options?.retryLaterDelayMs ?? RETRY_LATER_DELAY_MS_DEFAULT;
  if (!Number.isSafeInteger(delayMs) || delayMs < 1 || delayMs > RETRY_LATER_DELAY_MS_MAX) {
    throw new RangeError(
      `consume() "retryLaterDelayMs" must be a whole number of ms from 1 to ${RETRY_LATER_DELAY_MS_MAX}, got ${delayMs}`,
    );
  }
  return delayMs;
}

export interface ConsumerHandle {
  /** Stops taking messages; unacknowledged ones go back to the queue. */
  cancel(): Promise<void>;
}

export interface WorkQueue {
  declare(spec: QueueSpec): Promise<void>;
  /** Resolves once the broker has confirmed the message is stored (persistent). */
  publish(
    queue: string,
    body: string,
    options?: { readonly id?: string; readonly headers?: Readonly<Record<string, string>> },
  ): Promise<void>;
  /**
   * Consumes with manual acknowledgement: resolving acks the message; throwing schedules the next retry,
   * or dead-letters it (header `x-bv-error` holds the last error) after the last attempt. Throwing
   * {@linkcode RetryLaterError} does neither: the message is delivered again at the same attempt after
   * `retryLaterDelayMs`, for as long as the handler keeps throwing it.
   */
  consume(
    queue: string,
    handler: (message: QueueMessage) => Promise<void>,
    options?: ConsumeOptions,
  ): Promise<ConsumerHandle>;
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export { RetryLaterError };

/** The dead-letter queue of `queue`: `<queue>.dlq`. */
export function dlqQueueOf(queue: string): string {
  return `${queue}.dlq`;
}
