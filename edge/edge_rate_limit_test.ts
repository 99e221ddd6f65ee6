import assert from "node:assert/strict";
import { TEST_AUDIENCE, TEST_ISSUER } from "../shared/testing/test_tokens.ts";
import { fakeRegion } from "./testing/fake_region.ts";
import { createEdgeTestKey } from "./testing/test_keys.ts";
import { createEdge } from "./worker.ts";

Deno.test("edge answers 429 with Retry-After to a burst from one client and lets others through", async () => {
  const region = fakeRegion("east");
  const clock = { ms: Date.now() };
  const edge = createEdge({
    regions: [region],
    rateLimit: { perClient: { ratePerSec: 1, burst: 5 }, perSubject: { ratePerSec: 100, burst: 100 } },
    now: () => clock.ms,
  });
  const from = (address: string) => ({ headers: { "x-forwarded-for": `10.0.0.9, ${address}` } });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const response = await edge.app.request("/api/v1/products", from("203.0.113.7"));
      statuses.push(response.status);
      if (response.status === 429) {
        assert.equal(response.headers.get("retry-after"), "1");
        assert.equal(response.headers.get("content-type"), "application/problem+json");
        assert.equal((await response.json()).code, "COMMON.RATE_LIMITED");
      } else {
        await response.body?.cancel();
      }
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    assert.equal(region.state.hits, 5, "refused requests never reach the region");
    assert.equal((await edge.app.request("/api/v1/products", from("198.51.100.1"))).status, 200);
    clock.ms += 1_000;
    assert.equal((await edge.app.request("/api/v1/products", from("203.0.113.7"))).status, 200);
  } finally {
    await edge.stop();
    await region.close();
  }
});

Deno.test("edge limits one token subject across client addresses", async () => {
  const key = await createEdgeTestKey();
  const region = fakeRegion("east", { jwks: { keys: [key.jwk] } });
  const edge = createEdge({
    regions: [region],
    auth: { jwksUrls: [`${region.url}/.well-known/jwks.json`], issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
    rateLimit: { perClient: { ratePerSec: 100, burst: 100 }, perSubject: { ratePerSec: 0.5, burst: 2 } },
  });
  const token = await key.sign("alice");
  const asAlice = (i: number) => ({
    headers: { authorization: `Bearer ${token}`, "x-forwarded-for": `192.0.2.${i}` },
  });
  try {
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const response = await edge.app.request("/api/v1/orders/o-1", asAlice(i));
      statuses.push(response.status);
      if (response.status === 429) assert.equal(response.headers.get("retry-after"), "2");
      await response.body?.cancel();
    }
    assert.deepEqual(statuses, [200, 200, 429]);
    const bob = await edge.app.request("/api/v1/orders/o-2", {
      headers: { authorization: `Bearer ${await key.sign("bob")}` },
    });
    assert.equal(bob.status, 200);
    await bob.body?.cancel();
    assert.match(await (await edge.app.request("/metrics")).text(), /bv_edge_rate_limited_total 1/);
  } finally {
    await edge.stop();
    await region.close();
  }
});
