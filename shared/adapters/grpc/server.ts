/**
 * @module
 * A grpc-js server with the platform's edge behaviour on every unary method: the caller's W3C trace
 * context becomes the handler's, the call's deadline and cancellation reach the handler, a request that is
 * not a valid protobuf message is INVALID_ARGUMENT, a thrown `ProblemError` becomes its gRPC status plus the
 * stable code in trailing metadata, a SQL failure a retry may pass (the ones HTTP answers 503) becomes
 * UNAVAILABLE with `COMMON.UPSTREAM_UNAVAILABLE`, and any other error becomes INTERNAL without leaking its message.
 */
import * as grpc from "@grpc/grpc-js";
import { grpcStatusOf, type ProblemCode, ProblemError } from "../../contracts/problem.ts";
import { PROBLEM_CODE_METADATA } from "../../contracts/grpc_problem.ts";
import { contextFromCarrier, currentTraceId, log, withTraceContext } from "../../observability/mod.ts";
import { logEntryOfSqlFailure, problemOfSqlFailure } from "../../ports/sql_problem.ts";
import { GRPC_MESSAGE_BYTES_MAX } from "./_proto.ts";
import {
  type CallBoundHandle,
  callBoundOf,
  isLoopbackHost,
  tolerantDefinition,
  unreadableRequestOf,
} from "./_server_call.ts";

/** What the server tells a unary handler about its call's limits. */
export interface GrpcCallBound {
  /** When the caller stops waiting, in ms since the epoch; undefined when the call has no deadline. */
  readonly deadlineAt: number | undefined;
  /** Aborted once the call is over for the caller: its deadline passed, it cancelled, or the connection closed. */
  readonly signal: AbortSignal;
}

/**
 * A unary method: returns (or resolves to) the response, throws `ProblemError` for an expected failure.
 * Request and response types come from the proto at run time, hence `any` as the default. A handler that
 * writes should stop (roll back) when `bound.signal` aborts: nobody will read its answer.
 */
// deno-lint-ignore no-explicit-any
export type UnaryHandler<Req = any, Res = any> = (
  request: Req,
  call: grpc.ServerUnaryCall<Req, Res>,
  bound: GrpcCallBound,
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
  /**
   * The largest request message this service accepts, in bytes: size it to the largest valid request. The
   * server takes the largest of its services' bounds and answers RESOURCE_EXHAUSTED to a bigger message
   * before decoding it. @default GRPC_MESSAGE_BYTES_MAX
   */
  readonly requestBytesMax?: number;
  /**
   * Problem codes this service answers with another gRPC status than `grpcStatusOf` gives. HTTP 409 is one
   * status for two gRPC meanings: ABORTED ("retry the read-modify-write") and FAILED_PRECONDITION ("no retry
   * helps until the state changes"); a service whose conflicts are all of the second kind says so here.
   * HTTP answers are unaffected.
   */
  readonly statusOverrides?: Readonly<Partial<Record<ProblemCode, number>>>;
}

export interface GrpcServerOptions {
  /**
   * Interface to bind. The server is plaintext and unauthenticated, so only loopback or a trusted network:
   * any other address is logged as a warning at start. @default "127.0.0.1"
   */
  readonly host?: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly services: readonly GrpcServiceBinding[];
  /** Calls one HTTP/2 connection may run at once; a client queues the rest. @default GRPC_CONCURRENT_STREAMS_MAX */
  readonly maxConcurrentStreams?: number;
}

/**
 * Calls per connection at once. With the request bound this caps what one connection can make the server
 * hold (128 × 64 KiB for inventory); 128 stays above HTTP/2's recommended minimum of 100.
 */
export const GRPC_CONCURRENT_STREAMS_MAX = 128;

export interface GrpcServer {
  /** The bound port (the chosen one when `port` was 0). */
  readonly port: number;
  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then cancels the rest. */
  close(graceMs: number): Promise<void>;
}

/** Starts a plaintext gRPC server with every unary handler wrapped; resolves once it is bound. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  if (options.services.length === 0) throw new TypeError("startGrpcServer() requires at least one service");
  const streamsMax = options.maxConcurrentStreams ?? GRPC_CONCURRENT_STREAMS_MAX;
  if (!Number.isInteger(streamsMax) || streamsMax < 1) {
    throw new RangeError(`startGrpcServer() maxConcurrentStreams must be a positive integer, got ${streamsMax}`);
  }
  const requestBytesMax = Math.max(...options.services.map((s) => s.requestBytesMax ?? GRPC_MESSAGE_BYTES_MAX));
  if (!Number.isInteger(requestBytesMax) || requestBytesMax < 1 || requestBytesMax > GRPC_MESSAGE_BYTES_MAX) {
    throw new RangeError(`A service's requestBytesMax must be 1..${GRPC_MESSAGE_BYTES_MAX}, got ${requestBytesMax}`);
  }
  const server = new grpc.Server({
    "grpc.max_receive_message_length": requestBytesMax,
    "grpc.max_send_message_length": GRPC_MESSAGE_BYTES_MAX,
    "grpc.max_concurrent_streams": streamsMax,
    // Channelz (on by default) wraps every call in counters and timestamps that nothing here reads.
    "grpc.enable_channelz": 0,
  });
  for (const { definition, implementation, statusOverrides } of options.services) {
    server.addService(tolerantDefinition(definition), wrapImplementation(definition, implementation, statusOverrides));
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
  log.info("grpc listening", { address: `${host}:${port}`, services: options.services.length, requestBytesMax });
  if (!isLoopbackHost(bindHost)) {
    log.warn(
      "grpc server listens beyond loopback: it is plaintext and unauthenticated, so anyone who reaches " +
        "the port can call every method; bind it to 127.0.0.1 unless the network is trusted",
      { address: `${host}:${port}` },
    );
  }
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

type StatusOverrides = GrpcServiceBinding["statusOverrides"];

function wrapImplementation(
  definition: grpc.ServiceDefinition,
  implementation: GrpcServiceBinding["implementation"],
  overrides: StatusOverrides,
): grpc.UntypedServiceImplementation {
  const wrapped: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler = implementation[name] ?? implementation[String(method.originalName)];
    if (!handler) continue;
    wrapped[name] = method.requestStream || method.responseStream
      ? wrapStreaming(handler as grpc.UntypedHandleCall)
      : wrapUnary(method.path, handler as UnaryHandler, overrides);
  }
  return wrapped;
}

function wrapUnary(
  path: string,
  handler: UnaryHandler,
  overrides: StatusOverrides,
): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    withTraceContext(traceOf(call.metadata), async () => {
      const unreadable = unreadableRequestOf(call.request);
      if (unreadable !== undefined) {
        const problem = new ProblemError(
          "COMMON.VALIDATION_FAILED",
          `Request to "${path}" is not a valid protobuf message (${unreadable}); send the message the proto declares`,
        );
        callback(serviceErrorOf(problem, path, overrides));
        return;
      }
      const bound: CallBoundHandle = callBoundOf(call);
      let response: unknown;
      try {
        response = await handler(call.request, call, bound);
      } catch (error) {
        // Nobody reads the answer of a call that is over (its deadline passed, or the caller cancelled).
        if (!call.cancelled) callback(serviceErrorOf(error, path, overrides));
        else log.info("grpc handler failed after its call ended", { method: path, error: String(error) });
        return;
      } finally {
        bound.dispose();
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
function serviceErrorOf(error: unknown, path: string, overrides: StatusOverrides): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  // A SQL failure a retry may pass (lock not available, deadlock, statement timeout…) gets the problem an HTTP
  // request gets (`shared/ports/sql_problem.ts`): UNAVAILABLE, which our client retries, not INTERNAL.
  const unavailable = problemOfSqlFailure(error);
  if (unavailable) {
    const { level, fields } = logEntryOfSqlFailure(error);
    log[level]("grpc call failed on a database failure that a retry may pass", { method: path, ...fields });
  } else if (error instanceof ProblemError && error.status >= 500) {
    log.warn("grpc call failed", { method: path, code: error.code, detail: error.message });
  }
  const problem = unavailable ?? (error instanceof ProblemError ? error : undefined);
  if (problem) {
    metadata.set(PROBLEM_CODE_METADATA, problem.code);
    return { code: overrides?.[problem.code] ?? grpcStatusOf(problem.code), details: problem.message, metadata };
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
