/**
 * @module
 * The slice of amqplib this adapter uses, typed (the package ships no typings and @types/amqplib is not
 * installed), plus confirmed publishing. Private to the amqp adapter folder.
 */

import amqplib from "amqplib";
import { Buffer } from "node:buffer";

type Listener = (...args: never[]) => void;

interface Emitter {
  on(event: string, listener: Listener): unknown;
}

export interface AmqpMessage {
  readonly content: Buffer;
  readonly fields: { readonly deliveryTag: number; readonly redelivered: boolean };
  readonly properties: {
    readonly messageId?: string;
    readonly correlationId?: string;
    readonly headers?: Record<string, unknown>;
  };
}

export interface PublishProperties {
  readonly persistent: boolean;
  readonly mandatory: boolean;
  readonly messageId: string;
  readonly correlationId: string;
  readonly headers: Record<string, string>;
  readonly contentType: string;
  readonly contentEncoding: string;
  readonly timestamp: number;
}

export interface AmqpChannel extends Emitter {
  assertQueue(name: string, options: { durable: boolean; arguments?: Record<string, unknown> }): Promise<unknown>;
  prefetch(count: number, global: boolean): Promise<unknown>;
  consume(
    queue: string,
    onMessage: (message: AmqpMessage | null) => void,
    options: { noAck: boolean; exclusive: boolean },
  ): Promise<{ consumerTag: string }>;
  cancel(consumerTag: string): Promise<unknown>;
  ack(message: AmqpMessage): void;
  nack(message: AmqpMessage, allUpTo: boolean, requeue: boolean): void;
  close(): Promise<void>;
}

export interface AmqpConfirmChannel extends AmqpChannel {
  publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    properties: PublishProperties,
    onConfirm: (error: Error | null) => void,
  ): boolean;
}

export interface AmqpConnection extends Emitter {
  createChannel(): Promise<AmqpChannel>;
  createConfirmChannel(): Promise<AmqpConfirmChannel>;
  close(): Promise<void>;
}

/** amqplib's `connect`; socket `timeout` bounds the TCP connect and the AMQP handshake. */
export const connectAmqp = amqplib.connect as (
  url: string,
  socketOptions: { timeout: number },
) => Promise<AmqpConnection>;

/** The broker returned the message: no queue by that name exists. Retrying cannot help. */
export class UnroutableError extends Error {
  override name = "UnroutableError";
}

/** The confirm did not arrive in time; the message may or may not be stored. */
export class ConfirmTimeoutError extends Error {
  override name = "ConfirmTimeoutError";
}

/**
 * A confirm channel with mandatory publishing: `publish` resolves on the broker's ack, rejects with
 * {@linkcode UnroutableError} when no queue took the message (RabbitMQ sends basic.return before the ack),
 * and with {@linkcode ConfirmTimeoutError} after `timeoutMs`.
 */
export function confirmedPublisher(channel: AmqpConfirmChannel) {
  const returned = new Set<string>();
  channel.on(
    "return",
    ((message: AmqpMessage) => {
      if (message.properties.correlationId) returned.add(message.properties.correlationId);
    }) as Listener,
  );

  return function publish(
    queue: string,
    body: string,
    message: { readonly id: string; readonly headers: Record<string, string> },
    timeoutMs: number,
  ): Promise<void> {
    // Our own correlation id ties a basic.return to this publish; message ids may legitimately repeat.
    const correlationId = crypto.randomUUID();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new ConfirmTimeoutError(`No confirm for message "${message.id}" within ${timeoutMs} ms`));
      }, timeoutMs);
      const properties: PublishProperties = {
        persistent: true,
        mandatory: true,
        messageId: message.id,
        correlationId,
        headers: message.headers,
        contentType: "text/plain",
        contentEncoding: "utf-8",
        timestamp: Math.floor(Date.now() / 1000),
      };
      try {
        channel.publish("", queue, Buffer.from(body, "utf8"), properties, (error) => {
          clearTimeout(timer);
          if (returned.delete(correlationId)) {
            reject(new UnroutableError(`Queue "${queue}" does not exist: declare it before publishing to it`));
          } else if (error) {
            reject(error);
          } else {
            resolve();
          }
        });
      } catch (error) {
        // amqplib throws synchronously when the channel is already closed.
        clearTimeout(timer);
        reject(error);
      }
    });
  };
}

export type ConfirmedPublish = ReturnType<typeof confirmedPublisher>;

/** Channels and connections emit "error" before "close"; an unheard "error" event would crash the process. */
export function ignoreErrorEvents(emitter: Emitter): void {
  emitter.on("error", (() => undefined) as Listener);
}

/** Runs `action` and swallows its failure: used on channels that may already be closed. */
export async function quietly(action: () => unknown): Promise<void> {
  try {
    await action();
  } catch {
    // Already closed (connection lost or cancelled): nothing left to release.
  }
}
