/**
 * @module
 * One call to the legacy gateway, over SOAP (client built from the WSDL) or over its REST fallback, each
 * bounded by a timeout. Answers are validated; failures are sorted into "the gateway refused this request"
 * ({@linkcode GatewayRejectedError}, never retried) and everything else (transient, retried).
 */
import http from "node:http";
import soap from "soap";
import { z } from "zod";
import type { PaymentRequest, PaymentResult } from "../../contracts.ts";
import { callService } from "../../../../shared/runtime/mod.ts";

/** Answers larger than this are treated as garbage from the legacy side. */
const ANSWER_CHARS_MAX = 64 * 1024;

/** The gateway refused the request itself (invalid, or a different amount for a charged order). */
export class GatewayRejectedError extends Error {
  constructor(readonly kind: "invalid" | "conflict", message: string) {
    super(message);
    this.name = "GatewayRejectedError";
  }
}

const answerSchema = z.object({
  status: z.enum(["APPROVED", "DECLINED"]),
  authCode: z.string().min(1).max(64).optional(),
  reason: z.string().max(1_000).optional(),
});

/** Validates a gateway answer; anything unexpected is a (transient) failure, not a result. */
function resultOf(answer: unknown, via: PaymentResult["via"]): PaymentResult {
  const parsed = answerSchema.safeParse(answer);
  if (!parsed.success) throw new Error(`Gateway (${via}) answered something unreadable: ${JSON.stringify(answer)}`);
  const { status, authCode, reason } = parsed.data;
  if (status === "DECLINED") return { status, reason: reason ?? "Declined by the payment gateway", via };
  if (!authCode) throw new Error(`Gateway (${via}) approved without an auth code`);
  return { status, authCode, via };
}

interface ProcessPaymentClient {
  ProcessPaymentAsync(
    args: { orderId: string; amount: string; currency: string },
    options: { timeout: number; signal: AbortSignal; httpAgent: http.Agent },
  ): Promise<[unknown, ...unknown[]]>;
}

export interface SoapCaller {
  /** Fetches and parses the WSDL once (again after a failure). */
  connect(signal: AbortSignal): Promise<void>;
  call(request: PaymentRequest, signal: AbortSignal): Promise<PaymentResult>;
}

/** A SOAP client built lazily from `wsdlUrl`, so a gateway down at startup does not stop the service. */
export function createSoapCaller(options: { readonly wsdlUrl: string; readonly timeoutMs: number }): SoapCaller {
  // The WSDL's own address may name a host only the legacy network knows; call where the WSDL came from.
  const endpoint = new URL(options.wsdlUrl);
  endpoint.search = "";
  // No keep-alive: Deno 2.9's node:http resends a POST that was aborted on a reused connection
  // (denoland/deno#36786), so a timed-out attempt would reach the gateway twice. A fresh connection per
  // call costs a TCP handshake, nothing next to a legacy SOAP round trip.
  const agent = new http.Agent({ keepAlive: false, maxSockets: 64 });
  let client: Promise<ProcessPaymentClient> | undefined;

  function connect(signal: AbortSignal): Promise<ProcessPaymentClient> {
    if (client) return client;
    const created = soap.createClientAsync(options.wsdlUrl, {
      endpoint: endpoint.href,
      disableCache: true,
      wsdl_options: { timeout: options.timeoutMs, signal, httpAgent: agent },
    }) as unknown as Promise<ProcessPaymentClient>;
    client = created;
    created.catch(() => {
      if (client === created) client = undefined;
    });
    return created;
  }

  return {
    connect: async (signal) => void (await connect(signal)),
    async call(request, signal) {
      const soapClient = await connect(signal);
      let answer: unknown;
      try {
        // Both bounds on purpose: the signal is the policy's per-attempt timeout, axios' own timeout is
        // the backstop if the signal were ever lost on the way down.
        [answer] = await soapClient.ProcessPaymentAsync(
          { orderId: request.orderId, amount: request.amount, currency: request.currency },
          { timeout: options.timeoutMs, signal, httpAgent: agent },
        );
      } catch (error) {
        throw rejectionOfFault(error) ?? withStatus(error);
      }
      return resultOf(answer, "soap");
    },
  };
}

/** A SOAP 1.1 `Client*` fault means the request itself is wrong: retrying cannot help. */
function rejectionOfFault(error: unknown): GatewayRejectedError | undefined {
  const fault = (error as { root?: { Envelope?: { Body?: { Fault?: Record<string, unknown> } } } })?.root?.Envelope
    ?.Body?.Fault;
  const code = String(fault?.faultcode ?? "");
  const local = code.slice(code.indexOf(":") + 1);
  if (!local.startsWith("Client")) return undefined;
  return new GatewayRejectedError(local === "Client.Conflict" ? "conflict" : "invalid", String(fault?.faultstring));
}

/** A non-SOAP answer (a proxy's 503, say) surfaces from the soap package without a message: name its status. */
function withStatus(error: unknown): unknown {
  const status = (error as { response?: { status?: unknown } })?.response?.status;
  if (typeof status !== "number" || (error instanceof Error && error.message && error.message !== "undefined")) {
    return error;
  }
  return new Error(`SOAP gateway answered HTTP ${status} without a SOAP envelope`, { cause: error });
}

/** One charge over the REST fallback, bounded by `timeoutMs` (body included). */
export async function restCharge(url: string, request: PaymentRequest, timeoutMs: number): Promise<PaymentResult> {
  const response = await callService(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ orderId: request.orderId, amount: request.amount, currency: request.currency }),
    timeoutMs,
  });
  const text = await response.text();
  if (text.length > ANSWER_CHARS_MAX) throw new Error(`REST fallback answered ${text.length} characters`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`REST fallback answered HTTP ${response.status} with a body that is not JSON`);
  }
  const message = String((body as { message?: unknown })?.message ?? `HTTP ${response.status}`);
  if (response.status === 409) throw new GatewayRejectedError("conflict", message);
  // Only these say "your request is wrong"; a 404 or 429 is the gateway's problem (or ours to configure).
  if (response.status === 400 || response.status === 422) throw new GatewayRejectedError("invalid", message);
  if (!response.ok) throw new Error(`REST fallback answered HTTP ${response.status}: ${message}`);
  return resultOf(body, "rest-fallback");
}
