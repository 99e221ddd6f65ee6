/**
 * @module
 * Read-your-writes for a write forwarded to the writer region (`x-bv-writer-lsn`, the replica's bounded wait):
 * shared with security's forwarded auth writes (`regional/wiring/writer/read_your_writes.ts`).
 */
export {
  READ_YOUR_WRITES_WAIT_MS_MAX,
  REPLICA_WAIT_HEADER,
  type ReplicationPositions,
  sqlReplicationPositions,
  waitForReplica,
  WRITER_LSN_HEADER,
} from "../../../wiring/writer/mod.ts";
