/**
 * @module
 * Publish one record (acks=all) and wait until a consumer-group member has it: the event-log port
 * (createKafkaEventLog: idempotent producer, member that commits each record after its handler) against a
 * raw kafkajs producer with the same durability settings and a raw consumer that auto-commits (kafkajs's
 * default), so the port's commit-per-record shows as overhead. Each side has its own one-partition topic,
 * unique to the run; topics and groups are deleted at the end.
 */
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { createKafkaEventLog } from "../../shared/adapters/kafka/mod.ts";
import { realInfra } from "../../shared/testing/real_infra.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import { compare, resultOf, type Scenario } from "../harness.ts";
import { createRendezvous } from "../rendezvous.ts";
import { idSequence } from "./_endpoints.ts";
import { joinedAndFetched, withTimeout } from "./_kafka_raw.ts";

/** Consumer timing for both sides: short, so joining and leaving take well under a second on one broker. */
const SESSION_TIMEOUT_MS = 10_000;
const REBALANCE_TIMEOUT_MS = 10_000;
const HEARTBEAT_INTERVAL_MS = 1_000;
/** An empty fetch waits this long on the broker; a record arriving ends the wait at once (minBytes 1). */
const MAX_WAIT_TIME_MS = 500;
const REQUEST_TIMEOUT_MS = 10_000;
/** Bound on a consumer's join (first fetch after the group join). */
const READY_TIMEOUT_MS = 30_000;

export const eventLogKafka: Scenario = {
  name: "event_log_kafka",
  description:
    "publish 1 record (acks=all) → a group member receives it: createKafkaEventLog() vs raw kafkajs producer + consumer",
  async run(ctx) {
    const brokers = realInfra.kafkaBrokers;
    await ctx.requireTcp(brokers[0], "Kafka (east)", "start it with `deno run -A scripts/infra_up.ts east`");
    const run = uniqueName("bvbench");
    const topics = { port: `${run}.port`, raw: `${run}.raw` };
    const groups = { port: `${run}.port`, raw: `${run}.raw` };
    const rendezvous = createRendezvous({ timeoutMs: 10_000 });
    const nextId = idSequence("k");
    const kafka = new Kafka({
      clientId: `${run}-raw`,
      brokers: [...brokers],
      connectionTimeout: 3_000,
      requestTimeout: REQUEST_TIMEOUT_MS,
      logLevel: logLevel.WARN,
    });
    const admin = kafka.admin();
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
    });
    const consumer = kafka.consumer({
      groupId: groups.raw,
      sessionTimeout: SESSION_TIMEOUT_MS,
      rebalanceTimeout: REBALANCE_TIMEOUT_MS,
      heartbeatInterval: HEARTBEAT_INTERVAL_MS,
      maxWaitTimeInMs: MAX_WAIT_TIME_MS,
      minBytes: 1,
      allowAutoTopicCreation: false,
    });
    const log = createKafkaEventLog({
      brokers,
      clientId: `${run}-port`,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      consumer: {
        sessionTimeoutMs: SESSION_TIMEOUT_MS,
        rebalanceTimeoutMs: REBALANCE_TIMEOUT_MS,
        heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
        maxWaitTimeMs: MAX_WAIT_TIME_MS,
        closeTimeoutMs: 2_000,
      },
    });
    let adminConnected = false;
    try {
      await admin.connect();
      adminConnected = true;
      await log.ensureTopics([{ name: topics.port, partitions: 1 }]);
      await admin.createTopics({
        topics: [{ topic: topics.raw, numPartitions: 1, replicationFactor: 1 }],
        waitForLeaders: true,
        timeout: REQUEST_TIMEOUT_MS,
      });
      const started = performance.now();
      const subscription = await log.subscribe({
        groupId: groups.port,
        topics: [topics.port],
        from: "latest",
        handler: (record) => Promise.resolve(void rendezvous.arrive(record.key)),
      });
      const rawReady = joinedAndFetched(consumer);
      await producer.connect();
      await consumer.connect();
      await consumer.subscribe({ topics: [topics.raw], fromBeginning: false });
      await consumer.run({
        eachMessage: ({ message }) => Promise.resolve(void rendezvous.arrive(message.key?.toString() ?? "")),
      });
      await withTimeout(Promise.all([subscription.ready, rawReady]), READY_TIMEOUT_MS, "Consumers did not join");
      ctx.log(`both consumers joined in ${((performance.now() - started) / 1000).toFixed(1)} s`);

      const sides = await compare(
        {
          label: "createKafkaEventLog",
          op: async () => {
            const id = nextId();
            const consumed = rendezvous.expect(id);
            await log.publish(topics.port, [{ key: id, value: "x" }]);
            await consumed;
          },
        },
        {
          label: "kafkajs",
          op: async () => {
            const id = nextId();
            const consumed = rendezvous.expect(id);
            await producer.send({ topic: topics.raw, acks: -1, messages: [{ key: id, value: "x" }] });
            await consumed;
          },
        },
        { iterationsPerRound: 300, warmupPerRound: 20, concurrency: 1, timeCapMsPerRound: 5_000 },
      );
      await subscription.close();
      return resultOf("event_log_kafka", sides);
    } finally {
      rendezvous.close();
      await Promise.allSettled([log.close(), producer.disconnect(), consumer.disconnect()]);
      if (adminConnected) {
        await admin.deleteTopics({ topics: [topics.port, topics.raw], timeout: REQUEST_TIMEOUT_MS })
          .catch((error) => ctx.log(`could not delete topics: ${error}`));
        await admin.deleteGroups([groups.port, groups.raw])
          .catch((error) => ctx.log(`could not delete consumer groups: ${error}`));
      }
      await admin.disconnect();
    }
  },
};
