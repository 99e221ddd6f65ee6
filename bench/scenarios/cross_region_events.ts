/**
 * @module
 * Cross-region event visibility: a record produced in east (idempotent kafkajs producer, acks=all) until a
 * consumer in west has it from `east.<topic>`, copied by MirrorMaker 2 — against the same producer and the
 * same consumer settings on one cluster (produce in east → consume in east), so the ratio is what the
 * mirror hop adds. Starts MirrorMaker when it is not running (`ensureMirrorMaker`, 10–22 s on 2 cores).
 * Topics (one partition each) and groups are unique to the run and deleted at the end.
 */
import { type Admin, Kafka, logLevel, Partitioners } from "kafkajs";
import { ensureMirrorMaker, kafkaBrokersOf, remoteTopicOf } from "../../scripts/kafka/mod.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import { compare, resultOf, type Scenario } from "../harness.ts";
import { createRendezvous } from "../rendezvous.ts";
import { idSequence } from "./_endpoints.ts";
import { joinedAndFetched, rawConsumerOf, withTimeout } from "./_kafka_raw.ts";

/** Both consumers: an empty fetch waits this long on the broker; a record arriving ends the wait at once. */
const MAX_WAIT_TIME_MS = 500;
const REQUEST_TIMEOUT_MS = 10_000;
/** A new topic is found within MirrorMaker's refresh (5 s) plus a task restart. */
const MIRRORED_TIMEOUT_MS = 30_000;
const READY_TIMEOUT_MS = 30_000;

export const crossRegionEvents: Scenario = {
  name: "cross_region_events",
  description:
    "produce 1 record in east (acks=all) → consumed in west from east.<topic> via MirrorMaker 2 vs the same " +
    "produce → consume on the east cluster",
  async run(ctx) {
    const [east, west] = [kafkaBrokersOf("east"), kafkaBrokersOf("west")];
    await ctx.requireTcp(east[0], "Kafka (east)", "start both with `deno task infra:up`");
    await ctx.requireTcp(west[0], "Kafka (west)", "start both with `deno task infra:up`");
    const mirror = await ensureMirrorMaker({ log: ctx.log });
    ctx.log(`MirrorMaker pid ${mirror.pid} ${mirror.started ? "started for this run" : "was running"}`);
    const run = uniqueName("bvbench");
    const topics = { mirrored: `${run}.ecommerce.order.order.created.v1`, local: `${run}.local` };
    const remote = remoteTopicOf("east", topics.mirrored);
    const groups = { west: `${run}.west`, east: `${run}.east` };
    const rendezvous = createRendezvous({ timeoutMs: 10_000 });
    const nextId = idSequence("x");
    const eastKafka = client(`${run}-east`, east);
    const westKafka = client(`${run}-west`, west);
    const admins = { east: eastKafka.admin(), west: westKafka.admin() };
    const producer = eastKafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
    });
    const consumers = {
      west: rawConsumerOf(westKafka, groups.west, MAX_WAIT_TIME_MS),
      east: rawConsumerOf(eastKafka, groups.east, MAX_WAIT_TIME_MS),
    };
    try {
      await Promise.all([admins.east.connect(), admins.west.connect(), producer.connect()]);
      await admins.east.createTopics({
        topics: [topics.mirrored, topics.local].map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 })),
        waitForLeaders: true,
        timeout: REQUEST_TIMEOUT_MS,
      });
      const startedMs = performance.now();
      // The first record makes MirrorMaker create the remote topic; a consumer can only join once it exists.
      await producer.send({ topic: topics.mirrored, acks: -1, messages: [{ key: "first", value: "x" }] });
      await waitForTopic(admins.west, remote);
      ctx.log(`${remote} in west after ${((performance.now() - startedMs) / 1000).toFixed(1)} s`);

      // Measuring starts once the first record is in west: the task restart that follows the discovery of a
      // new topic is then behind us.
      let firstArrived = () => {};
      const first = new Promise<void>((resolve) => firstArrived = resolve);
      const ready = Promise.all([joinedAndFetched(consumers.west), joinedAndFetched(consumers.east)]);
      for (const [consumer, topic] of [[consumers.west, remote], [consumers.east, topics.local]] as const) {
        await consumer.connect();
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        await consumer.run({
          eachMessage: ({ message }) => {
            const key = message.key?.toString() ?? "";
            if (key === "first") firstArrived();
            else rendezvous.arrive(key);
            return Promise.resolve();
          },
        });
      }
      await withTimeout(ready, READY_TIMEOUT_MS, "Consumers did not join");
      await withTimeout(first, MIRRORED_TIMEOUT_MS, "The first record did not reach west");
      ctx.log(`first record in west after ${((performance.now() - startedMs) / 1000).toFixed(1)} s`);

      const roundTrip = (topic: string) => async () => {
        const id = nextId();
        const consumed = rendezvous.expect(id);
        await producer.send({ topic, acks: -1, messages: [{ key: id, value: "x" }] });
        await consumed;
      };
      const sides = await compare(
        { label: "east → MirrorMaker 2 → west", op: roundTrip(topics.mirrored) },
        { label: "east → east", op: roundTrip(topics.local) },
        { iterationsPerRound: 300, warmupPerRound: 20, concurrency: 1, timeCapMsPerRound: 10_000 },
      );
      return resultOf("cross_region_events", sides);
    } finally {
      rendezvous.close();
      await Promise.allSettled([producer.disconnect(), consumers.west.disconnect(), consumers.east.disconnect()]);
      await cleanUp(admins.east, [topics.mirrored, topics.local], [groups.east], ctx.log);
      await cleanUp(admins.west, [remote], [groups.west], ctx.log);
    }
  },
};

function client(clientId: string, brokers: string[]): Kafka {
  return new Kafka({
    clientId,
    brokers,
    connectionTimeout: 3_000,
    requestTimeout: REQUEST_TIMEOUT_MS,
    logLevel: logLevel.WARN,
  });
}

async function waitForTopic(admin: Admin, topic: string): Promise<void> {
  const startedMs = Date.now();
  while (!(await admin.listTopics()).includes(topic)) {
    if (Date.now() - startedMs > MIRRORED_TIMEOUT_MS) {
      throw new Error(`MirrorMaker did not create ${topic} in west within ${MIRRORED_TIMEOUT_MS / 1000} s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function cleanUp(admin: Admin, topics: string[], groups: string[], log: (line: string) => void) {
  await admin.deleteTopics({ topics, timeout: REQUEST_TIMEOUT_MS }).catch((e) => log(`could not delete topics: ${e}`));
  await admin.deleteGroups(groups).catch((e) => log(`could not delete consumer groups: ${e}`));
  await admin.disconnect().catch(() => {});
}
