/**
 * @module
 * The order-writer role (single writer per seed 000 section 5): the `order_writer` row and the guard
 * triggers, its cached reader, and the middleware that forwards order writes to the writer region.
 */
export { orderWriterMigrations, REPLICATED_ORDER_TABLES } from "./migrations.ts";
export { createWriterRoleReader, type WriterRole, type WriterRoleReader } from "./writer_role.ts";
export {
  FORWARDED_FROM_HEADER,
  forwardOrderWrites,
  type ForwardOrderWritesOptions,
  isOrderWrite,
  ORDER_WRITER_HEADER,
} from "./forward_writes.ts";
