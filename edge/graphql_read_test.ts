import assert from "node:assert/strict";
import { readGraphqlRequest } from "./graphql_read.ts";

const encoder = new TextEncoder();

function requestWith(body: ReadableStream<Uint8Array>): Request {
  return new Request("http://edge.local/graphql", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    // @ts-ignore: streaming request bodies need half-duplex mode (Fetch standard); Deno's types lack it.
    duplex: "half",
  });
}

Deno.test("readGraphqlRequest() gives up on a body that stalls past the idle bound and cancels it", async () => {
  let cancelled = false;
  const stalled = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode('{"query":"{ product(id: \\"p1\\")'));
      // Then nothing: a client that stopped sending without closing.
    },
    cancel() {
      cancelled = true;
    },
  });
  // Bounded, so a reader with no idle bound fails this test instead of hanging the suite.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<string>((resolve) => timer = setTimeout(() => resolve("still reading after 2 s"), 2_000));
  const read = await Promise.race([readGraphqlRequest(requestWith(stalled), 100), hung]);
  clearTimeout(timer);
  assert.equal(read, "timeout");
  assert.equal(cancelled, true, "the client's stream is released");
});

Deno.test("readGraphqlRequest() reads a body whose chunks come within the idle bound", async () => {
  const parts = ['{"query":"{ product(id: \\"p1\\") ', '{ id } }"}'];
  const trickled = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const part = parts.shift();
      if (part === undefined) return controller.close();
      await new Promise((resolve) => setTimeout(resolve, 30));
      controller.enqueue(encoder.encode(part));
    },
  });
  const read = await readGraphqlRequest(requestWith(trickled), 500);
  assert.ok(typeof read === "object", `read as ${String(read)}`);
  assert.equal(read.text, '{"query":"{ product(id: \\"p1\\") { id } }"}');
});
