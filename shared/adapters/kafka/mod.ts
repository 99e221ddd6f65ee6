/**
 * @module
 * The Kafka adapters. Only this folder imports kafkajs.
 */
export { createKafkaEventLog } from "./event_log.ts";
export type {
  HandlerRetryPolicy,
  KafkaConsumerTimings,
  KafkaEventLogOptions,
  KafkaLogEntry,
  KafkaLogLevelName,
} from "./event_log.ts";
