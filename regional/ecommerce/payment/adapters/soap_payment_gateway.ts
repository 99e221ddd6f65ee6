/**
 * @module
 * The {@linkcode PaymentGateway} the order context charges through: the legacy SOAP gateway under a
 * cockatiel policy (per-attempt timeout, retry with jittered exponential backoff, consecutive-failure
 * circuit breaker), and its REST fallback while the circuit is open or when SOAP gave up. Retrying is safe
 * because the gateway is idempotent by orderId: a repeated charge returns the first result.
 */
import {
  BrokenCircuitError,
  bulkhead,
  BulkheadRejectedError,
  circuitBreaker,
  CircuitState,
  ConsecutiveBreaker,
  handleWhen,
  type IBackoff,
  type IBackoffFactory,
  type IRetryBackoffContext,
  retry,
  TaskCancelledError,
  timeout,
  TimeoutStrategy,
  wrap,
} from "cockatiel";
import type { PaymentGateway, PaymentRequest, PaymentResult } from "../../contracts.ts";
import { formatMoney, parseMoney } from "../../../../shared/contracts/money.ts";
import { ProblemError } from "../../../../shared/contracts/problem.ts";
import { log } from "../../../../shared/observability/mod.ts";
import { type AttemptOutcome, type CircuitStateName, paymentMetrics, type PaymentVia } from "../payment_metrics.ts";
import { createSoapCaller, GatewayRejectedError, restCharge } from "./_gateway_calls.ts";

/** Charges in flight at once per process, and charges waiting for a slot; more is refused at once. */
export const CHARGES_CONCURRENT_MAX = 32;
export const CHARGES_QUEUED_MAX = 256;

export interface SoapPaymentGatewayOptions {
  /** Where the WSDL is served, e.g. `http://127.0.0.1:8089/soap/payment?wsdl`; calls go to the same URL. */
  readonly wsdlUrl: string;
  /** The REST fallback, e.g. `http://127.0.0.1:8089/rest/payments`. */
  readonly fallbackUrl: string;
  /** Bound of each SOAP attempt and of the REST fallback call. @default 2000 */
  readonly timeoutMs?: number;
  /** SOAP attempts per charge, the first included (seed 003, section 8). @default 5 */
  readonly attempts?: number;
  readonly breaker?: {
    /** Consecutive SOAP failures that open the circuit. @default 5 */
    readonly threshold?: number;
    /** How long the circuit stays open before one probe call is let through. @default 10000 */
    readonly halfOpenAfterMs?: number;
  };
  readonly backoff?: {
    /** Cap of the first retry delay; each retry doubles the cap. @default 100 */
    readonly initialDelayMs?: number;
    /** @default 2000 */
    readonly maxDelayMs?: number;
  };
  /** Jitter source, so a run can be replayed. @default Math.random */
  readonly random?: () => number;
  /** Sees every attempt and circuit change (tests, drills); must not throw. */
  readonly onEvent?: (event: PaymentGatewayEvent) => void;
}

export type PaymentGatewayEvent =
  | {
    readonly type: "attempt";
    readonly via: PaymentVia;
    readonly orderId: string;
    /** 1-based SOAP attempt of this charge; always 1 for the fallback. */
    readonly attempt: number;
    readonly outcome: AttemptOutcome;
    readonly durationMs: number;
    readonly error?: string;
  }
  | { readonly type: "circuit"; readonly state: CircuitStateName };

export interface SoapPaymentGateway extends PaymentGateway {
  /** Stops reporting; later charges throw. */
  close(): void;
  circuitState(): CircuitStateName;
}

function bounded(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Option ${name} is ${value}; pass an integer from ${min} to ${max}`);
  }
  return value;
}

/** "Equal jitter": half the doubling cap, plus a random share of the other half, so no retry is instant. */
function jitteredBackoff(
  initialDelayMs: number,
  maxDelayMs: number,
  random: () => number,
): IBackoffFactory<IRetryBackoffContext<unknown>> {
  const at = (attempt: number): IBackoff<IRetryBackoffContext<unknown>> => {
    const capMs = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
    return { duration: Math.round(capMs / 2 + (random() * capMs) / 2), next: (context) => at(context.attempt) };
  };
  return { next: (context) => at(context.attempt) };
}

/** Creates the gateway client; the WSDL is fetched now if the gateway answers, or on the first charge. */
export async function createSoapPaymentGateway(options: SoapPaymentGatewayOptions): Promise<SoapPaymentGateway> {
  for (const [name, url] of [["wsdlUrl", options.wsdlUrl], ["fallbackUrl", options.fallbackUrl]] as const) {
    if (!URL.canParse(url)) throw new TypeError(`Option ${name} "${url}" is not a URL`);
  }
  const timeoutMs = bounded("timeoutMs", options.timeoutMs ?? 2_000, 10, 60_000);
  const attempts = bounded("attempts", options.attempts ?? 5, 1, 10);
  const threshold = bounded("breaker.threshold", options.breaker?.threshold ?? 5, 1, 100);
  const halfOpenAfterMs = bounded("breaker.halfOpenAfterMs", options.breaker?.halfOpenAfterMs ?? 10_000, 10, 600_000);
  const initialDelayMs = bounded("backoff.initialDelayMs", options.backoff?.initialDelayMs ?? 100, 0, 60_000);
  const maxDelayMs = bounded("backoff.maxDelayMs", options.backoff?.maxDelayMs ?? 2_000, initialDelayMs, 60_000);
  const random = options.random ?? Math.random;
  const emit = (event: PaymentGatewayEvent) => {
    try {
      options.onEvent?.(event);
    } catch (error) {
      log.warn("payment onEvent listener threw", { error: String(error) });
    }
  };

  // Only transport failures, timeouts and server faults count: a refusal or an open circuit is not news
  // about the gateway's health, and retrying them cannot help.
  const transient = handleWhen((error) =>
    !(error instanceof GatewayRejectedError) && !(error instanceof BrokenCircuitError)
  );
  const breaker = circuitBreaker(transient, {
    halfOpenAfter: halfOpenAfterMs,
    breaker: new ConsecutiveBreaker(threshold),
  });
  const retryPolicy = retry(transient, {
    maxAttempts: attempts - 1, // cockatiel counts retries, not attempts.
    backoff: jitteredBackoff(initialDelayMs, maxDelayMs, random),
  });
  // Aggressive: the attempt is abandoned (and its request aborted) at the deadline, not when it returns.
  const attemptTimeout = timeout(timeoutMs, TimeoutStrategy.Aggressive);
  const soapPolicy = wrap(retryPolicy, breaker);
  const limiter = bulkhead(CHARGES_CONCURRENT_MAX, CHARGES_QUEUED_MAX);
  const soapCaller = createSoapCaller({ wsdlUrl: options.wsdlUrl, timeoutMs });

  let state: CircuitStateName = "closed";
  let closed = false;
  paymentMetrics.circuit(state);
  const subscriptions = [
    breaker.onStateChange((next) => {
      state = next === CircuitState.Closed ? "closed" : next === CircuitState.HalfOpen ? "half-open" : "open";
      paymentMetrics.circuit(state);
      const lastFailure = breaker.lastFailure;
      const cause = lastFailure && "error" in lastFailure ? describe(lastFailure.error) : undefined;
      if (state === "open") log.warn("payment circuit opened; charging through the REST fallback", { cause });
      else log.info(`payment circuit ${state}`, { halfOpenAfterMs });
      emit({ type: "circuit", state });
    }),
  ];

  const record = (
    via: PaymentVia,
    orderId: string,
    attempt: number,
    outcome: AttemptOutcome,
    startedMs: number,
    error?: unknown,
  ) => {
    paymentMetrics.attempt(via, outcome);
    const durationMs = Math.round(performance.now() - startedMs);
    emit({ type: "attempt", via, orderId, attempt, outcome, durationMs, ...(error ? { error: describe(error) } : {}) });
  };

  async function soapAttempt(request: PaymentRequest, attempt: number): Promise<PaymentResult> {
    const startedMs = performance.now();
    try {
      const result = await attemptTimeout.execute(({ signal }) => soapCaller.call(request, signal));
      record("soap", request.orderId, attempt, result.status === "APPROVED" ? "approved" : "declined", startedMs);
      return result;
    } catch (error) {
      record("soap", request.orderId, attempt, outcomeOf(error), startedMs, error);
      throw error;
    }
  }

  async function chargeOnce(request: PaymentRequest): Promise<PaymentResult> {
    let soapError: unknown;
    try {
      return await soapPolicy.execute(({ attempt }) => soapAttempt(request, attempt + 1));
    } catch (error) {
      if (error instanceof GatewayRejectedError) throw problemOfRejection(error, request);
      soapError = error;
    }
    const startedMs = performance.now();
    try {
      const result = await restCharge(options.fallbackUrl, request, timeoutMs);
      record("rest-fallback", request.orderId, 1, result.status === "APPROVED" ? "approved" : "declined", startedMs);
      return result;
    } catch (error) {
      record("rest-fallback", request.orderId, 1, outcomeOf(error), startedMs, error);
      if (error instanceof GatewayRejectedError) throw problemOfRejection(error, request);
      log.error("payment unavailable over SOAP and the REST fallback", {
        orderId: request.orderId,
        soap: describe(soapError),
        rest: describe(error),
      });
      throw new ProblemError(
        "ECOMMERCE.PAYMENT_UNAVAILABLE",
        `Payment of order "${request.orderId}" is not confirmed: the SOAP gateway (${describe(soapError)}) and ` +
          `its REST fallback (${
            describe(error)
          }) both failed; retry later with the same order id (never charged twice)`,
        { cause: error, headers: { "retry-after": String(Math.ceil(halfOpenAfterMs / 1_000)) } },
      );
    }
  }

  try {
    await soapCaller.connect(AbortSignal.timeout(timeoutMs));
  } catch (error) {
    log.warn("payment WSDL not loaded at startup; will load on the first charge", {
      wsdlUrl: options.wsdlUrl,
      error: describe(error),
    });
  }

  return {
    async charge(request) {
      if (closed) throw new Error("Payment gateway client is closed; create a new one");
      const checked = checkedRequest(request);
      try {
        return await limiter.execute(() => chargeOnce(checked));
      } catch (error) {
        if (!(error instanceof BulkheadRejectedError)) throw error;
        throw new ProblemError(
          "ECOMMERCE.PAYMENT_UNAVAILABLE",
          `Too many payments in progress (${CHARGES_CONCURRENT_MAX} running, ${CHARGES_QUEUED_MAX} waiting); retry shortly`,
          { headers: { "retry-after": "1" } },
        );
      }
    },
    circuitState: () => state,
    close() {
      closed = true;
      for (const subscription of subscriptions) subscription.dispose();
    },
  };
}

/** Normalises the amount to two fraction digits; refuses what the gateway would refuse, before any call. */
function checkedRequest(request: PaymentRequest): PaymentRequest {
  const invalid = (detail: string) => new ProblemError("COMMON.VALIDATION_FAILED", detail);
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(request.orderId)) {
    throw invalid(`Order id "${request.orderId}" is not chargeable; use 1-64 letters, digits or . _ : -`);
  }
  if (!/^[A-Z]{3}$/.test(request.currency)) {
    throw invalid(`Currency "${request.currency}" is not an ISO 4217 code; use e.g. "USD"`);
  }
  let units: bigint;
  try {
    units = parseMoney(request.amount);
  } catch {
    throw invalid(`Amount "${request.amount}" is not a decimal amount; use e.g. "129.50"`);
  }
  // parseMoney keeps 4 fraction digits; the gateway takes cents, and money is never rounded silently.
  if (units <= 0n || units % 100n !== 0n) {
    throw invalid(`Amount "${request.amount}" must be positive with at most two fraction digits, e.g. "129.50"`);
  }
  return { orderId: request.orderId, amount: formatMoney(units), currency: request.currency };
}

function problemOfRejection(error: GatewayRejectedError, request: PaymentRequest): ProblemError {
  return new ProblemError(
    error.kind === "conflict" ? "COMMON.CONFLICT" : "COMMON.VALIDATION_FAILED",
    `Payment gateway refused order "${request.orderId}": ${error.message}`,
    { cause: error },
  );
}

function outcomeOf(error: unknown): AttemptOutcome {
  if (error instanceof GatewayRejectedError) return "rejected";
  if (error instanceof TaskCancelledError) return "timeout";
  if (error instanceof ProblemError && error.code === "COMMON.UPSTREAM_TIMEOUT") return "timeout";
  if ((error as Error)?.name === "TimeoutError") return "timeout";
  return "failed";
}

function describe(error: unknown): string {
  if (error instanceof BrokenCircuitError) return "circuit open";
  if (error instanceof TaskCancelledError) return "timed out";
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
