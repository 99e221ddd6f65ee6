import assert from "node:assert/strict";
import { INVALIDATIONS_PATH } from "./invalidation_stream.ts";
import { fakeRegion } from "./testing/fake_region.ts";
import { createEdge } from "./worker.ts";

Deno.test("the regions' invalidation feed is refused to clients with 404 problem+json, no region asked", async () => {
  const east = fakeRegion("east");
  const west = fakeRegion("west");
  // No pre-auth and no cache: the refusal must not depend on either.
  const edge = createEdge({ regions: [east, west] });
  try {
    const paths = [
      INVALIDATIONS_PATH,
      `${INVALIDATIONS_PATH}/`,
      `${INVALIDATIONS_PATH}?x=1`,
      `${INVALIDATIONS_PATH}/x`,
    ];
    for (const path of paths) {
      const response = await edge.app.request(path, { headers: { accept: "text/event-stream" } });
      assert.equal(response.status, 404, path);
      assert.equal(response.headers.get("content-type"), "application/problem+json");
      assert.equal((await response.json()).code, "COMMON.NOT_FOUND");
      assert.match(response.headers.get("traceparent") ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    }
    assert.deepEqual([east.state.streamConnects, west.state.streamConnects], [0, 0]);
    assert.deepEqual([east.state.hits, west.state.hits], [0, 0]);
    // The same edge still proxies other ecommerce paths: the refusal is for the feed only.
    const other = await edge.app.request("/api/v1/ecommerce/orders-summary");
    assert.equal(other.status, 200);
    assert.equal(east.state.hits + west.state.hits, 1);
  } finally {
    await edge.stop();
    await Promise.all([east.close(), west.close()]);
  }
});
