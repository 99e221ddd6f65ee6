/**
 * @module
 * The simulated legacy payment gateway: a real SOAP 1.1 service (the `soap` package on a `node:http`
 * server, WSDL at `?wsdl`) plus the REST fallback the gateway's vendor added later, both over one ledger
 * (idempotent by orderId). Latency, failure rate and outages are set at start or at run time
 * (`setBehaviour`, or `POST /control` from loopback) so tests and drills can break it on purpose.
 *
 * `failureRate`, `latencyMs` and `soapDown` model the legacy SOAP host; the REST fallback is a separate,
 * newer front end that stays healthy unless `restDown` is set.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import soap from "soap";
import { z } from "zod";
import {
  ChargeConflictError,
  chargeRequestSchema,
  type ChargeResult,
  createChargeLedger,
} from "../gateway/charge_ledger.ts";
import { paymentWsdl } from "../gateway/payment_wsdl.ts";
import { BodyTooLargeError, isLoopback, readBody, sendJson } from "../gateway/_node_http.ts";

export const SOAP_PATH = "/soap/payment";
export const REST_PATH = "/rest/payments";
export const CONTROL_PATH = "/control";
/** Request bodies (SOAP envelopes, JSON) above this are refused with 413. */
export const GATEWAY_BODY_BYTES_MAX = 64 * 1024;
/** The longest latency a drill may inject; longer would outlive any sane client timeout anyway. */
export const GATEWAY_LATENCY_MS_MAX = 60_000;

/** How the simulated gateway misbehaves; every field is optional in an update. */
export interface PaymentGatewayBehaviour {
  /** Fraction (0..1) of SOAP calls answered with a SOAP Fault (`soap:Server.Unavailable`, HTTP 500). */
  readonly failureRate?: number;
  /** Delay before each SOAP call is processed. */
  readonly latencyMs?: number;
  /** The SOAP host is down: everything under `/soap/` (WSDL included) answers HTTP 503 without an envelope. */
  readonly soapDown?: boolean;
  /** The REST fallback is down: `POST /rest/payments` answers HTTP 503. */
  readonly restDown?: boolean;
}

export interface PaymentGatewaySimulatorOptions {
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** @default 0 */
  readonly latencyMs?: number;
  /** @default 0 */
  readonly failureRate?: number;
  /** Drives failures and auth codes, so a run can be replayed. @default Math.random */
  readonly random?: () => number;
}

export interface PaymentGatewaySimulator {
  /** The origin, e.g. `http://127.0.0.1:8089`; `/control` hangs from it. */
  readonly url: string;
  /** `<origin>/soap/payment?wsdl`. */
  readonly wsdlUrl: string;
  /** `<origin>/rest/payments`. */
  readonly restUrl: string;
  setBehaviour(behaviour: PaymentGatewayBehaviour): void;
  /** Approved charges made (money moved); a repeated charge of one order counts once. */
  charges(): number;
  /** Requests received per front end (failed and refused ones included). */
  requests(): { readonly soap: number; readonly rest: number };
  close(): Promise<void>;
}

const behaviourSchema = z.strictObject({
  failureRate: z.number().min(0).max(1).optional(),
  latencyMs: z.number().int().min(0).max(GATEWAY_LATENCY_MS_MAX).optional(),
  soapDown: z.boolean().optional(),
  restDown: z.boolean().optional(),
});

/** Starts the simulator; resolves once the WSDL is parsed and the port is listening. */
export async function startPaymentGatewaySimulator(
  options: PaymentGatewaySimulatorOptions,
): Promise<PaymentGatewaySimulator> {
  const current: Required<PaymentGatewayBehaviour> = { failureRate: 0, latencyMs: 0, soapDown: false, restDown: false };
  const setBehaviour = (update: PaymentGatewayBehaviour): void => {
    const parsed = behaviourSchema.safeParse(update);
    if (!parsed.success) {
      throw new RangeError(`Invalid gateway behaviour ${JSON.stringify(update)}: ${z.prettifyError(parsed.error)}`);
    }
    Object.assign(current, Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined)));
  };
  setBehaviour({ failureRate: options.failureRate, latencyMs: options.latencyMs });
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65_535) {
    throw new RangeError(`Port ${options.port} is not a TCP port; pass 0..65535 (0 picks a free one)`);
  }
  const random = options.random ?? Math.random;
  const ledger = createChargeLedger({ random });
  const counts = { soap: 0, rest: 0 };
  const pauses = new Set<() => void>();
  const pause = (ms: number) =>
    ms <= 0 ? Promise.resolve() : new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        pauses.delete(done);
        resolve();
      }
      pauses.add(done);
    });

  async function processPayment(args: unknown): Promise<ChargeResult> {
    await pause(current.latencyMs);
    if (current.failureRate > 0 && random() < current.failureRate) {
      throw soapFault("soap:Server.Unavailable", "Legacy payment host is temporarily unavailable; retry later");
    }
    const parsed = chargeRequestSchema.safeParse(args);
    if (!parsed.success) throw soapFault("soap:Client.InvalidRequest", z.prettifyError(parsed.error));
    try {
      return ledger.charge(parsed.data);
    } catch (error) {
      if (error instanceof ChargeConflictError) throw soapFault("soap:Client.Conflict", error.message);
      throw error;
    }
  }

  async function handleRest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== "POST") return sendJson(res, 405, { message: "Use POST" }, { allow: "POST" });
    counts.rest++;
    if (current.restDown) {
      return sendJson(res, 503, { message: "Payment service is unavailable; retry later" }, { "retry-after": "1" });
    }
    if (!/^application\/json\b/i.test(req.headers["content-type"] ?? "")) {
      return sendJson(res, 415, { message: "Send the charge as application/json" });
    }
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req, GATEWAY_BODY_BYTES_MAX));
    } catch (error) {
      if (error instanceof BodyTooLargeError) return sendJson(res, 413, { message: error.message });
      return sendJson(res, 400, { message: "Body is not valid JSON" });
    }
    const parsed = chargeRequestSchema.safeParse(body);
    if (!parsed.success) return sendJson(res, 400, { message: z.prettifyError(parsed.error) });
    try {
      sendJson(res, 200, ledger.charge(parsed.data));
    } catch (error) {
      if (error instanceof ChargeConflictError) return sendJson(res, 409, { message: error.message });
      throw error;
    }
  }

  async function handleControl(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // Drills flip the gateway from this machine only; a control plane open to the network is an outage lever.
    if (!isLoopback(req.socket.remoteAddress)) return sendJson(res, 403, { message: "Control is loopback only" });
    if (req.method === "GET") return sendJson(res, 200, current);
    if (req.method !== "POST") return sendJson(res, 405, { message: "Use GET or POST" }, { allow: "GET, POST" });
    try {
      setBehaviour(JSON.parse(await readBody(req, GATEWAY_BODY_BYTES_MAX)));
    } catch (error) {
      return sendJson(res, 400, { message: error instanceof Error ? error.message : String(error) });
    }
    sendJson(res, 200, current);
  }

  const server = http.createServer({
    // Bounds on slow or idle clients; the legacy host itself is slow only when a drill says so.
    requestTimeout: 30_000,
    headersTimeout: 10_000,
    keepAliveTimeout: 5_000,
    maxHeaderSize: 16 * 1024,
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host ?? "127.0.0.1";
  const origin = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const services = { PaymentService: { PaymentPort: { ProcessPayment: processPayment } } };
  await new Promise<void>((resolve, reject) => {
    soap.listen(server, {
      path: SOAP_PATH,
      services,
      xml: paymentWsdl(`${origin}${SOAP_PATH}`),
      suppressStack: true,
      callback: (error: unknown) => (error ? reject(error) : resolve()),
    });
  });
  // soap.listen installed one listener that serves SOAP_PATH; route around it so outages and the other
  // endpoints are decided first.
  const soapListeners = server.listeners("request") as ((req: unknown, res: unknown) => void)[];
  server.removeAllListeners("request");
  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = new URL(req.url ?? "/", origin).pathname;
    const fail = (error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { message: `Simulator error: ${String(error)}` });
      else res.destroy();
    };
    if (path === REST_PATH) return void handleRest(req, res).catch(fail);
    if (path === CONTROL_PATH) return void handleControl(req, res).catch(fail);
    if (path === SOAP_PATH || path.startsWith(`${SOAP_PATH}/`)) {
      if (req.method === "POST") counts.soap++;
      if (current.soapDown) {
        res.writeHead(503, { "content-type": "text/plain", "retry-after": "1" });
        return void res.end("Legacy payment host unavailable");
      }
      const declared = Number(req.headers["content-length"] ?? Number.NaN);
      if (req.method === "POST" && !(declared <= GATEWAY_BODY_BYTES_MAX)) {
        // The soap package buffers the whole body, so the bound is enforced here, on the declared length.
        res.writeHead(Number.isNaN(declared) ? 411 : 413, { "content-type": "text/plain" });
        return void res.end(`Send a Content-Length of at most ${GATEWAY_BODY_BYTES_MAX} bytes`);
      }
      for (const listener of soapListeners) listener.call(server, req, res);
      return;
    }
    sendJson(res, 404, { message: `No resource at "${path}"; use ${SOAP_PATH}, ${REST_PATH} or ${CONTROL_PATH}` });
  });

  return {
    url: origin,
    wsdlUrl: `${origin}${SOAP_PATH}?wsdl`,
    restUrl: `${origin}${REST_PATH}`,
    setBehaviour,
    charges: () => ledger.approved(),
    requests: () => ({ ...counts }),
    async close() {
      for (const release of [...pauses]) release();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/** A SOAP 1.1 fault as the soap package expects it thrown from a service method. */
function soapFault(faultcode: string, faultstring: string): { Fault: Record<string, unknown> } {
  // SOAP 1.1 (section 6.2) answers every fault with HTTP 500, client faults included.
  return { Fault: { faultcode, faultstring, statusCode: 500 } };
}
