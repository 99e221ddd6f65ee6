/**
 * The partner kit against the Standard Webhooks test vectors, plus rotation, replay and forgery cases.
 *
 * Vectors: standard-webhooks/standard-webhooks, `libraries/javascript/src/webhook.test.ts` (the reference
 * library's suite, mirrored in every language of that repository): secret
 * `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`, message id `msg_p5jXN8AQM9LWM0D4loKWxJek`, payload
 * `{"test": 2432232314}`, timestamp 1614265330 → `v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=` ("sign
 * function works"), and its verification cases (missing id/timestamp/signature, invalid and partial
 * signatures, ±5 min tolerance, multi-signature headers, secrets with and without the `whsec_` prefix).
 */
import assert from "node:assert/strict";
import { createReceiver } from "./example_receiver.ts";
import { verifyBvSignature, verifyWebhook } from "./mod.ts";

const VECTOR = Object.freeze({
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  msgId: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestampSec: 1614265330,
  payload: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
});
const at = (sec: number) => () => new Date(sec * 1000);
const vectorHeaders = (): Record<string, string> => ({
  "webhook-id": VECTOR.msgId,
  "webhook-timestamp": String(VECTOR.timestampSec),
  "webhook-signature": VECTOR.signature,
});

/** Signs like the reference library (HMAC-SHA256 over `id.timestamp.payload`, base64) for fresh timestamps. */
async function sign(secret: string, id: string, timestampSec: number, payload: string): Promise<string> {
  const raw = Uint8Array.from(atob(secret.replace(/^whsec_/, "")), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${id}.${timestampSec}.${payload}`));
  return `v1,${btoa(String.fromCharCode(...new Uint8Array(mac)))}`;
}

Deno.test("verifyWebhook() accepts the published Standard Webhooks vector", async () => {
  const result = await verifyWebhook({
    headers: vectorHeaders(),
    body: VECTOR.payload,
    secrets: [VECTOR.secret],
    now: at(VECTOR.timestampSec),
  });
  assert.deepEqual(result, { ok: true, webhookId: VECTOR.msgId, timestampSec: VECTOR.timestampSec });
  assert.equal(await sign(VECTOR.secret, VECTOR.msgId, VECTOR.timestampSec, VECTOR.payload), VECTOR.signature);
});

Deno.test("verifyWebhook() accepts the vector secret with and without the whsec_ prefix", async () => {
  for (const secret of [VECTOR.secret, VECTOR.secret.slice("whsec_".length)]) {
    const result = await verifyWebhook({
      headers: vectorHeaders(),
      body: VECTOR.payload,
      secrets: [secret],
      now: at(VECTOR.timestampSec),
    });
    assert.equal(result.ok, true, secret);
  }
});

Deno.test("verifyWebhook() names the missing header", async () => {
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
    const headers = vectorHeaders();
    delete headers[name];
    const result = await verifyWebhook({ headers, body: VECTOR.payload, secrets: [VECTOR.secret] });
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.code, "MISSING_HEADER");
    assert.match(!result.ok ? result.reason : "", new RegExp(name));
  }
});

Deno.test("verifyWebhook() refuses a timestamp that is not Unix seconds", async () => {
  const result = await verifyWebhook({
    headers: { ...vectorHeaders(), "webhook-timestamp": "hello" },
    body: VECTOR.payload,
    secrets: [VECTOR.secret],
  });
  assert.equal(!result.ok && result.code, "BAD_TIMESTAMP");
});

Deno.test("verifyWebhook() refuses invalid, partial and forged signatures", async () => {
  const now = at(VECTOR.timestampSec);
  const cases: [string, string][] = [
    ["v1,dawfeoifkpqwoekfpqoekf", "NO_MATCHING_SIGNATURE"],
    [VECTOR.signature.slice(0, 8), "NO_MATCHING_SIGNATURE"],
    ["v1,", "NO_MATCHING_SIGNATURE"],
    ["v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "BAD_SIGNATURE_HEADER"],
    ["garbage", "BAD_SIGNATURE_HEADER"],
  ];
  for (const [signature, code] of cases) {
    const result = await verifyWebhook({
      headers: { ...vectorHeaders(), "webhook-signature": signature },
      body: VECTOR.payload,
      secrets: [VECTOR.secret],
      now,
    });
    assert.equal(!result.ok && result.code, code, signature);
  }
  // The right signature over a changed body, or with another secret, is a forgery.
  const tampered = await verifyWebhook({
    headers: vectorHeaders(),
    body: '{"test": 2432232315}',
    secrets: [VECTOR.secret],
    now,
  });
  assert.equal(!tampered.ok && tampered.code, "NO_MATCHING_SIGNATURE");
  const otherSecret = await verifyWebhook({
    headers: vectorHeaders(),
    body: VECTOR.payload,
    secrets: ["whsec_" + btoa("another secret of 24 bytes!")],
    now,
  });
  assert.equal(!otherSecret.ok && otherSecret.code, "NO_MATCHING_SIGNATURE");
});

Deno.test("verifyWebhook() refuses timestamps more than 5 minutes old or ahead", async () => {
  const base = { headers: vectorHeaders(), body: VECTOR.payload, secrets: [VECTOR.secret] };
  const old = await verifyWebhook({ ...base, now: at(VECTOR.timestampSec + 300 + 1) });
  assert.equal(!old.ok && old.code, "TIMESTAMP_TOO_OLD");
  const ahead = await verifyWebhook({ ...base, now: at(VECTOR.timestampSec - 300 - 1) });
  assert.equal(!ahead.ok && ahead.code, "TIMESTAMP_TOO_NEW");
  assert.equal((await verifyWebhook({ ...base, now: at(VECTOR.timestampSec + 300) })).ok, true);
});

Deno.test("verifyWebhook() accepts a multi-signature header when one signature matches", async () => {
  const signature = [
    "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
    "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
    VECTOR.signature,
    "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
  ].join(" ");
  const result = await verifyWebhook({
    headers: { ...vectorHeaders(), "webhook-signature": signature },
    body: VECTOR.payload,
    secrets: [VECTOR.secret],
    now: at(VECTOR.timestampSec),
  });
  assert.equal(result.ok, true);
});

Deno.test("verifyWebhook() verifies during a rotation with either the old or the new secret", async () => {
  const oldSecret = VECTOR.secret;
  const newSecret = "whsec_" + btoa("a brand new secret, 32 bytes....");
  const nowSec = Math.floor(Date.now() / 1000);
  const both = `${await sign(newSecret, "msg_1", nowSec, "{}")} ${await sign(oldSecret, "msg_1", nowSec, "{}")}`;
  const headers = { "webhook-id": "msg_1", "webhook-timestamp": String(nowSec), "webhook-signature": both };
  for (const secrets of [[oldSecret], [newSecret], [newSecret, oldSecret]]) {
    assert.equal((await verifyWebhook({ headers, body: "{}", secrets })).ok, true);
  }
  const result = await verifyWebhook({ headers, body: "{}", secrets: ["not base64!"] });
  assert.equal(!result.ok && result.code, "BAD_SECRET");
});

Deno.test("verifyBvSignature() checks t=<ts>,v1=<hex> over timestamp and body", async () => {
  const nowSec = Math.floor(Date.now() / 1000);
  const raw = Uint8Array.from(atob(VECTOR.secret.slice(6)), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${nowSec}.{"a":1}`)));
  const hex = [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
  const ok = await verifyBvSignature({
    headers: { "X-BV-Signature": `t=${nowSec},v1=${"0".repeat(64)},v1=${hex}` },
    body: '{"a":1}',
    secrets: [VECTOR.secret],
  });
  assert.equal(ok.ok, true);
  const forged = await verifyBvSignature({
    headers: { "x-bv-signature": `t=${nowSec},v1=${hex}` },
    body: '{"a":2}',
    secrets: [VECTOR.secret],
  });
  assert.equal(!forged.ok && forged.code, "NO_MATCHING_SIGNATURE");
});

Deno.test("the example receiver answers 400 with the reason for a forged delivery and 204 once per id", async () => {
  const received: string[] = [];
  const handler = createReceiver({ secrets: [VECTOR.secret], onEvent: (e) => void received.push(e.webhookId) });
  const forged = await handler(
    new Request("http://receiver/", { method: "POST", headers: vectorHeaders(), body: VECTOR.payload }),
  );
  assert.equal(forged.status, 400);
  assert.match(await forged.text(), /TIMESTAMP_TOO_OLD/);
  assert.deepEqual(received, []);

  const nowSec = Math.floor(Date.now() / 1000);
  const body = '{"type":"ecommerce.order.order.paid.v1","data":{}}';
  const raw = Uint8Array.from(atob(VECTOR.secret.slice(6)), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const bvMac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${nowSec}.${body}`)));
  const headers = {
    "webhook-id": "msg_2",
    "webhook-timestamp": String(nowSec),
    "webhook-signature": await sign(VECTOR.secret, "msg_2", nowSec, body),
    "x-bv-signature": `t=${nowSec},v1=${[...bvMac].map((b) => b.toString(16).padStart(2, "0")).join("")}`,
  };
  for (let i = 0; i < 2; i++) {
    const response = await handler(new Request("http://receiver/", { method: "POST", headers, body }));
    assert.equal(response.status, 204);
  }
  assert.deepEqual(received, ["msg_2"], "a redelivery is acknowledged but processed once");
});

/** Both signature headers of a fresh delivery, as BitVelocity sends them. */
async function deliveryHeaders(id: string, body: string): Promise<Record<string, string>> {
  const nowSec = Math.floor(Date.now() / 1000);
  const raw = Uint8Array.from(atob(VECTOR.secret.slice(6)), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const bvMac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${nowSec}.${body}`)));
  return {
    "webhook-id": id,
    "webhook-timestamp": String(nowSec),
    "webhook-signature": await sign(VECTOR.secret, id, nowSec, body),
    "x-bv-signature": `t=${nowSec},v1=${[...bvMac].map((b) => b.toString(16).padStart(2, "0")).join("")}`,
  };
}

Deno.test("verifyBvSignature() vouches for no webhook id: X-BV-Signature does not sign the webhook-id header", async () => {
  const body = '{"a":1}';
  const genuine = await deliveryHeaders("msg_genuine", body);
  // Anyone can change the unsigned header; the X-BV-Signature still verifies, so it must not return it.
  const result = await verifyBvSignature({
    headers: { ...genuine, "webhook-id": "msg_chosen_by_an_attacker" },
    body,
    secrets: [VECTOR.secret],
  });
  assert.equal(result.ok, true);
  assert.equal("webhookId" in result, false, JSON.stringify(result));
  // The Standard Webhooks signature covers the id: the changed one is refused there.
  const standard = await verifyWebhook({
    headers: { ...genuine, "webhook-id": "msg_chosen_by_an_attacker" },
    body,
    secrets: [VECTOR.secret],
  });
  assert.equal(!standard.ok && standard.code, "NO_MATCHING_SIGNATURE");
});

Deno.test("the example receiver processes two copies of one delivery arriving together once", async () => {
  const received: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const handler = createReceiver({
    secrets: [VECTOR.secret],
    onEvent: async (e) => {
      received.push(e.webhookId);
      await gate;
    },
  });
  const body = '{"type":"ecommerce.order.order.paid.v1","data":{}}';
  const headers = await deliveryHeaders("msg_twice", body);
  const copies = [0, 1].map(() => handler(new Request("http://receiver/", { method: "POST", headers, body })));
  // Gives the second copy time to be verified and reach the de-duplication check while the first is held in
  // onEvent. Nothing observable marks that moment; a wait that is too short could only let the old,
  // duplicating code pass, never fail the fixed code.
  await new Promise((resolve) => setTimeout(resolve, 50));
  release();
  const statuses = (await Promise.all(copies)).map((r) => r.status);
  assert.deepEqual(statuses, [204, 204]);
  assert.deepEqual(received, ["msg_twice"], "two concurrent copies are processed once");
});

Deno.test("the example receiver processes a delivery again after onEvent failed for it", async () => {
  const received: string[] = [];
  let failNext = true;
  const handler = createReceiver({
    secrets: [VECTOR.secret],
    onEvent: (e) => {
      received.push(e.webhookId);
      if (failNext) {
        failNext = false;
        throw new Error("database down");
      }
    },
  });
  const body = '{"type":"ecommerce.order.order.paid.v1","data":{}}';
  const headers = await deliveryHeaders("msg_retry", body);
  const post = () => handler(new Request("http://receiver/", { method: "POST", headers, body }));
  await assert.rejects(post(), /database down/);
  assert.equal((await post()).status, 204);
  assert.equal((await post()).status, 204);
  assert.deepEqual(received, ["msg_retry", "msg_retry"], "the retry after the failure runs; the one after that not");
});

Deno.test("the example receiver stops reading a body without Content-Length at 1 MiB and answers 413", async () => {
  const chunkBytes = 64 * 1024;
  const offeredBytes = 8 * 1024 * 1024;
  let pulledBytes = 0;
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulledBytes >= offeredBytes) return controller.close();
      pulledBytes += chunkBytes;
      controller.enqueue(new Uint8Array(chunkBytes).fill(0x20));
    },
    cancel() {
      cancelled = true;
    },
  }, { highWaterMark: 0 });
  const handler = createReceiver({ secrets: [VECTOR.secret], onEvent: () => {} });
  const request = new Request("http://receiver/", { method: "POST", body });
  assert.equal(request.headers.get("content-length"), null, "a streamed (chunked) body declares no length");
  const response = await handler(request);
  assert.equal(response.status, 413);
  assert.ok(pulledBytes <= 1024 * 1024 + 2 * chunkBytes, `read ${pulledBytes} bytes of ${offeredBytes}`);
  assert.equal(cancelled, true, "the rest of the upload is refused, not drained");
});
