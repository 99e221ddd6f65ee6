/**
 * @module
 * IoT inventory sensors (see README.md): the MQTT → Kafka bridge and the inventory consumer that applies
 * each sensor delta once.
 */
export {
  SENSOR_BRIDGE_BATCH_MAX_DEFAULT,
  SENSOR_BRIDGE_LINGER_MS_DEFAULT,
  SENSOR_BRIDGE_PRODUCER,
  SENSOR_BRIDGE_PUBLISH_DEADLINE_MS,
  SENSOR_DLQ_HEADERS,
  type SensorBridgeDeps,
  startSensorBridge,
} from "./bridge.ts";
export { applySensorBatch, type SensorBatchOutcome } from "./apply_sensor_batch.ts";
export { type SensorSharing, type SensorSharingInput, sensorSharingOf } from "./share_group.ts";
export {
  SENSOR_ADJUSTMENT_SOURCE,
  SENSOR_CONSUMER_ATTEMPTS_MAX,
  SENSOR_CONSUMER_BATCH_MAX,
  SENSOR_CONSUMER_LINGER_MS,
  SENSOR_CONSUMER_PARTITIONS_CONCURRENTLY,
  type SensorDeltaConsumerDeps,
  startSensorDeltaConsumer,
} from "./delta_consumer.ts";
export {
  createSensorBatchApplier,
  createSensorBatchRoutes,
  internalSigningKeyOf,
  SENSOR_BATCH_PATH,
  type WriterElsewhere,
} from "./forward_batch.ts";
export {
  eventIdOf,
  MESSAGE_ID_PROPERTY,
  messageIdOf,
  readSensorMessage,
  SENSOR_PAYLOAD_BYTES_MAX,
  SENSOR_TOPIC_FILTER,
  type SensorDelta,
  type SensorPayload,
  sensorPayloadSchema,
} from "./sensor_delta.ts";
