/**
 * @module
 * What the server wrapper needs to know about one call beyond its request: its deadline and cancellation as
 * a {@linkcode GrpcCallBound}, whether its bytes decoded at all, and whether a bind address stays on the host.
 */
import type * as grpc from "@grpc/grpc-js";
import { isIP } from "node:net";
import type { GrpcCallBound } from "./server.ts";

/** A call's bound plus the clean-up the wrapper runs when the handler is done. */
export interface CallBoundHandle extends GrpcCallBound {
  dispose(): void;
}

/** The call's deadline (grpc-js parsed `grpc-timeout`) and a signal aborted when grpc-js ends the call. */
export function callBoundOf(call: grpc.ServerUnaryCall<unknown, unknown>): CallBoundHandle {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  const controller = new AbortController();
  // grpc-js emits "cancelled" for every end of the stream (deadline, client cancel, reset, and also after
  // a normal answer): by then the handler is done, so an abort after the answer changes nothing.
  const onCancelled = () => controller.abort(new Error("The gRPC call ended before its handler finished"));
  if (call.cancelled) onCancelled();
  else call.once("cancelled", onCancelled);
  return {
    deadlineAt: Number.isFinite(at) ? at : undefined,
    signal: controller.signal,
    dispose: () => void call.removeListener("cancelled", onCancelled),
  };
}

const UNREADABLE = Symbol("unreadable request");

interface UnreadableRequest {
  readonly [UNREADABLE]: string;
}

/** Why the request bytes did not decode, or undefined for a decoded request. */
export function unreadableRequestOf(request: unknown): string | undefined {
  return typeof request === "object" && request !== null && UNREADABLE in request
    ? (request as UnreadableRequest)[UNREADABLE]
    : undefined;
}

/**
 * The definition with every unary method's request decoder made total: bytes that are no valid message
 * decode to a marker instead of throwing. grpc-js answers a throwing decoder with INTERNAL and no problem
 * code, which our own client reads as a broken transport (it replaces its channel); the wrapper answers the
 * marker with INVALID_ARGUMENT and `COMMON.VALIDATION_FAILED`, as for any other bad request.
 */
export function tolerantDefinition(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return Object.fromEntries(
    Object.entries(definition).map(([name, method]) => {
      if (method.requestStream || method.responseStream) return [name, method];
      const decode = method.requestDeserialize;
      const requestDeserialize = (bytes: Buffer) => {
        try {
          return decode(bytes);
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          return { [UNREADABLE]: reason.slice(0, 200) } satisfies UnreadableRequest;
        }
      };
      return [name, { ...method, requestDeserialize }];
    }),
  );
}

/** Whether a bind address is reachable from this host only (`127.0.0.0/8`, `::1`, `localhost`). */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (bare === "localhost") return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  // The URL parser writes an IPv6 address in its shortest form (`0:0:0:0:0:0:0:1` → `[::1]`).
  return isIP(bare) === 6 && new URL(`http://[${bare}]/`).hostname === "[::1]";
}
