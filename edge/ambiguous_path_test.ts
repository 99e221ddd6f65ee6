/**
 * Paths with dot segments, `//` or backslashes are refused at the edge (400) before any rule or region sees
 * them: the rules match the path as sent while the proxy resolves it, so `/api/v1/products/../ecommerce/
 * invalidations` reached the feed the edge refuses, and `//host/…` named another host. Sent over a raw socket:
 * fetch() and `new Request()` would normalise the path before the edge saw it.
 */
import assert from "node:assert/strict";
import { fakeRegion } from "./testing/fake_region.ts";
import { isAmbiguousPath } from "./request_pipeline.ts";
import { createEdge } from "./worker.ts";

async function rawGet(port: number, path: string): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n`));
    const buffer = new Uint8Array(4096);
    let text = "";
    while (!text.includes("\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return Number(text.split(" ")[1]);
  } finally {
    conn.close();
  }
}

Deno.test("edge refuses ambiguous paths with 400 before any rule or region sees them", async () => {
  const region = fakeRegion("east");
  const edge = createEdge({ regions: [region] });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, edge.app.fetch);
  try {
    const port = server.addr.port;
    for (
      const path of [
        "/api/v1/products/../ecommerce/invalidations",
        "/api/v1/products/%2e%2e/orders",
        "/api/v1/products/%2E./orders",
        "//evil.invalid:9/steal",
        "/\\evil.invalid/steal",
        "/api/v1/products/./x",
      ]
    ) {
      assert.equal(await rawGet(port, path), 400, path);
    }
    const hitsBefore = region.state.hits;
    assert.equal(await rawGet(port, "/api/v1/products"), 200, "an ordinary path still goes through");
    assert.equal(region.state.hits, hitsBefore + 1);
  } finally {
    await server.shutdown();
    await edge.stop();
    await region.close();
  }
});

Deno.test("isAmbiguousPath() keeps ordinary paths, dots inside names and encoded slashes", () => {
  for (const path of ["/", "/api/v1/products", "/api/v1/products/", "/files/a.b/..c", "/x/%2F/y", "/v1.2/x"]) {
    assert.equal(isAmbiguousPath(path), false, path);
  }
});
