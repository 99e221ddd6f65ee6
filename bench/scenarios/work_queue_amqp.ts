/**
 * @module
 * A persistent message published with a confirm, consumed with manual ack, round trip timed until the
 * consumer has it: the work-queue port (createAmqpWorkQueue: mandatory publish, per-message confirm
 * bookkeeping, ack after the handler) against a raw amqplib confirm channel plus a consumer channel. Both run
 * in a throw-away vhost, deleted at the end.
 */
import amqplib from "amqplib";
import { Buffer } from "node:buffer";
import { createAmqpWorkQueue } from "../../shared/adapters/amqp/mod.ts";
import { createTestVhost } from "../../shared/testing/rabbit_vhost.ts";
import { realInfra } from "../../shared/testing/real_infra.ts";
import { compare, resultOf, type Scenario, ScenarioSkipped } from "../harness.ts";
import { createRendezvous } from "../rendezvous.ts";
import { hostPortOf, idSequence } from "./_endpoints.ts";

/** Unacknowledged deliveries per consumer, the same on both sides (the port's default). */
const PREFETCH = 10;
const QUEUE_PORT = "bench.port";
const QUEUE_RAW = "bench.raw";

/** The slice of amqplib used here (the package ships no typings). */
interface RawMessage {
  readonly properties: { readonly messageId?: string };
}
interface RawChannel {
  assertQueue(name: string, options: { durable: boolean }): Promise<unknown>;
  prefetch(count: number): Promise<unknown>;
  consume(
    queue: string,
    onMessage: (message: RawMessage | null) => void,
    options: { noAck: boolean },
  ): Promise<unknown>;
  ack(message: RawMessage): void;
  sendToQueue(
    queue: string,
    content: Buffer,
    options: { persistent: boolean; messageId: string },
    onConfirm: (error: Error | null) => void,
  ): boolean;
}
interface RawConnection {
  createChannel(): Promise<RawChannel>;
  createConfirmChannel(): Promise<RawChannel>;
  close(): Promise<void>;
}
const connect = amqplib.connect as (url: string, socketOptions: { timeout: number }) => Promise<RawConnection>;

export const workQueueAmqp: Scenario = {
  name: "work_queue_amqp",
  description:
    "persistent publish with confirm → consume → ack (prefetch 10): createAmqpWorkQueue() vs raw amqplib confirm channel",
  async run(ctx) {
    await ctx.requireTcp(hostPortOf(realInfra.amqpUrl, 5672), "RabbitMQ");
    const vhost = await createTestVhost().catch((error) => {
      if (error instanceof Deno.errors.NotFound) {
        throw new ScenarioSkipped("rabbitmqctl is not installed here, so no throw-away vhost can be created");
      }
      throw error;
    });
    ctx.log(`vhost ${vhost.name}`);
    const rendezvous = createRendezvous({ timeoutMs: 10_000 });
    const nextId = idSequence("w");
    const body = Buffer.from("x");
    const queue = createAmqpWorkQueue({ url: vhost.url, connectTimeoutMs: 5_000, publishTimeoutMs: 10_000 });
    let connection: RawConnection | undefined;
    try {
      await queue.declare({ name: QUEUE_PORT });
      const consumer = await queue.consume(
        QUEUE_PORT,
        (message) => Promise.resolve(void rendezvous.arrive(message.id)),
        {
          prefetch: PREFETCH,
        },
      );

      connection = await connect(vhost.url, { timeout: 5_000 });
      const publisher = await connection.createConfirmChannel();
      const subscriber = await connection.createChannel();
      await subscriber.assertQueue(QUEUE_RAW, { durable: true });
      await subscriber.prefetch(PREFETCH);
      await subscriber.consume(QUEUE_RAW, (message) => {
        if (message === null) return;
        rendezvous.arrive(message.properties.messageId ?? "");
        subscriber.ack(message);
      }, { noAck: false });

      const sides = await compare(
        {
          label: "createAmqpWorkQueue",
          op: async () => {
            const id = nextId();
            const consumed = rendezvous.expect(id);
            await queue.publish(QUEUE_PORT, "x", { id });
            await consumed;
          },
        },
        {
          label: "amqplib",
          op: async () => {
            const id = nextId();
            const consumed = rendezvous.expect(id);
            await new Promise<void>((resolve, reject) => {
              publisher.sendToQueue(QUEUE_RAW, body, { persistent: true, messageId: id }, (error) => {
                if (error) reject(error);
                else resolve();
              });
            });
            await consumed;
          },
        },
        { iterationsPerRound: 600, warmupPerRound: 50, concurrency: 1, timeCapMsPerRound: 3_000 },
      );
      await consumer.cancel();
      return resultOf("work_queue_amqp", sides);
    } finally {
      rendezvous.close();
      await Promise.allSettled([queue.close(), connection?.close()]);
      await vhost.drop().catch((error) => ctx.log(`could not delete vhost ${vhost.name}: ${error}`));
    }
  },
};
