/**
 * @module
 * Which region writes orders: the `order_writer` row's cached reader, shared by every service of a region since
 * security's auth writes follow the same writer (`regional/wiring/writer/writer_role.ts`).
 */
export { createWriterRoleReader, type WriterRole, type WriterRoleReader } from "../../../wiring/writer/mod.ts";
