/**
 * The writer's sensor-batch route reads no body it will refuse on the headers alone, and reads a signed one within
 * its bound as it arrives: a chunked body (no Content-Length) from anyone who reaches the service port used to be
 * buffered whole before the signature was checked.
 */
import assert from "node:assert/strict";
import { generateSecret, signatureHeaders } from "../webhooks/signing.ts";
import { createSensorBatchRoutes, SENSOR_BATCH_PATH } from "./forward_batch.ts";

const SIGNING_KEY = generateSecret();
const MIB = 1024 * 1024;

/** POSTs `totalMib` MiB as a chunked body; resolves with the answer and how many MiB the server pulled. */
async function postChunked(headers: Record<string, string>, totalMib: number) {
  const routes = createSensorBatchRoutes({
    sql: {} as never, // never reached: every request here is refused before the batch is read
    writerElsewhere: () => Promise.resolve(undefined),
    nudgeOutbox: () => {},
    signingKey: SIGNING_KEY,
  });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, routes.fetch);
  const chunk = new Uint8Array(MIB).fill(0x61);
  let pulledMib = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulledMib >= totalMib) return controller.close();
      pulledMib++;
      controller.enqueue(chunk);
    },
  });
  try {
    const response = await fetch(`http://127.0.0.1:${server.addr.port}${SENSOR_BATCH_PATH}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
    const problem = await response.json();
    return { status: response.status, contentType: response.headers.get("content-type"), problem, pulledMib };
  } finally {
    await server.shutdown();
  }
}

Deno.test("the writer refuses a sensor batch with a stale or missing signature before reading its body", async () => {
  const stale = await signatureHeaders(
    { webhookId: "w-1", timestampSec: Math.floor(Date.now() / 1000) - 3_600, body: "{}" },
    [SIGNING_KEY],
  );
  for (const [what, headers] of [["stale", stale], ["bogus", { "webhook-signature": "v1,AAAA" }]] as const) {
    const answer = await postChunked(headers, 200);
    assert.equal(answer.status, 401, what);
    assert.equal(answer.problem.code, "COMMON.SIGNATURE_INVALID", what);
    // The client's fetch and the sockets buffer a few MiB ahead of the server whatever it does.
    assert.ok(answer.pulledMib <= 32, `${what}: ${answer.pulledMib} MiB of a body refused unread were sent`);
  }
});

Deno.test("the writer answers 413 problem+json to a signed chunked sensor batch over its bound, reading no more", async () => {
  // Headers that pass the early check (the body is then read, within the bound, and would fail the signature).
  const headers = await signatureHeaders(
    { webhookId: "w-2", timestampSec: Math.floor(Date.now() / 1000), body: "{}" },
    [SIGNING_KEY],
  );
  const answer = await postChunked(headers, 200);
  assert.equal(answer.status, 413);
  assert.equal(answer.contentType, "application/problem+json");
  assert.equal(answer.problem.code, "COMMON.PAYLOAD_TOO_LARGE");
  assert.ok(answer.pulledMib <= 40, `${answer.pulledMib} MiB were sent to a server bound to 8 MiB`);
});
