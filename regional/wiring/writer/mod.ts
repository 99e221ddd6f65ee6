/**
 * @module
 * The single-writer role every service of a region shares (seed 000 section 5): the `order_writer` row's cached
 * reader, the migration SQL of the guard triggers, and the middleware that forwards a replica region's writes to
 * the writer region's ingress (signed hop, read-your-writes wait). E-commerce (orders/writer) and security (auth)
 * use it; which routes write and which tables are guarded stay with each service.
 */
export { createWriterRoleReader, type WriterRole, type WriterRoleReader } from "./writer_role.ts";
export { type ForwardWritesOptions, forwardWritesToWriter, WRITER_HEADER } from "./forward_writes.ts";
export {
  assertHopSigningKey,
  FORWARDED_FROM_HEADER,
  HOP_ID_HEADER,
  HOP_SIGNATURE_HEADER,
  HOP_SIGNATURE_TOLERANCE_SEC,
  HOP_TIMESTAMP_HEADER,
  type HopClaim,
  type HopVerdict,
  signedHopHeaders,
  verifiedHopOf,
} from "./hop_signature.ts";
export {
  READ_YOUR_WRITES_WAIT_MS_MAX,
  REPLICA_WAIT_HEADER,
  type ReplicationPositions,
  sqlReplicationPositions,
  waitForReplica,
  WRITER_LSN_HEADER,
} from "./read_your_writes.ts";
export { writerGuardMigrationSql } from "./writer_guard_sql.ts";
