/**
 * @module
 * Consumer-group timings for tests on the real Kafka cluster: short enough that a join, a leave or an
 * abandoned record costs well under a second. The broker allows sessions down to 1 s
 * (`group.min.session.timeout.ms` in `scripts/kafka/_config.ts`).
 */
import type { KafkaConsumerTimings } from "../adapters/kafka/event_log.ts";

/** Pass as `consumer` to `createKafkaEventLog` in integration tests. */
export const TEST_CONSUMER_TIMINGS: Readonly<Required<KafkaConsumerTimings>> = Object.freeze({
  sessionTimeoutMs: 6_000,
  rebalanceTimeoutMs: 6_000,
  heartbeatIntervalMs: 200,
  maxWaitTimeMs: 100,
  closeTimeoutMs: 1_000,
  // The production default: tests see coalesced commits as services do.
  commitIntervalMs: 500,
});
