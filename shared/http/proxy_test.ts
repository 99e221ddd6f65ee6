import assert from "node:assert/strict";
import { PROXY_ERROR_HEADER, proxyRequest, upstreamTarget } from "./proxy.ts";

/** A real upstream that echoes what it received and answers with hop-by-hop and repeated headers. */
function echoUpstream() {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const url = new URL(request.url);
    const headers = new Headers({ "content-type": "application/json", "keep-alive": "timeout=5" });
    headers.append("set-cookie", "a=1");
    headers.append("set-cookie", "b=2");
    headers.set(PROXY_ERROR_HEADER, "forged");
    const body = JSON.stringify({
      path: url.pathname + url.search,
      method: request.method,
      body: await request.text(),
      headers: Object.fromEntries(request.headers),
    });
    return new Response(body, { status: 201, headers });
  });
}

Deno.test("proxyRequest() forwards path, query, method and body, drops hop-by-hop headers and overrides set ones", async () => {
  const upstream = echoUpstream();
  try {
    const request = new Request("http://ingress.test/api/v1/orders/42?mine=1&x=%20y", {
      method: "POST",
      body: '{"qty":1}',
      headers: {
        "content-type": "application/json",
        "proxy-authorization": "secret",
        "te": "trailers",
        "Traceparent": "00-11111111111111111111111111111111-2222222222222222-01",
        "x-kept": "yes",
      },
    });
    const response = await proxyRequest(request, {
      upstream: `http://127.0.0.1:${upstream.addr.port}`,
      headersTimeoutMs: 2_000,
      setHeaders: { TraceParent: "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01" },
    });
    assert.equal(response.status, 201);
    const seen = await response.json();
    assert.equal(seen.path, "/api/v1/orders/42?mine=1&x=%20y");
    assert.equal(seen.method, "POST");
    assert.equal(seen.body, '{"qty":1}');
    assert.equal(seen.headers["x-kept"], "yes");
    assert.equal(seen.headers["proxy-authorization"], undefined);
    assert.equal(seen.headers["te"], undefined);
    assert.equal(seen.headers["traceparent"], "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01");
    assert.equal(response.headers.get("keep-alive"), null);
    assert.equal(response.headers.get(PROXY_ERROR_HEADER), null, "an upstream cannot forge the proxy's marker");
    assert.deepEqual(response.headers.getSetCookie(), ["a=1", "b=2"]);
  } finally {
    await upstream.shutdown();
  }
});

Deno.test("proxyRequest() answers 503 with the proxy's marker when the upstream is unreachable", async () => {
  const response = await proxyRequest(new Request("http://ingress.test/x"), {
    upstream: "http://127.0.0.1:1",
    headersTimeoutMs: 2_000,
  });
  assert.equal(response.status, 503);
  assert.equal(response.headers.get(PROXY_ERROR_HEADER), "unreachable");
  assert.equal((await response.json()).code, "COMMON.UPSTREAM_UNAVAILABLE");
});

Deno.test("proxyRequest() answers 400 without the unreachable marker when the client stops mid-upload", async () => {
  const upstream = echoUpstream();
  const answers: Response[] = [];
  // A real proxy in front, so the client's body is a socket that closes mid-way.
  const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const response = await proxyRequest(request, {
      upstream: `http://127.0.0.1:${upstream.addr.port}`,
      headersTimeoutMs: 2_000,
    });
    answers.push(response.clone());
    return response;
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.addr.port });
    await conn.write(
      new TextEncoder().encode("POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n0123456789"),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    conn.close();
    const deadline = Date.now() + 5_000;
    while (answers.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(answers.length, 1);
    assert.equal(answers[0].status, 400);
    assert.equal(answers[0].headers.get(PROXY_ERROR_HEADER), null, "not the upstream's fault");
    assert.equal((await answers[0].json()).code, "COMMON.REQUEST_INCOMPLETE");
  } finally {
    await proxy.shutdown();
    await upstream.shutdown();
  }
});

Deno.test("proxyRequest() keeps every path on the upstream's host: //host and /\\host paths cannot name another", async () => {
  const seen: string[] = [];
  const upstream = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (request) => {
    seen.push(new URL(request.url).pathname + new URL(request.url).search);
    return new Response("upstream");
  });
  try {
    const base = `http://127.0.0.1:${upstream.addr.port}`;
    for (const path of ["//evil.invalid:9/steal?x=1", "/\\evil.invalid/steal"]) {
      // What Deno's server hands over for such a request line: the raw path after the authority.
      const response = await proxyRequest(new Request(`http://edge.local${path}`), {
        upstream: base,
        headersTimeoutMs: 2_000,
      });
      assert.equal(response.status, 200, path);
      assert.equal(await response.text(), "upstream", path);
    }
    assert.deepEqual(seen, ["//evil.invalid:9/steal?x=1", "//evil.invalid/steal"]);
    assert.equal(upstreamTarget("//evil.invalid/x?y=1", base).host, `127.0.0.1:${upstream.addr.port}`);
  } finally {
    await upstream.shutdown();
  }
});

/** Sends `head` (request line and headers, no blank line) over a raw socket and returns the whole answer. */
async function rawRequest(port: number, head: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(`${head}\r\nhost: proxy.test\r\n\r\n`));
    let text = "";
    const buffer = new Uint8Array(16 * 1024);
    const decoder = new TextDecoder();
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
      // One answer with a body of content-length bytes is enough; the connection may be kept alive.
      const end = text.indexOf("\r\n\r\n");
      const length = /\r\ncontent-length: (\d+)/i.exec(text)?.[1];
      if (end >= 0 && length !== undefined && text.length >= end + 4 + Number(length)) break;
    }
    return text;
  } finally {
    conn.close();
  }
}

Deno.test("proxyRequest() drops the headers a request's Connection header names (RFC 9110 section 7.6.1)", async () => {
  const upstream = echoUpstream();
  const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const response = await proxyRequest(request, {
      upstream: `http://127.0.0.1:${upstream.addr.port}`,
      headersTimeoutMs: 2_000,
    });
    // Buffered, so the raw client reads a content-length body instead of a chunked one.
    return new Response(await response.text(), { status: response.status });
  });
  try {
    const answer = await rawRequest(
      proxy.addr.port,
      "GET /x HTTP/1.1\r\nconnection: keep-alive, X-Hop-Secret , x-other-hop\r\nx-hop-secret: s3cret\r\n" +
        "x-other-hop: 1\r\nx-kept: yes\r\nconnection: close",
    );
    const seen = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)).headers;
    assert.equal(seen["x-hop-secret"], undefined);
    assert.equal(seen["x-other-hop"], undefined);
    assert.equal(seen["x-kept"], "yes");
  } finally {
    await proxy.shutdown();
    await upstream.shutdown();
  }
});

Deno.test("proxyRequest() drops the headers an upstream response's Connection header names", async () => {
  // A raw upstream: a Deno.serve one would not send its own Connection header as written.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      const buffer = new Uint8Array(16 * 1024);
      await conn.read(buffer);
      await conn.write(new TextEncoder().encode(
        "HTTP/1.1 200 OK\r\nconnection: x-upstream-hop, close\r\nx-upstream-hop: internal\r\nx-answer: kept\r\n" +
          "content-length: 2\r\n\r\nok",
      ));
      conn.close();
    }
  })();
  try {
    const response = await proxyRequest(new Request("http://ingress.test/x"), {
      upstream: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
      headersTimeoutMs: 2_000,
    });
    assert.equal(await response.text(), "ok");
    assert.equal(response.headers.get("x-answer"), "kept");
    assert.equal(response.headers.get("x-upstream-hop"), null);
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("proxyRequest() drops a caller's copies of dropHeaders, still sends set ones, appends the peer to X-Forwarded-For", async () => {
  const upstream = echoUpstream();
  const base = `http://127.0.0.1:${upstream.addr.port}`;
  try {
    const forged = new Request("http://ingress.test/x", {
      headers: { "x-bv-user-id": "mallory", "x-bv-forwarded-from-region": "west", "x-forwarded-for": "203.0.113.7" },
    });
    const seen = await (await proxyRequest(forged, {
      upstream: base,
      headersTimeoutMs: 2_000,
      dropHeaders: new Set(["x-bv-user-id", "x-bv-forwarded-from-region"]),
      setHeaders: { "X-Bv-Forwarded-From-Region": "east" },
      clientAddress: "198.51.100.2",
    })).json();
    assert.equal(seen.headers["x-bv-user-id"], undefined);
    assert.equal(seen.headers["x-bv-forwarded-from-region"], "east", "the proxy's own value goes out");
    assert.equal(seen.headers["x-forwarded-for"], "203.0.113.7, 198.51.100.2");

    const first = await (await proxyRequest(new Request("http://ingress.test/x"), {
      upstream: base,
      headersTimeoutMs: 2_000,
      clientAddress: "::1",
    })).json();
    assert.equal(first.headers["x-forwarded-for"], "::1");
  } finally {
    await upstream.shutdown();
  }
});
