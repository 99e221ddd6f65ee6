/** @module The transactional outbox of the e-commerce deployable: writer, relay, idempotent consumers. */
export {
  appendToOutbox,
  envelopeFor,
  outboxRowOf,
  type OutboxRowValues,
  PROCESSED_EVENTS_RETAIN_MS,
  processOnce,
  purgeProcessedEvents,
} from "./outbox.ts";
export { type OutboxRelay, type OutboxRelayOptions, startOutboxRelay } from "./relay.ts";
export { outboxMigrations } from "./migrations.ts";
