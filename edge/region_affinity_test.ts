import assert from "node:assert/strict";
import { type AffinityClient, createRegionAffinity } from "./region_affinity.ts";
import { createRegionRouter, type RegionRouter } from "./region_router.ts";

const MINUTE_MS = 60_000;

/** A router whose unhinted choice follows the latencies given (one probe decides: alpha 1, one sample). */
function routerOver(latencies: Record<string, number>): RegionRouter & { probe(l: Record<string, number>): void } {
  const router = createRegionRouter(["east", "west"], { latencyEwmaAlpha: 1, latencySamplesMin: 1 });
  const probe = (l: Record<string, number>) => {
    for (const [name, latencyMs] of Object.entries(l)) router.recordProbe(name, { kind: "ready", latencyMs });
  };
  probe(latencies);
  return Object.assign(router, { probe });
}

function client(address: string, more: Partial<AffinityClient> = {}): AffinityClient {
  return { subject: undefined, address, cookie: undefined, write: false, ...more };
}

Deno.test("affinity keeps a client on its region while the latency ordering flips; new clients follow latency", () => {
  const router = routerOver({ east: 2, west: 40 });
  const affinity = createRegionAffinity(["east", "west"], router, {}, () => 0);
  assert.equal(affinity.regionFor(client("10.0.0.1")), "east");
  router.probe({ east: 80, west: 2 });
  assert.equal(router.choose(null), "west", "the router now prefers west");
  for (let i = 0; i < 5; i++) assert.equal(affinity.regionFor(client("10.0.0.1")), "east");
  assert.equal(affinity.regionFor(client("10.0.0.1", { write: true })), "east", "a write does not move it either");
  assert.equal(affinity.regionFor(client("10.0.0.2")), "west", "a second client lands where latency says");
  router.probe({ east: 2, west: 80 });
  assert.equal(affinity.regionFor(client("10.0.0.2")), "west", "and stays there when it flips back");
  assert.equal(affinity.regionFor(client("10.0.0.1")), "east");
});

Deno.test("affinity moves a client off a region that is out, and home again on its next write only", () => {
  const router = routerOver({ east: 2, west: 2 });
  const affinity = createRegionAffinity(["east", "west"], router, {}, () => 0);
  assert.equal(affinity.regionFor(client("a")), "east");
  router.recordProbe("east", { kind: "not-ready", detail: "readyz answered 503" });
  assert.equal(affinity.regionFor(client("a")), "west", "failover: east is out");
  router.probe({ east: 1 });
  router.probe({ east: 1 });
  assert.equal(router.isHealthy("east"), true);
  assert.equal(affinity.regionFor(client("a")), "west", "reads stay on west after east is back");
  assert.equal(affinity.regionFor(client("a", { write: true })), "east", "the next write goes home");
  router.probe({ east: 90, west: 1 });
  assert.equal(affinity.regionFor(client("a")), "east", "and stays home");
  // West's own clients fail over to east and, while west stays out, remain there even on writes.
  assert.equal(affinity.regionFor(client("b")), "west");
  router.recordUnreachable("west", "refused");
  assert.equal(affinity.regionFor(client("b", { write: true })), "east");
  assert.equal(affinity.regionFor(client("b", { write: true })), "east");
  router.recordUnreachable("east", "refused");
  assert.equal(affinity.regionFor(client("b")), "east", "no region healthy: panic routing, preference order");
});

Deno.test("affinity forgets a client idle for the TTL and renews the pin on every request", () => {
  let nowMs = 0;
  const router = routerOver({ east: 2, west: 40 });
  const affinity = createRegionAffinity(["east", "west"], router, { ttlMs: 5 * MINUTE_MS }, () => nowMs);
  assert.equal(affinity.regionFor(client("a")), "east");
  router.probe({ east: 80, west: 2 });
  for (let i = 0; i < 3; i++) {
    nowMs += 4 * MINUTE_MS;
    assert.equal(affinity.regionFor(client("a")), "east", `still pinned after ${(i + 1) * 4} active minutes`);
  }
  nowMs += 5 * MINUTE_MS;
  assert.equal(affinity.regionFor(client("a")), "west", "idle for the TTL: chosen afresh");
});

Deno.test("affinity holds at most entriesMax pins and drops the least recently seen first", () => {
  const router = routerOver({ east: 2, west: 40 });
  const affinity = createRegionAffinity(["east", "west"], router, { entriesMax: 3 }, () => 0);
  for (const id of ["a", "b", "c"]) assert.equal(affinity.regionFor(client(id)), "east");
  router.probe({ east: 80, west: 2 });
  affinity.regionFor(client("a")); // a is now the most recently seen; b the least
  for (const id of ["d", "e"]) assert.equal(affinity.regionFor(client(id)), "west");
  assert.equal(affinity.size(), 3);
  assert.equal(affinity.regionFor(client("a")), "east", "a survived: seen recently");
  assert.equal(affinity.regionFor(client("b")), "west", "b was dropped and chosen afresh");
  for (let i = 0; i < 1_000; i++) affinity.regionFor(client(`x${i}`));
  assert.equal(affinity.size(), 3);
  assert.throws(() => createRegionAffinity(["east"], router, { entriesMax: 0 }), RangeError);
});

Deno.test("affinity follows the subject's pin, then the cookie, then the address's pin", () => {
  const router = routerOver({ east: 2, west: 40 });
  const affinity = createRegionAffinity(["east", "west"], router, {}, () => 0);
  assert.equal(affinity.regionFor(client("nat")), "east", "signing up from a shared address");
  router.probe({ east: 80, west: 2 });
  assert.equal(affinity.regionFor(client("nat", { subject: "u1" })), "east", "after login: the address's pin");
  assert.equal(affinity.regionFor(client("other", { subject: "u1" })), "east", "the subject's pin, new address");
  assert.equal(affinity.regionFor(client("nat", { cookie: "west" })), "west", "a browser's cookie beats its address");
  assert.equal(affinity.regionFor(client("nat", { cookie: "west", subject: "u1" })), "east", "the subject beats both");
  assert.equal(affinity.regionFor(client("fresh", { cookie: "mars" })), "west", "an unknown region is ignored");
});

Deno.test("affinity sends a client that returns the edge's cookie home on its next write after failback", () => {
  const router = routerOver({ east: 2, west: 2 });
  const affinity = createRegionAffinity(["east", "west"], router, {}, () => 0);
  assert.equal(affinity.regionFor(client("c")), "east");
  router.recordProbe("east", { kind: "not-ready", detail: "readyz answered 503" });
  // The edge answers from west and sets `bv-region=west`; the browser sends it back from now on.
  assert.equal(affinity.regionFor(client("c", { cookie: "west" })), "west", "failover");
  router.probe({ east: 1 });
  router.probe({ east: 1 });
  assert.equal(affinity.regionFor(client("c", { cookie: "west" })), "west", "reads stay on west");
  assert.equal(affinity.regionFor(client("c", { cookie: "west", write: true })), "east", "the write goes home");
});
