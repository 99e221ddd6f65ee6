/**
 * @module
 * A partner's receiver for tests: a real HTTP server whose routes behave as a scenario asks (succeed, fail
 * N times, always fail, answer 410) and which verifies EVERY request with the partner kit, recording the
 * verdict, so a test can assert that each delivery was authentic.
 */
import { verifyBvSignature, verifyWebhook } from "../../../partner-kit/mod.ts";

export interface ReceivedRequest {
  readonly path: string;
  readonly webhookId: string;
  readonly eventId: string;
  readonly body: string;
  readonly headers: Headers;
  readonly status: number;
  /** Both the Standard Webhooks and the X-BV-Signature verdicts of the partner kit. */
  readonly verified: boolean;
  readonly reason?: string;
  /** When the request arrived (`performance.now()`), before any `delayMs`. */
  readonly atMs: number;
}

export interface Behaviour {
  /** Secrets the partner knows for this route (current and, during a rotation, previous). */
  secrets: string[];
  /** Answers this status to the first `failFirst` requests of each event, then 204. */
  failFirst?: number;
  failStatus?: number;
  /** A fixed answer for every request (e.g. 410, or 500 to always fail). */
  status?: number;
  delayMs?: number;
}

export interface TestReceiver {
  readonly baseUrl: string;
  readonly requests: ReceivedRequest[];
  route(path: string, behaviour: Behaviour): string;
  forEvent(path: string, eventId: string): ReceivedRequest[];
  close(): Promise<void>;
}

export function startTestReceiver(): TestReceiver {
  const routes = new Map<string, Behaviour>();
  const requests: ReceivedRequest[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (request) => {
    const atMs = performance.now();
    const path = new URL(request.url).pathname;
    const behaviour = routes.get(path);
    const body = await request.text();
    if (!behaviour) return new Response("no such route", { status: 404 });
    const options = { headers: request.headers, body, secrets: behaviour.secrets };
    const verdicts = [await verifyWebhook(options), await verifyBvSignature(options)];
    const failed = verdicts.find((v) => !v.ok);
    let eventId = "";
    try {
      eventId = String(JSON.parse(body).eventId ?? "");
    } catch { /* recorded as is */ }
    const earlier = requests.filter((r) => r.path === path && r.eventId === eventId).length;
    let status = 204;
    if (failed) status = 400;
    else if (behaviour.status) status = behaviour.status;
    else if (earlier < (behaviour.failFirst ?? 0)) status = behaviour.failStatus ?? 503;
    requests.push({
      path,
      webhookId: request.headers.get("webhook-id") ?? "",
      eventId,
      body,
      headers: request.headers,
      status,
      verified: !failed,
      reason: failed && !failed.ok ? failed.reason : undefined,
      atMs,
    });
    if (behaviour.delayMs) await new Promise((r) => setTimeout(r, behaviour.delayMs));
    return new Response(null, { status });
  });
  const baseUrl = `http://127.0.0.1:${server.addr.port}`;
  return {
    baseUrl,
    requests,
    route: (path, behaviour) => {
      routes.set(path, behaviour);
      return `${baseUrl}${path}`;
    },
    forEvent: (path, eventId) => requests.filter((r) => r.path === path && r.eventId === eventId),
    close: () => server.shutdown(),
  };
}
