import assert from "node:assert/strict";
import { ProblemError } from "../contracts/problem.ts";
import { boundedBody, requestBodyBoundsOf } from "./request_body.ts";

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
