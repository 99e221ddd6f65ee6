import assert from "node:assert/strict";
import { createHttp1Client } from "./http1_client.ts";

/** A server on a free port answering by path; returns its port and a stop function. */
function serve(handler: (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | Promise<Response>) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  return { port: server.addr.port, stop: () => server.shutdown() };
}

Deno.test("http1 client: content-length and chunked bodies, statuses, headers, one kept-alive connection", async () => {
  const clientPorts = new Set<number>();
  const big = "x".repeat(100_000);
  const server = serve((request, info) => {
    clientPorts.add(info.remoteAddr.port);
    const path = new URL(request.url).pathname;
    if (path === "/json") return Response.json({ hello: "world", seen: request.headers.get("x-probe") });
    if (path === "/big") return new Response(big);
    if (path === "/stream") {
      // A streamed body has no length: Deno.serve frames it with chunked transfer-encoding.
      const parts = ["first ", "second ", "third"];
      return new Response(
        new ReadableStream({
          async pull(controller) {
            const next = parts.shift();
            if (next === undefined) return controller.close();
            await new Promise((resolve) => setTimeout(resolve, 5));
            controller.enqueue(new TextEncoder().encode(next));
          },
        }),
      );
    }
    return new Response("missing", { status: 404 });
  });
  const client = createHttp1Client("127.0.0.1", server.port, { maxConnections: 1 });
  try {
    const json = await client.get("/json", { "x-probe": "42" });
    assert.equal(json.status, 200);
    assert.equal(json.headers.get("content-type"), "application/json");
    assert.deepEqual(JSON.parse(json.text()), { hello: "world", seen: "42" });
    const stream = await client.get("/stream");
    assert.equal(stream.headers.get("transfer-encoding"), "chunked");
    assert.equal(stream.text(), "first second third");
    assert.equal((await client.get("/big")).text(), big);
    const missing = await client.get("/nope");
    assert.deepEqual([missing.status, missing.text()], [404, "missing"]);
    // Twenty more in parallel over the one connection: each waits its turn and gets its own answer.
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => client.get("/json", { "x-probe": `${i}` })));
    assert.deepEqual(answers.map((a) => JSON.parse(a.text()).seen), Array.from({ length: 20 }, (_, i) => `${i}`));
  } finally {
    client.close();
    await server.stop();
  }
  assert.equal(clientPorts.size, 1, "every request went over the one kept-alive connection");
});

Deno.test("http1 client: a server that closes mid-answer or never answers rejects, and the client recovers", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      accepted++;
      const buffer = new Uint8Array(4096);
      await conn.read(buffer);
      if (accepted === 1) {
        // Promises 10 bytes, sends 3, hangs up.
        await conn.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"));
        conn.close();
      } else if (accepted === 2) {
        // Never answers (closed by the client's timeout).
      } else {
        await conn.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"));
      }
    }
  })();
  const client = createHttp1Client("127.0.0.1", (listener.addr as Deno.NetAddr).port, { timeoutMs: 300 });
  try {
    await assert.rejects(client.get("/a"), /closed before the answer was complete/);
    await assert.rejects(client.get("/b"), /no complete answer within 300 ms/);
    const ok = await client.get("/c");
    assert.deepEqual([ok.status, ok.text()], [200, "ok"]);
  } finally {
    client.close();
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("http1 client refuses header values that would split the request", async () => {
  const client = createHttp1Client("127.0.0.1", 9, {});
  await assert.rejects(client.get("/", { "x-evil": "a\r\nhost: elsewhere" }), /CR or LF/);
  client.close();
});
