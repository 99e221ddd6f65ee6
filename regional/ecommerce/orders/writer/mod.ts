/**
 * @module
 * The order-writer role (single writer per seed 000 section 5): the `order_writer` row and the guard
 * triggers, its cached reader, and the middleware that forwards order writes to the writer region.
 */
export {
  orderWriterMigrations,
  REPLICATED_COMMERCE_TABLES,
  REPLICATED_ORDER_TABLES,
  REPLICATED_TABLES,
} from "./migrations.ts";
export { createWriterRoleReader, type WriterRole, type WriterRoleReader } from "../../../wiring/writer/mod.ts";
export {
  FORWARDED_FROM_HEADER,
  forwardOrderWrites,
  type ForwardOrderWritesOptions,
  isOrderWrite,
  isReplicatedWrite,
  ORDER_WRITER_HEADER,
} from "./forward_writes.ts";
export {
  READ_YOUR_WRITES_WAIT_MS_MAX,
  REPLICA_WAIT_HEADER,
  type ReplicationPositions,
  sqlReplicationPositions,
  waitForReplica,
  WRITER_LSN_HEADER,
} from "../../../wiring/writer/mod.ts";
export { bypassedWhileReplica } from "./replica_read_cache.ts";
