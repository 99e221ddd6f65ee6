import assert from "node:assert/strict";
import { Hono } from "hono";
import { ProblemError } from "../contracts/problem.ts";
import { installProblemHandlers } from "./problem_response.ts";
import { bodyTooLarge, boundedBody, boundRequestBodies, requestBodyBoundsOf } from "./request_body.ts";
import { pause } from "./upload_client_for_test.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

/**
 * A client body that sends `chunks`, then ends (`"end"`), stalls for ever (`"stall"`) or fails (`"fail"`); a cancel
 * is recorded in `cancelled`.
 */
function clientBody(
  chunks: string[],
  then: "end" | "stall" | "fail",
  cancelled?: unknown[],
): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at < chunks.length) return controller.enqueue(bytes(chunks[at++]));
      if (then === "end") return controller.close();
      if (then === "fail") return controller.error(new Error("connection reset"));
      return new Promise<void>(() => {});
    },
    cancel: (reason) => void cancelled?.push(reason),
  }, { highWaterMark: 0 });
}

async function failureOf(stream: ReadableStream<Uint8Array>): Promise<ProblemError> {
  try {
    await new Response(stream).arrayBuffer();
  } catch (error) {
    assert.ok(error instanceof ProblemError, String(error));
    return error;
  }
  assert.fail("the body was read to its end");
}

Deno.test("boundedBody() passes a body within its bounds through as it is", async () => {
  const body = boundedBody(clientBody(["ab", "cd"], "end"), requestBodyBoundsOf({ bytesMax: 4, idleTimeoutMs: 500 }));
  assert.equal(await new Response(body).text(), "abcd");
});

Deno.test("boundedBody() fails with 413 stating the bound once more than bytesMax bytes arrived", async () => {
  const cancelled: unknown[] = [];
  const problem = await failureOf(
    boundedBody(
      clientBody(["ab", "cd", "e"], "stall", cancelled),
      requestBodyBoundsOf({ bytesMax: 4, idleTimeoutMs: 500 }),
    ),
  );
  assert.equal(problem.code, "COMMON.PAYLOAD_TOO_LARGE");
  assert.equal(problem.status, 413);
  assert.match(problem.message, /limited to 4 bytes/);
  assert.equal(cancelled.length, 1, "the client's stream is cancelled, releasing its connection");
});

Deno.test("boundedBody() fails with 408 when no chunk arrives for idleTimeoutMs, and tells the hooks", async () => {
  const waits: boolean[] = [];
  const failed: string[] = [];
  const started = performance.now();
  const problem = await failureOf(
    boundedBody(clientBody(["ab"], "stall"), requestBodyBoundsOf({ idleTimeoutMs: 50 }), {
      onClientWait: (waiting) => waits.push(waiting),
      onFailed: (failure) => failed.push(failure.code),
    }),
  );
  assert.equal(problem.code, "COMMON.REQUEST_TIMEOUT");
  assert.equal(problem.status, 408);
  assert.ok(performance.now() - started >= 45);
  assert.deepEqual(waits, [true, false, true, false], "each read from the client is bracketed");
  assert.deepEqual(failed, ["COMMON.REQUEST_TIMEOUT"]);
});

Deno.test("boundedBody() fails with 400 when the client's stream fails, and keeps an inner bound's problem", async () => {
  const broken = await failureOf(boundedBody(clientBody(["ab"], "fail"), requestBodyBoundsOf()));
  assert.equal(broken.code, "COMMON.REQUEST_INCOMPLETE");
  assert.match(broken.message, /connection reset/);
  const inner = boundedBody(clientBody(["abcdef"], "end"), requestBodyBoundsOf({ bytesMax: 2 }));
  const outer = await failureOf(boundedBody(inner, requestBodyBoundsOf()));
  assert.equal(outer.code, "COMMON.PAYLOAD_TOO_LARGE", "the proxy behind a bounded service app answers 413 too");
});

Deno.test("requestBodyBoundsOf() fills in the defaults and refuses a bound that is not positive", () => {
  assert.deepEqual(requestBodyBoundsOf(), { bytesMax: 1024 * 1024, idleTimeoutMs: 10_000 });
  assert.throws(() => requestBodyBoundsOf({ bytesMax: 0 }), RangeError);
  assert.throws(() => requestBodyBoundsOf({ idleTimeoutMs: Number.NaN }), RangeError);
});

Deno.test("boundedBody()'s 413 and 408 say Connection: close, since the rest of the body is still on the connection", async () => {
  const tooLarge = await failureOf(boundedBody(clientBody(["abcde"], "stall"), requestBodyBoundsOf({ bytesMax: 4 })));
  const stalled = await failureOf(boundedBody(clientBody(["ab"], "stall"), requestBodyBoundsOf({ idleTimeoutMs: 50 })));
  for (const problem of [tooLarge, stalled]) assert.deepEqual(problem.headers, { connection: "close" }, problem.code);
  assert.deepEqual(bodyTooLarge(4, 10).headers, { connection: "close" }, "a declared size over the bound too");
});

/** Reads `conn` until end of file; resolves with what arrived (a reset counts as the end). */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(4096);
  let text = "";
  try {
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  } catch {
    // Reset or closed by the test: the end either way.
  }
  return text;
}

Deno.test("boundRequestBodies() answers a stalled upload 408 with Connection: close; Deno.serve closes once the client does", async () => {
  const app = new Hono();
  app.use("*", boundRequestBodies({ idleTimeoutMs: 100 }));
  app.post("/upload", async (c) => c.json({ bytes: (await c.req.arrayBuffer()).byteLength }));
  installProblemHandlers(app);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    // A keep-alive client (no `Connection: close` of its own) that declares 100 bytes and sends 10.
    const head = "POST /upload HTTP/1.1\r\nHost: upload.test\r\nContent-Type: application/json\r\nContent-Length: 100";
    await conn.write(bytes(`${head}\r\n\r\n0123456789`));
    let ended = false;
    const reading = readToEnd(conn).then((text) => {
      ended = true;
      return text;
    });
    await pause(400);
    // Deno 2.9.6 writes the header but does not close the connection itself while the client keeps its side open
    // (nor after a plain GET answered with it): a known gap, see `UNREAD_BODY_HEADERS`. Should this fail, Deno now
    // closes it; update that doc and docs/ARCHITECTURE.md.
    assert.equal(ended, false, "Deno.serve closed the connection on its own");
    // A client honouring the header closes its side; the server then closes too.
    await conn.closeWrite();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<string>((resolve) =>
      timer = setTimeout(() => resolve("no end of file within 2 s"), 2_000)
    );
    const answer = await Promise.race([reading, late]);
    clearTimeout(timer);
    assert.match(answer, /^HTTP\/1\.1 408 /);
    const answerHead = answer.slice(0, answer.indexOf("\r\n\r\n")).toLowerCase();
    assert.match(answerHead, /\r\nconnection: close(\r\n|$)/, answerHead);
    assert.equal(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)).code, "COMMON.REQUEST_TIMEOUT");
    assert.ok(ended, "the connection reached end of file once the client closed its side");
  } finally {
    conn.close();
    await server.shutdown();
  }
});
