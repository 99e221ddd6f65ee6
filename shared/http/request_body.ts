/**
 * @module
 * Bounds on reading a client's request body, applied as the bytes arrive: a byte limit (a chunked body is never
 * buffered to be measured) and an idle deadline between chunks, so a client that stalls or trickles cannot hold a
 * connection, a handler or the upstream it was proxied to for as long as it likes. A body that breaks a bound errors
 * with a {@linkcode ProblemError} (413, 408; 400 when the client went away), which the problem handlers and the proxy
 * answer as it is; a 413 or 408 says `Connection: close` ({@linkcode UNREAD_BODY_HEADERS}). Web-standard streams only,
 * so the edge worker's proxy step can use it too.
 */
import type { MiddlewareHandler } from "hono";
import { ProblemError } from "../contracts/problem.ts";
import { JSON_BODY_BYTES_MAX } from "./json_body.ts";

/**
 * How long a request body may go without a single chunk before it is refused with 408. A client that is uploading
 * gets a segment out every round trip, even on a poor mobile link (a second or two at worst), so 10 s of silence means
 * it stalled or is holding the connection on purpose (slowloris). The bodies here are JSON of at most 1 MiB: a slow
 * but live client is never cut by it, and a stalled one gives its connection (and the upstream call it started)
 * back after 10 s instead of never.
 */
export const REQUEST_BODY_IDLE_TIMEOUT_MS = 10_000;

/**
 * Headers of an answer given before the request body was read to its end (413, 408): the unread rest of the body is
 * still on the connection, so neither side may send another request on it (RFC 9112 section 9.6: the client closes it
 * after this answer). Deno 2.9.6's server writes the header but does not close the connection itself: it does so once
 * the client closes its side, which a client honouring the header does (Deno's fetch opens a new connection for
 * the next request). A client that ignores it keeps the connection until an idle timeout in front of Deno ends it.
 */
export const UNREAD_BODY_HEADERS: Readonly<Record<string, string>> = Object.freeze({ connection: "close" });

export interface RequestBodyBounds {
  /** Largest body accepted, counted as it arrives. @default JSON_BODY_BYTES_MAX (1 MiB) */
  readonly bytesMax?: number;
  /** Longest wait for the body's next chunk. @default REQUEST_BODY_IDLE_TIMEOUT_MS (10 s) */
  readonly idleTimeoutMs?: number;
}

/** The bounds with their defaults filled in; a bound that is not a positive number throws here, at setup. */
export function requestBodyBoundsOf(bounds?: RequestBodyBounds): Readonly<Required<RequestBodyBounds>> {
  const bytesMax = bounds?.bytesMax ?? JSON_BODY_BYTES_MAX;
  const idleTimeoutMs = bounds?.idleTimeoutMs ?? REQUEST_BODY_IDLE_TIMEOUT_MS;
  if (!(bytesMax > 0)) throw new RangeError(`Request body bytesMax must be positive, got ${bytesMax}`);
  if (!(idleTimeoutMs > 0)) throw new RangeError(`Request body idleTimeoutMs must be positive, got ${idleTimeoutMs}`);
  return Object.freeze({ bytesMax, idleTimeoutMs });
}

/** 413 for a body over `bytesMax`; `declared` when its `Content-Length` said so before any byte was read. */
export function bodyTooLarge(bytesMax: number, declared?: number): ProblemError {
  const size = declared === undefined ? "" : ` (this one declares ${declared})`;
  return new ProblemError(
    "COMMON.PAYLOAD_TOO_LARGE",
    `Request bodies are limited to ${bytesMax} bytes${size}; send a smaller body`,
    { headers: UNREAD_BODY_HEADERS },
  );
}

/** The body's `Content-Length` when it is larger than `bytesMax`, else undefined. */
export function declaredOver(headers: Headers, bytesMax: number): number | undefined {
  const declared = Number(headers.get("content-length") ?? "0");
  return declared > bytesMax ? declared : undefined;
}

export interface BoundedBodyHooks {
  /**
   * Told `true` when a read from the client starts and `false` when it ends: the time between is the client's, so a
   * proxy stops the upstream's clock for it.
   */
  readonly onClientWait?: (waiting: boolean) => void;
  /** Told the problem the body failed with, before the stream errors with it. */
  readonly onFailed?: (problem: ProblemError) => void;
}

/**
 * `body` passed through as it is read, erroring with 413 once more than `bytesMax` bytes arrived, with 408 when no
 * chunk arrives for `idleTimeoutMs` while one is being waited for (both with {@linkcode UNREAD_BODY_HEADERS}), and with
 * 400 when reading the client's stream fails (it went away mid-upload). The client's stream is cancelled on any of
 * them.
 */
export function boundedBody(
  body: ReadableStream<Uint8Array>,
  bounds: Readonly<Required<RequestBodyBounds>>,
  hooks?: BoundedBodyHooks,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let bytes = 0;
  const fail = (controller: ReadableStreamDefaultController<Uint8Array>, problem: ProblemError) => {
    hooks?.onFailed?.(problem);
    controller.error(problem);
    reader.cancel(problem).catch(() => {});
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      hooks?.onClientWait?.(true);
      let stalled = false;
      // Cancelling ends the pending read at once (it resolves as done), so the stall is noticed on time.
      const timer = setTimeout(() => {
        stalled = true;
        reader.cancel(new Error("request body idle timeout")).catch(() => {});
      }, bounds.idleTimeoutMs);
      let chunk: ReadableStreamReadResult<Uint8Array> | undefined;
      let failure: unknown;
      try {
        chunk = await reader.read();
      } catch (error) {
        failure = error ?? new Error("request body failed");
      } finally {
        clearTimeout(timer);
        hooks?.onClientWait?.(false);
      }
      if (stalled) {
        return fail(
          controller,
          new ProblemError(
            "COMMON.REQUEST_TIMEOUT",
            `No part of the request body arrived for ${bounds.idleTimeoutMs} ms; send the body without pausing`,
            { headers: UNREAD_BODY_HEADERS },
          ),
        );
      }
      if (chunk === undefined) return fail(controller, incomplete(failure));
      if (chunk.done) return controller.close();
      bytes += chunk.value.byteLength;
      if (bytes > bounds.bytesMax) return fail(controller, bodyTooLarge(bounds.bytesMax));
      controller.enqueue(chunk.value);
    },
    cancel: (reason) => reader.cancel(reason),
    // Nothing is read ahead of the consumer: a read from the client happens only while someone waits for it, so
    // the idle deadline measures the client alone, never a consumer that is slow to take the chunks.
  }, { highWaterMark: 0 });
}

/** 400 for a client stream that failed; a bound an inner {@linkcode boundedBody} already applied passes as it is. */
function incomplete(error: unknown): ProblemError {
  if (error instanceof ProblemError) return error;
  return new ProblemError(
    "COMMON.REQUEST_INCOMPLETE",
    `The request body could not be read to its end (the client stopped sending): ${(error as Error)?.message ?? error}`,
    { cause: error },
  );
}

/**
 * Hono middleware: each request body is read through {@linkcode boundedBody}, so every handler's read is bounded in
 * size and idle time, without buffering the body first (a handler that needs it whole reads it itself). A declared
 * `Content-Length` over the limit is refused before any byte is read.
 */
export function boundRequestBodies(bounds?: RequestBodyBounds): MiddlewareHandler {
  const resolved = requestBodyBoundsOf(bounds);
  return async (c, next) => {
    const raw = c.req.raw;
    // No handler reads a GET or HEAD body (and a Request may not carry one), so it holds nothing up.
    if (raw.body === null || raw.method === "GET" || raw.method === "HEAD") return await next();
    const declared = declaredOver(raw.headers, resolved.bytesMax);
    if (declared !== undefined) throw bodyTooLarge(resolved.bytesMax, declared);
    // `new Request(raw, …)` keeps the client's signal; only the body is replaced.
    c.req.raw = new Request(raw, { body: boundedBody(raw.body, resolved), duplex: "half" } as RequestInit);
    await next();
  };
}
