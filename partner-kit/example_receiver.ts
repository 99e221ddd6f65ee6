/**
 * @module
 * A runnable webhook receiver for partners: verifies every delivery with the kit, refuses forgeries and
 * replays with 400 + a reason, processes each `webhook-id` once, and answers 2xx fast.
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
  /** Runs once per distinct `webhook-id`. */
  readonly onEvent: (event: ReceivedWebhook) => void | Promise<void>;
  readonly toleranceSec?: number;
}

/** A `fetch`-style handler for `Deno.serve` (or any web-standard server). */
export function createReceiver(options: ReceiverOptions): (request: Request) => Promise<Response> {
  const seen = new Set<string>();
  return async (request) => {
    if (request.method !== "POST") return new Response("Use POST\n", { status: 405 });
    const declared = Number(request.headers.get("content-length") ?? "0");
    if (declared > BODY_BYTES_MAX) return new Response("Body too large\n", { status: 413 });
    const bytes = new Uint8Array(await request.arrayBuffer());
    if (bytes.length > BODY_BYTES_MAX) return new Response("Body too large\n", { status: 413 });
    const verify = {
      headers: request.headers,
      body: bytes,
      secrets: options.secrets,
      toleranceSec: options.toleranceSec,
    };
    // Both schemes are checked: they use the same secret, so a mismatch in either means tampering.
    for (const result of [await verifyWebhook(verify), await verifyBvSignature(verify)]) {
      if (!result.ok) return new Response(`${result.code}: ${result.reason}\n`, { status: 400 });
    }
    const webhookId = request.headers.get("webhook-id")!;
    if (seen.has(webhookId)) return new Response(null, { status: 204 });
    const body = new TextDecoder().decode(bytes);
    let type = "";
    try {
      type = String(JSON.parse(body).type ?? "");
    } catch {
      return new Response("Body is not JSON\n", { status: 400 });
    }
    await options.onEvent({ webhookId, type, body });
    seen.add(webhookId);
    if (seen.size > SEEN_IDS_MAX) seen.delete(seen.values().next().value!);
    return new Response(null, { status: 204 });
  };
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
