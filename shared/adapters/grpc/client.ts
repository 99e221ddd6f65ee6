/**
 * @module
 * A grpc-js client whose every call has a deadline, carries the current trace context as metadata,
 * retries only on UNAVAILABLE (bounded, capped exponential backoff with jitter, inside the same deadline),
 * recreates its channel after an UNAVAILABLE (denoland/deno#26907) and fails with a `ProblemError`.
 */
import * as grpc from "@grpc/grpc-js";
import { ProblemError } from "../../contracts/problem.ts";
import { PROBLEM_CODE_METADATA, problemCodeOfGrpc } from "../../contracts/grpc_problem.ts";
import { log, traceHeaders } from "../../observability/mod.ts";
import { GRPC_MESSAGE_BYTES_MAX } from "./_proto.ts";

export interface GrpcRetryOptions {
  /** Attempts in all, the first included (1 = no retry); at most {@linkcode GRPC_ATTEMPTS_MAX}. */
  readonly maxAttempts: number;
  /** Backoff before the first retry; doubles per retry. */
  readonly baseDelayMs: number;
  /** Cap on one backoff delay. */
  readonly maxDelayMs: number;
}

export interface GrpcClientOptions {
  /** Budget of one call, all attempts and backoffs included (gRPC's own meaning of a deadline). */
  readonly deadlineMs: number;
  readonly retry: GrpcRetryOptions;
  /** Source of jitter in [0, 1); inject a seeded one to replay a test. @default Math.random */
  readonly random?: () => number;
  /** Called before each backoff; for metrics and tests. */
  readonly onRetry?: (event: GrpcRetryEvent) => void;
}

export interface GrpcRetryEvent {
  readonly method: string;
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  readonly delayMs: number;
  readonly details: string;
}

export interface GrpcClient {
  /** Calls a unary method by its proto name (`ReserveStock`); resolves to the response. */
  call<Res = unknown>(method: string, request: object, options?: { readonly deadlineMs?: number }): Promise<Res>;
  /** Closes the channel; later calls fail with `COMMON.UPSTREAM_UNAVAILABLE`. */
  close(): void;
}

/** Upper bound on `retry.maxAttempts`, so a misconfiguration cannot turn into a retry storm. */
export const GRPC_ATTEMPTS_MAX = 10;

const CHANNEL_OPTIONS: grpc.ChannelOptions = Object.freeze({
  // Subchannels are shared process-wide by default: a recreated channel would get the same stuck
  // connection back. A local pool makes "new channel" mean "new connection".
  "grpc.use_local_subchannel_pool": 1,
  // Our loop is the only retry policy, so attempts are counted (and bounded) in one place.
  "grpc.enable_retries": 0,
  // grpc-js backs off reconnects up to 120 s by default; we replace the channel instead (see below).
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1_000,
  "grpc.max_receive_message_length": GRPC_MESSAGE_BYTES_MAX,
  "grpc.max_send_message_length": GRPC_MESSAGE_BYTES_MAX,
  // Channelz (on by default) keeps per-call counters and timestamps that nothing here reads: CPU on every call.
  "grpc.enable_channelz": 0,
});

type UnaryMethod = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

/** Creates a client for one service at `address` (`host:port`); fails here on bad options. */
export function createGrpcClient(
  ClientCtor: grpc.ServiceClientConstructor,
  address: string,
  options: GrpcClientOptions,
): GrpcClient {
  assertOptions(options);
  const random = options.random ?? Math.random;
  const make = () => new ClientCtor(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  let channel: grpc.Client = make();
  let closed = false;

  // After a transport failure the old channel may be stuck on a dead HTTP/2 session (Deno does not always
  // report GOAWAY/close to grpc-js, denoland/deno#26907) or in a long reconnect backoff: start afresh.
  // Only the first failure on a channel replaces it, so concurrent failures do not churn connections.
  const replace = (failed: grpc.Client) => {
    if (closed || channel !== failed) return;
    failed.close();
    channel = make();
  };

  const attemptOnce = (client: grpc.Client, method: string, request: object, deadlineAt: number) =>
    new Promise<unknown>((resolve, reject) => {
      const fn = (client as unknown as Record<string, UnaryMethod>)[method];
      const metadata = new grpc.Metadata();
      for (const [key, value] of Object.entries(traceHeaders())) metadata.set(key, value);
      fn.call(client, request, metadata, { deadline: deadlineAt }, (error, response) => {
        if (error) reject(error);
        else resolve(response);
      });
    });

  return {
    async call<Res>(method: string, request: object, callOptions?: { readonly deadlineMs?: number }) {
      assertUnary(ClientCtor, method);
      const deadlineMs = callOptions?.deadlineMs ?? options.deadlineMs;
      if (!(deadlineMs > 0)) throw new RangeError(`Deadline must be positive, got ${deadlineMs} ms`);
      const deadlineAt = Date.now() + deadlineMs;
      for (let attempt = 1;; attempt++) {
        if (closed) throw new ProblemError("COMMON.UPSTREAM_UNAVAILABLE", `gRPC client for "${address}" is closed`);
        const client = channel;
        try {
          return await attemptOnce(client, method, request, deadlineAt) as Res;
        } catch (error) {
          const failure = error as grpc.ServiceError;
          if (isTransportFailure(failure)) replace(client);
          if (failure.code !== grpc.status.UNAVAILABLE) throw problemOf(error, method, attempt, deadlineMs);
          const delayMs = backoffMs(attempt, options.retry, random);
          // Retrying past the deadline would only turn "unavailable" into a misleading "timeout".
          if (attempt >= options.retry.maxAttempts || Date.now() + delayMs >= deadlineAt) {
            throw problemOf(error, method, attempt, deadlineMs);
          }
          const details = (error as grpc.ServiceError).details;
          log.warn("grpc call unavailable; retrying", { method, attempt, delayMs, details });
          options.onRetry?.({ method, attempt, delayMs, details });
          await new Promise((resolve) => setTimeout(resolve, delayMs));
        }
      }
    },
    close() {
      closed = true;
      channel.close();
    },
  };
}

/**
 * Whether a failed call ended in the transport rather than in a handler's answer. On Deno a dead session
 * shows up as UNAVAILABLE, as a call that hangs until DEADLINE_EXCEEDED, or as INTERNAL ("RST_STREAM
 * with code 2"); a handler's failure carries `bv-problem-code` (our servers set it on every error).
 */
function isTransportFailure(error: grpc.ServiceError): boolean {
  // An answer our handler gave carries its problem code: the channel delivered it, whatever the status (a handler's
  // UNAVAILABLE is a busy database or pool behind a working connection, and replacing the channel for it only
  // churned connections).
  const fromHandler = (error.metadata?.get(PROBLEM_CODE_METADATA).length ?? 0) > 0;
  if (fromHandler) return false;
  if (error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.DEADLINE_EXCEEDED) return true;
  return error.code !== grpc.status.UNIMPLEMENTED;
}

/**
 * Capped exponential backoff with "equal jitter": half the delay is fixed (a floor, so a flapping server
 * is not hammered), half is random (so clients that failed together do not retry together).
 */
export function backoffMs(attempt: number, retry: GrpcRetryOptions, random: () => number): number {
  const ceilingMs = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(ceilingMs / 2 + random() * ceilingMs / 2);
}

function problemOf(error: unknown, method: string, attempts: number, deadlineMs: number): ProblemError {
  const failure = error as Partial<grpc.ServiceError>;
  const status = failure.code ?? grpc.status.INTERNAL;
  const serverCode = failure.metadata?.get(PROBLEM_CODE_METADATA)[0];
  const code = problemCodeOfGrpc(status, typeof serverCode === "string" ? serverCode : undefined);
  const tries = attempts === 1 ? "1 attempt" : `${attempts} attempts`;
  const detail = code === "COMMON.UPSTREAM_UNAVAILABLE"
    ? `gRPC "${method}" is unavailable after ${tries}: ${failure.details}`
    : code === "COMMON.UPSTREAM_TIMEOUT"
    ? `gRPC "${method}" did not answer within its deadline of ${deadlineMs} ms`
    : failure.details || `gRPC "${method}" failed with status ${status}`;
  return new ProblemError(code, detail, { cause: error });
}

function assertUnary(ClientCtor: grpc.ServiceClientConstructor, method: string): void {
  const definition = ClientCtor.service[method];
  if (!definition) throw new TypeError(`Method "${method}" is not in service "${ClientCtor.serviceName}"`);
  if (definition.requestStream || definition.responseStream) {
    throw new TypeError(`Method "${method}" is streaming; GrpcClient.call() supports unary methods only`);
  }
}

function assertOptions({ deadlineMs, retry }: GrpcClientOptions): void {
  if (!Number.isInteger(deadlineMs) || deadlineMs <= 0) {
    throw new RangeError(`createGrpcClient() deadlineMs must be a positive integer, got ${deadlineMs}`);
  }
  if (!Number.isInteger(retry.maxAttempts) || retry.maxAttempts < 1 || retry.maxAttempts > GRPC_ATTEMPTS_MAX) {
    throw new RangeError(`retry.maxAttempts must be an integer in 1..${GRPC_ATTEMPTS_MAX}, got ${retry.maxAttempts}`);
  }
  if (!(retry.baseDelayMs >= 0) || !(retry.maxDelayMs >= retry.baseDelayMs)) {
    throw new RangeError(
      `retry delays must satisfy 0 <= baseDelayMs <= maxDelayMs, got ${retry.baseDelayMs} and ${retry.maxDelayMs}`,
    );
  }
}
