/**
 * proxyRequest() and a client's upload over real sockets: a stalled body, a slow but steady one, and a chunked one over
 * the limit. Deadlines are configured short; nothing sleeps longer than a trickle step.
 */
import assert from "node:assert/strict";
import { PROXY_ERROR_HEADER, type ProxyOptions, proxyRequest } from "./proxy.ts";
import { chunk, pause, startUpload } from "./upload_client_for_test.ts";

interface Received {
  readonly path: string;
  /** The whole body, or undefined when reading it failed (the proxy abandoned the call). */
  readonly body?: string;
  /** When the upstream saw the request's head (`performance.now()`). */
  readonly atMs: number;
}

/** An upstream that reads each body to its end and answers at once with what it read. */
function recordingUpstream() {
  const received: Received[] = [];
  let pending = 0;
  let heads = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const atMs = performance.now();
    heads++;
    pending++;
    const path = new URL(request.url).pathname;
    try {
      const body = await request.text();
      received.push({ path, body, atMs });
      return Response.json({ body }, { status: 201 });
    } catch {
      received.push({ path, atMs });
      return new Response(null, { status: 499 });
    } finally {
      pending--;
    }
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    received,
    /** Requests whose head arrived, read to the end or not. */
    heads: () => heads,
    /** Waits (briefly) until no request is being read: an abandoned upload has been noticed. */
    async settled(): Promise<void> {
      for (let i = 0; i < 100 && pending > 0; i++) await pause(10);
    },
    shutdown: () => server.shutdown(),
  };
}

/** A real proxy in front, so the client's body is a socket the test paces. */
function proxyTo(upstream: string, options: Omit<ProxyOptions, "upstream">) {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => proxyRequest(request, { upstream, ...options }),
  );
}

Deno.test("proxyRequest() answers 408 without the proxy's marker when the client's body stalls past bodyIdleTimeoutMs", async () => {
  const upstream = recordingUpstream();
  const proxy = proxyTo(upstream.url, { headersTimeoutMs: 3_000, bodyIdleTimeoutMs: 200 });
  // A keep-alive client: one sending `Connection: close` gets that header from Deno's server whatever the proxy says.
  const upload = await startUpload(proxy.addr.port, "POST /upload HTTP/1.1\r\ncontent-length: 100", {
    keepAlive: true,
  });
  try {
    const started = performance.now();
    await upload.send("0123456789");
    // Well under the upstream's 3 s: the stall is the client's, and the old proxy blamed the upstream after 3 s.
    const answer = await upload.answer(1_500);
    assert.ok(answer, "answered within 1.5 s");
    assert.equal(answer.status, 408);
    assert.equal(answer.headers.get(PROXY_ERROR_HEADER), null, "not the upstream's fault");
    assert.equal(answer.headers.get("connection"), "close", "the unread rest of the body is not a next request");
    const problem = JSON.parse(answer.body);
    assert.equal(problem.code, "COMMON.REQUEST_TIMEOUT");
    assert.match(problem.detail, /200 ms/);
    assert.ok(answer.atMs - started >= 190, `not before the idle deadline (${answer.atMs - started} ms)`);
    await upstream.settled();
    assert.deepEqual(upstream.received.filter((r) => r.body !== undefined), [], "no whole request reached it");
  } finally {
    upload.close();
    await proxy.shutdown();
    await upstream.shutdown();
  }
});

Deno.test("proxyRequest() forwards a slow but steady upload that takes longer than headersTimeoutMs", async () => {
  const upstream = recordingUpstream();
  const proxy = proxyTo(upstream.url, { headersTimeoutMs: 150, bodyIdleTimeoutMs: 1_000 });
  const upload = await startUpload(proxy.addr.port, "POST /upload HTTP/1.1\r\ncontent-length: 10");
  try {
    const started = performance.now();
    // One byte every 60 ms: 600 ms of upload against a 150 ms upstream budget, each gap well inside the idle bound.
    for (const byte of "0123456789") {
      if (!await upload.send(byte)) break; // Answered already: the status below says how.
      await pause(60);
    }
    const answer = await upload.answer(2_000);
    assert.ok(answer, "answered");
    assert.equal(answer.status, 201, answer.body);
    assert.equal(answer.headers.get(PROXY_ERROR_HEADER), null);
    assert.ok(performance.now() - started > 150 * 3, "the upload outlasted the upstream budget several times");
    assert.deepEqual(upstream.received.map((r) => r.body), ["0123456789"]);
  } finally {
    upload.close();
    await proxy.shutdown();
    await upstream.shutdown();
  }
});

Deno.test("proxyRequest() still answers 504 with its marker when the upstream takes the body and never answers", async () => {
  // Guards the deadline's pauses: they stop it only while the client is waited for.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  try {
    const started = performance.now();
    const response = await proxyRequest(new Request("http://ingress.test/x", { method: "POST", body: "abc" }), {
      upstream: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
      headersTimeoutMs: 200,
    });
    assert.equal(response.status, 504);
    assert.equal(response.headers.get(PROXY_ERROR_HEADER), "timeout");
    assert.equal((await response.json()).code, "COMMON.UPSTREAM_TIMEOUT");
    assert.ok(performance.now() - started < 2_000);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of held) conn.close();
  }
});

Deno.test("proxyRequest() streams a chunked body and refuses it with 413 stating bodyBytesMax once it passes the bound", async () => {
  const upstream = recordingUpstream();
  const proxy = proxyTo(upstream.url, { headersTimeoutMs: 2_000, bodyBytesMax: 1_000 });
  const upload = await startUpload(proxy.addr.port, "POST /upload HTTP/1.1\r\ntransfer-encoding: chunked", {
    keepAlive: true,
  });
  try {
    const piece = "x".repeat(100);
    let sent = 0;
    let upstreamSawItAt: number | undefined;
    // Up to 5,000 bytes, 100 at a time; the answer must come once the 1,000 are passed, long before the end.
    while (sent < 5_000 && !upload.answered()) {
      if (!await upload.send(chunk(piece))) break;
      sent += piece.length;
      if (upstreamSawItAt === undefined && upstream.heads() > 0) upstreamSawItAt = sent;
      await pause(15);
    }
    const answer = await upload.answer(2_000);
    assert.ok(answer, "answered");
    assert.equal(answer.status, 413);
    assert.equal(answer.headers.get(PROXY_ERROR_HEADER), null);
    assert.equal(answer.headers.get("connection"), "close", "the unread rest of the body is not a next request");
    const problem = JSON.parse(answer.body);
    assert.equal(problem.code, "COMMON.PAYLOAD_TOO_LARGE");
    assert.match(problem.detail, /limited to 1000 bytes/);
    assert.ok(sent < 5_000, `answered while the client was still sending (after ${sent} bytes)`);
    assert.ok(upstreamSawItAt !== undefined && upstreamSawItAt <= 1_000, "streamed on before the bound was reached");
    await upstream.settled();
    assert.deepEqual(upstream.received.filter((r) => r.body !== undefined), [], "no whole request reached it");
  } finally {
    upload.close();
    await proxy.shutdown();
    await upstream.shutdown();
  }
});

Deno.test("proxyRequest() refuses a Content-Length over bodyBytesMax with 413 before contacting the upstream", async () => {
  const upstream = recordingUpstream();
  try {
    const response = await proxyRequest(
      new Request("http://ingress.test/x", {
        method: "POST",
        body: "x".repeat(20),
        headers: { "content-length": "20" },
      }),
      { upstream: upstream.url, headersTimeoutMs: 2_000, bodyBytesMax: 10 },
    );
    assert.equal(response.status, 413);
    assert.equal(response.headers.get(PROXY_ERROR_HEADER), null);
    assert.equal(response.headers.get("connection"), "close", "none of the body was read");
    assert.match((await response.json()).detail, /limited to 10 bytes \(this one declares 20\)/);
    assert.deepEqual(upstream.received, []);
  } finally {
    await upstream.shutdown();
  }
});
