/** @module Raw kafkajs helpers shared by the Kafka bench scenarios (their baselines use the driver directly). */
import type { Consumer, Kafka } from "kafkajs";

/**
 * Resolves after the first fetch that follows the group join: by then the consumer has resolved its
 * `latest` offset, so a record published afterwards is not skipped (the same rule as the port's `ready`).
 */
export function joinedAndFetched(consumer: Consumer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let joined = false;
    const removers = [
      consumer.on(consumer.events.GROUP_JOIN, () => joined = true),
      consumer.on(consumer.events.FETCH, () => joined && done(resolve)),
      consumer.on(consumer.events.CRASH, (event) => done(() => reject(event.payload.error))),
    ];
    function done(settle: () => void) {
      for (const remove of removers) remove();
      settle();
    }
  });
}

export function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A raw consumer as the Kafka scenarios' baselines and probes use it: its own group, no topic creation,
 * and an empty fetch that waits `maxWaitTimeMs` on the broker (a record arriving ends the wait at once).
 */
export function rawConsumerOf(kafka: Kafka, groupId: string, maxWaitTimeMs: number): Consumer {
  return kafka.consumer({
    groupId,
    sessionTimeout: 10_000,
    rebalanceTimeout: 10_000,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: maxWaitTimeMs,
    minBytes: 1,
    allowAutoTopicCreation: false,
  });
}
