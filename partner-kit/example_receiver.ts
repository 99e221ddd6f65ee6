/**
 * @module
 * A runnable webhook receiver for partners: verifies every delivery with the kit, refuses forgeries and
 * replays with 400 + a reason, processes each `webhook-id` once (even when two copies of a delivery arrive
 * together), and answers 2xx fast.
 *
 *     WEBHOOK_SECRETS=whsec_…[,whsec_…] PORT=8787 deno run --allow-net --allow-env partner-kit/example_receiver.ts
 *
 * Answer quickly: BitVelocity waits 15 s at most, then retries (30 s, 2 m, 5 m, 15 m, 30 m). Answer 410 Gone
 * to unsubscribe for good. Anything else non-2xx is retried.
 */
import { verifyBvSignature, verifyWebhook } from "./mod.ts";

/** Bodies above this are refused before verification (ours are a few KiB). */
const BODY_BYTES_MAX = 1024 * 1024;
/** Remembered webhook ids, for de-duplication of redeliveries; oldest forgotten first. */
const SEEN_IDS_MAX = 10_000;

export interface ReceivedWebhook {
  readonly webhookId: string;
  readonly type: string;
  readonly body: string;
}

export interface ReceiverOptions {
  readonly secrets: readonly string[];
  /** Runs once per distinct `webhook-id`; if it throws, the delivery answers 500 and its retry runs it again. */
  readonly onEvent: (event: ReceivedWebhook) => void | Promise<void>;
  readonly toleranceSec?: number;
}

/** A `fetch`-style handler for `Deno.serve` (or any web-standard server). */
export function createReceiver(options: ReceiverOptions): (request: Request) => Promise<Response> {
  const seen = new Set<string>();
  /** Ids whose onEvent is running: a copy arriving meanwhile waits for it instead of running it again. */
  const inFlight = new Map<string, Promise<void>>();
  return async (request) => {
    if (request.method !== "POST") return new Response("Use POST\n", { status: 405 });
    const bytes = await readBodyAtMost(request, BODY_BYTES_MAX);
    if (!bytes) return new Response("Body too large\n", { status: 413 });
    const verify = {
      headers: request.headers,
      body: bytes,
      secrets: options.secrets,
      toleranceSec: options.toleranceSec,
    };
    // Both schemes are checked: they use the same secret, so a mismatch in either means tampering.
    const standard = await verifyWebhook(verify);
    if (!standard.ok) return new Response(`${standard.code}: ${standard.reason}\n`, { status: 400 });
    const bv = await verifyBvSignature(verify);
    if (!bv.ok) return new Response(`${bv.code}: ${bv.reason}\n`, { status: 400 });
    // The id Standard Webhooks signed (X-BV-Signature does not cover it).
    const { webhookId } = standard;
    if (seen.has(webhookId)) return new Response(null, { status: 204 });
    const running = inFlight.get(webhookId);
    if (running) {
      // Same outcome as the copy already running: 204 once it is processed, 500 (retried) if it failed.
      await running;
      return new Response(null, { status: 204 });
    }
    const body = new TextDecoder().decode(bytes);
    let type = "";
    try {
      type = String(JSON.parse(body).type ?? "");
    } catch {
      return new Response("Body is not JSON\n", { status: 400 });
    }
    // Marked before the first await, so no second copy can start between the check above and here.
    const processing = Promise.resolve().then(() => options.onEvent({ webhookId, type, body }));
    inFlight.set(webhookId, processing);
    try {
      await processing;
    } finally {
      // On failure the id is left unmarked, so the sender's retry processes it.
      inFlight.delete(webhookId);
    }
    seen.add(webhookId);
    if (seen.size > SEEN_IDS_MAX) seen.delete(seen.values().next().value!);
    return new Response(null, { status: 204 });
  };
}

/**
 * The body, or undefined once it passes `bytesMax`. Counted while reading, so a chunked upload without
 * Content-Length stops at the cap instead of being read whole.
 */
async function readBodyAtMost(request: Request, bytesMax: number): Promise<Uint8Array | undefined> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > bytesMax) return undefined;
  if (!request.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > bytesMax) {
      await reader.cancel("Body too large").catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

if (import.meta.main) {
  const secrets = (Deno.env.get("WEBHOOK_SECRETS") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  if (secrets.length === 0) {
    console.error("Set WEBHOOK_SECRETS to your whsec_… secret (comma-separate two during a rotation)");
    Deno.exit(78);
  }
  const port = Number(Deno.env.get("PORT") ?? "8787");
  Deno.serve(
    { port, hostname: "0.0.0.0" },
    createReceiver({
      secrets,
      onEvent: ({ webhookId, type, body }) => console.log(`${new Date().toISOString()} ${webhookId} ${type} ${body}`),
    }),
  );
}
