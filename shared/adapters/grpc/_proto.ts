/**
 * @module
 * Loads `.proto` contracts at run time with @grpc/proto-loader. Every option is written here because the
 * loader's defaults (64-bit integers as `Long` objects, enums as numbers, absent fields left undefined)
 * are not what handlers written against JSON-like objects expect.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/** Largest request or response message, in bytes, on both sides (grpc-js's default, written down as a bound). */
export const GRPC_MESSAGE_BYTES_MAX = 4 * 1024 * 1024;

/** The repository's `proto/` folder: contracts are declared there once (STYLE.md habit 2). */
export const PROTO_ROOT: string = new URL("../../../proto/", import.meta.url).pathname;

const LOADER_OPTIONS: protoLoader.Options = Object.freeze({
  // Field names become camelCase (`sku_id` → `skuId`), the TypeScript convention.
  keepCase: false,
  // int64 as a decimal string: exact and JSON-safe, the same choice as SQL int8 (docs/ARCHITECTURE.md).
  longs: String,
  enums: String,
  // Absent scalar fields read as their proto3 default instead of undefined.
  defaults: true,
  // A set oneof member is named in a virtual field (`result: "reserved"`).
  oneofs: true,
  includeDirs: [PROTO_ROOT],
});

/**
 * Loads a `.proto` file (absolute, or relative to `proto/`) into a grpc-js package object, for example
 * `loadProto("grpc/health/v1/health.proto").grpc.health.v1.Health`.
 */
export function loadProto(path: string): grpc.GrpcObject {
  const file = path.startsWith("/") ? path : `${PROTO_ROOT}${path}`;
  const definition = protoLoader.loadSync(file, LOADER_OPTIONS);
  return grpc.loadPackageDefinition(definition);
}

/** Walks a dotted name (`grpc.health.v1.Health`) inside a loaded package; throws when it is missing. */
export function serviceClientOf(pkg: grpc.GrpcObject, name: string): grpc.ServiceClientConstructor {
  let node: unknown = pkg;
  for (const part of name.split(".")) node = (node as Record<string, unknown> | undefined)?.[part];
  if (typeof node !== "function" || !("service" in node)) {
    throw new TypeError(`Service "${name}" is not in the loaded proto: check the package and service name`);
  }
  return node as grpc.ServiceClientConstructor;
}
