/**
 * @module
 * A grpc-js server with the platform's edge behaviour on every unary method: the caller's W3C trace
 * context becomes the handler's, a thrown `ProblemError` becomes its gRPC status plus the stable code in
 * trailing metadata, and any other error becomes INTERNAL without leaking its message.
 */
import * as grpc from "@grpc/grpc-js";
import { grpcStatusOf, ProblemError } from "../../contracts/problem.ts";
import { PROBLEM_CODE_METADATA } from "../../contracts/grpc_problem.ts";
import { contextFromCarrier, currentTraceId, log, withTraceContext } from "../../observability/mod.ts";
import { GRPC_MESSAGE_BYTES_MAX } from "./_proto.ts";

/**
 * A unary method: returns (or resolves to) the response, throws `ProblemError` for an expected failure.
 * Request and response types come from the proto at run time, hence `any` as the default.
 */
// deno-lint-ignore no-explicit-any
export type UnaryHandler<Req = any, Res = any> = (
  request: Req,
  call: grpc.ServerUnaryCall<Req, Res>,
) => Res | Promise<Res>;

export interface GrpcServiceBinding {
  /** From a loaded proto: `serviceClientOf(pkg, "grpc.health.v1.Health").service`. */
  readonly definition: grpc.ServiceDefinition;
  /**
   * By method name as in the proto (`Check`) or its camelCase form (`check`). Unary methods take a
   * {@linkcode UnaryHandler}; streaming methods take a grpc-js handler (run inside the caller's trace
   * context, errors not mapped). A missing method answers UNIMPLEMENTED.
   */
  readonly implementation: Readonly<Record<string, UnaryHandler | grpc.UntypedHandleCall>>;
}

export interface GrpcServerOptions {
  /** Interface to bind. The server is plaintext, so only loopback or a trusted network. @default "127.0.0.1" */
  readonly host?: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly services: readonly GrpcServiceBinding[];
}

export interface GrpcServer {
  /** The bound port (the chosen one when `port` was 0). */
  readonly port: number;
  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then cancels the rest. */
  close(graceMs: number): Promise<void>;
}

/** Starts a plaintext gRPC server with every unary handler wrapped; resolves once it is bound. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  if (options.services.length === 0) throw new TypeError("startGrpcServer() requires at least one service");
  const server = new grpc.Server({
    "grpc.max_receive_message_length": GRPC_MESSAGE_BYTES_MAX,
    "grpc.max_send_message_length": GRPC_MESSAGE_BYTES_MAX,
    // Channelz (on by default) wraps every call in counters and timestamps that nothing here reads.
    "grpc.enable_channelz": 0,
  });
  for (const { definition, implementation } of options.services) {
    server.addService(definition, wrapImplementation(definition, implementation));
  }
  const bindHost = options.host ?? "127.0.0.1";
  // grpc-js parses `host:port`: an IPv6 address (`::` binds every interface) needs its brackets.
  const host = bindHost.includes(":") && !bindHost.startsWith("[") ? `[${bindHost}]` : bindHost;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${options.port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
      if (error) reject(new Error(`Cannot bind gRPC server on "${host}:${options.port}": ${error.message}`));
      else resolve(bound);
    });
  });
  log.info("grpc listening", { address: `${host}:${port}`, services: options.services.length });
  let closing: Promise<void> | undefined;
  return {
    port,
    close: (graceMs) => closing ??= shutdown(server, graceMs),
  };
}

function shutdown(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      log.warn("grpc grace period over; cancelling in-flight calls", { graceMs });
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function wrapImplementation(
  definition: grpc.ServiceDefinition,
  implementation: GrpcServiceBinding["implementation"],
): grpc.UntypedServiceImplementation {
  const wrapped: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler = implementation[name] ?? implementation[String(method.originalName)];
    if (!handler) continue;
    wrapped[name] = method.requestStream || method.responseStream
      ? wrapStreaming(handler as grpc.UntypedHandleCall)
      : wrapUnary(method.path, handler as UnaryHandler);
  }
  return wrapped;
}

function wrapUnary(path: string, handler: UnaryHandler): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    withTraceContext(traceOf(call.metadata), async () => {
      let response: unknown;
      try {
        response = await handler(call.request, call);
      } catch (error) {
        callback(serviceErrorOf(error, path));
        return;
      }
      callback(null, response);
    });
  };
}

function wrapStreaming(handler: grpc.UntypedHandleCall): grpc.UntypedHandleCall {
  // grpc-js dispatches on the call object, so one pass-through works for all three streaming shapes.
  const run = handler as (call: { metadata: grpc.Metadata }, ...rest: unknown[]) => void;
  return ((call: { metadata: grpc.Metadata }, ...rest: unknown[]) =>
    withTraceContext(traceOf(call.metadata), () => run(call, ...rest))) as grpc.UntypedHandleCall;
}

function traceOf(metadata: grpc.Metadata) {
  return contextFromCarrier({
    traceparent: firstString(metadata, "traceparent"),
    "correlation-id": firstString(metadata, "correlation-id"),
  });
}

function firstString(metadata: grpc.Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === "string" ? value : undefined;
}

/** The one place a handler's error becomes a gRPC status. */
function serviceErrorOf(error: unknown, path: string): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  if (error instanceof ProblemError) {
    metadata.set(PROBLEM_CODE_METADATA, error.code);
    if (error.status >= 500) log.warn("grpc call failed", { method: path, code: error.code, detail: error.message });
    return { code: grpcStatusOf(error.code), details: error.message, metadata };
  }
  // Unexpected errors may carry internals (SQL, paths, secrets): the client gets the trace id to quote.
  log.error("grpc handler failed", {
    method: path,
    error: error instanceof Error ? error.message : String(error),
    stack: error instanceof Error ? error.stack : undefined,
  });
  metadata.set(PROBLEM_CODE_METADATA, "COMMON.INTERNAL");
  return {
    code: grpc.status.INTERNAL,
    details: `Internal error; quote trace id "${currentTraceId()}" when reporting it`,
    metadata,
  };
}
