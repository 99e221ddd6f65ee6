/**
 * @module
 * One consumer of the AMQP work queue: its own confirm channel (so `prefetch` is per consumer and
 * closing the channel hands its unacked messages back to the broker), the ack/retry/dead-letter
 * decision after each handler run, and re-attachment after the channel or connection is lost.
 */

import type { QueueMessage } from "../../ports/work_queue.ts";
import { dlqQueueOf, RetryLaterError } from "../../ports/work_queue.ts";
import {
  type AmqpConfirmChannel,
  type AmqpConnection,
  type AmqpMessage,
  type ConfirmedPublish,
  confirmedPublisher,
  ignoreErrorEvents,
  quietly,
} from "./_amqplib.ts";

/** Header carrying the attempt number of a retry copy (absent on the first delivery). */
export const attemptHeader = "x-bv-attempt";
/** Header carrying the last handler error on retries and dead-lettered messages. */
export const errorHeader = "x-bv-error";
/** Header on a dead-lettered message: how many attempts were made. */
export const attemptsHeader = "x-bv-attempts";
/** Longer error texts are cut: headers travel with every copy and count against frame size. */
const errorHeaderCharsMax = 1_000;
/** Pause before re-attaching a consumer whose channel closed, or before requeueing a message we could not
 * move to its retry queue: keeps a persistent fault from becoming a hot loop. */
export const consumerRecoveryDelayMs = 1_000;
/** Cap of the growing delay between tries to store a failed message's retry or dead-letter copy. */
const MOVE_RETRY_DELAY_MAX_MS = 30_000;

/** What a consumer needs from the work queue that owns it. */
export interface ConsumerHost {
  /** The live connection, or undefined while reconnecting (the host restarts consumers when back). */
  currentConnection(): AmqpConnection | undefined;
  /** A timer the host clears on close. */
  later(action: () => void, delayMs: number): void;
  warn(message: string, error?: unknown): void;
  readonly publishTimeoutMs: number;
}

/**
 * The retry queue for one delay: messages wait there `delayMs`, then dead-letter back to `queue`. A quorum
 * queue (`.retry-q.`; the classic `.retry.` queues of earlier versions are left alone, a queue's type cannot
 * change in place), so that dead-lettering is at least once.
 */
export function retryQueueOf(queue: string, delayMs: number): string {
  return `${queue}.retry-q.${delayMs}`;
}

export class AmqpConsumer {
  #channel: AmqpConfirmChannel | undefined;
  #consumerTag = "";
  #cancelled = false;

  constructor(
    private readonly host: ConsumerHost,
    private readonly queue: string,
    private readonly retryDelaysMs: readonly number[],
    private readonly prefetch: number,
    private readonly handler: (message: QueueMessage) => Promise<void>,
    private readonly retryLaterDelayMs: number,
  ) {}

  /** Opens a channel on `connection` and starts consuming; rejects if the broker refuses. */
  async start(connection: AmqpConnection): Promise<void> {
    if (this.#cancelled) return;
    const channel = await connection.createConfirmChannel();
    ignoreErrorEvents(channel);
    channel.on("close", () => this.#onChannelClosed(channel, connection));
    const publish = confirmedPublisher(channel);
    try {
      // Per consumer (global = false): at most `prefetch` unacked messages, so at most that many handlers.
      await channel.prefetch(this.prefetch, false);
      const { consumerTag } = await channel.consume(this.queue, (raw) => {
        // null: the broker cancelled us (queue deleted); closing the channel triggers the re-attach path.
        if (raw === null) void quietly(() => channel.close());
        else void this.#handle(channel, publish, raw);
      }, { noAck: false, exclusive: false });
      this.#consumerTag = consumerTag;
    } catch (error) {
      await quietly(() => channel.close());
      throw error;
    }
    // Cancelled meanwhile, or already attached by a concurrent start (reconnect racing consume()).
    if (this.#cancelled || this.#channel) return void (await quietly(() => channel.close()));
    this.#channel = channel;
  }

  /** Stops consuming and closes the channel at once: unacked messages go back to the queue. In-flight
   * handlers are not awaited; their late ack is dropped (the broker already requeued the message). */
  async cancel(): Promise<void> {
    this.#cancelled = true;
    const channel = this.#channel;
    this.#channel = undefined;
    if (!channel) return;
    await quietly(() => channel.cancel(this.#consumerTag));
    await quietly(() => channel.close());
  }

  #onChannelClosed(channel: AmqpConfirmChannel, connection: AmqpConnection): void {
    if (this.#channel !== channel) return;
    this.#channel = undefined;
    if (!this.#cancelled) this.#reattachLater(connection);
  }

  /** Only this channel failed (queue deleted, precondition): re-attach on the same connection. When the
   * whole connection went, the host restarts every consumer on the new one and this timer does nothing. */
  #reattachLater(connection: AmqpConnection): void {
    this.host.later(() => {
      if (this.#cancelled || this.#channel || this.host.currentConnection() !== connection) return;
      this.start(connection).catch((error) => {
        this.host.warn(`Cannot re-attach consumer of queue "${this.queue}"; retrying`, error);
        this.#reattachLater(connection);
      });
    }, consumerRecoveryDelayMs);
  }

  async #handle(channel: AmqpConfirmChannel, publish: ConfirmedPublish, raw: AmqpMessage): Promise<void> {
    const message = toQueueMessage(raw);
    try {
      await this.handler(message);
    } catch (error) {
      if (error instanceof RetryLaterError) return this.#requeueLater(channel, raw, message, error);
      return await this.#moveOn(channel, publish, raw, message, error);
    }
    // Throws when the channel is closed (cancel or connection loss): the broker has requeued the message.
    await quietly(() => channel.ack(raw));
  }

  /**
   * Not the message's fault: it stays unacked (holding its prefetch slot) for `retryLaterDelayMs`, then goes
   * back to the queue as it is (same attempt header), so the handler sees it again. A closed channel has
   * already returned it to the queue.
   */
  #requeueLater(channel: AmqpConfirmChannel, raw: AmqpMessage, message: QueueMessage, error: RetryLaterError): void {
    this.host.warn(
      `Handler of "${this.queue}" asked to retry message "${message.id}" later; again in ${this.retryLaterDelayMs} ms`,
      error,
    );
    this.host.later(() => {
      if (this.#channel === channel) void quietly(() => channel.nack(raw, false, true));
    }, this.retryLaterDelayMs);
  }

  /** Stores the failed message's next stop (retry queue or DLQ) with a confirm, and only then acks it. */
  async #moveOn(
    channel: AmqpConfirmChannel,
    publish: ConfirmedPublish,
    raw: AmqpMessage,
    message: QueueMessage,
    error: unknown,
  ): Promise<void> {
    const headers = { ...message.headers, [errorHeader]: describeError(error) };
    const delayMs = this.retryDelaysMs[message.attempt - 1];
    const target = delayMs === undefined
      ? { queue: dlqQueueOf(this.queue), headers: { ...headers, [attemptsHeader]: String(message.attempt) } }
      : {
        queue: retryQueueOf(this.queue, delayMs),
        headers: { ...headers, [attemptHeader]: String(message.attempt + 1) },
      };
    await this.#storeThenAck(channel, publish, raw, message, target, 0);
  }

  /**
   * Publishes the failed message's copy to `target` (confirmed) and acks the original. When the copy cannot be
   * stored (a resource alarm, a missing queue, a confirm timeout) the original stays unacked and only the move is
   * tried again, with a growing delay: requeueing it would run the handler again for every try (a partner POSTed
   * each second, its retry schedule skipped). A closed channel ends the tries; the broker then redelivers it.
   */
  async #storeThenAck(
    channel: AmqpConfirmChannel,
    publish: ConfirmedPublish,
    raw: AmqpMessage,
    message: QueueMessage,
    target: { readonly queue: string; readonly headers: Record<string, string> },
    failedMoves: number,
  ): Promise<void> {
    try {
      await publish(
        target.queue,
        message.body,
        { id: message.id, headers: target.headers },
        this.host.publishTimeoutMs,
      );
    } catch (publishError) {
      if (this.#channel !== channel) return; // Channel gone: the broker redelivers the original.
      const delayMs = Math.min(consumerRecoveryDelayMs * 2 ** failedMoves, MOVE_RETRY_DELAY_MAX_MS);
      this.host.warn(
        `Cannot move message "${message.id}" to "${target.queue}"; trying again in ${delayMs} ms (it stays unacked)`,
        publishError,
      );
      this.host.later(() => {
        if (this.#channel !== channel) return;
        void this.#storeThenAck(channel, publish, raw, message, target, failedMoves + 1);
      }, delayMs);
      return;
    }
    // A crash (or lost channel) right here leaves both the copy and the original: a duplicate, never a loss.
    await quietly(() => channel.ack(raw));
  }
}

/** Broker-added headers (x-death and friends) are not part of the port's message. */
function isBrokerHeader(name: string): boolean {
  return name === "x-death" || name.startsWith("x-first-death-") || name.startsWith("x-last-death-");
}

function toQueueMessage(raw: AmqpMessage): QueueMessage {
  const headers: Record<string, string> = {};
  let attempt = 1;
  for (const [name, value] of Object.entries(raw.properties.headers ?? {})) {
    if (name === attemptHeader) {
      const parsed = Number(value);
      if (Number.isSafeInteger(parsed) && parsed >= 1) attempt = parsed;
    } else if (!isBrokerHeader(name) && (typeof value === "string" || typeof value === "number")) {
      headers[name] = String(value);
    }
  }
  return { id: raw.properties.messageId ?? "", body: raw.content.toString("utf8"), headers, attempt };
}

export function describeError(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.length > errorHeaderCharsMax ? `${text.slice(0, errorHeaderCharsMax - 1)}…` : text;
}
