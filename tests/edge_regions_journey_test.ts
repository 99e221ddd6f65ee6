/**
 * Journey (issue 5 acceptance) through the real edge process in front of both regions, all on the real services
 * (`start:infra`): bad tokens and a burst are refused at the edge with zero requests reaching a region (counted
 * by each ingress's own `bv_http_requests_total`); a public product read goes MISS → HIT → 304 → STALE with a
 * background revalidation; SIGKILL of east's ingress fails clients over to west, and the supervisor's restart
 * brings new clients back to east and the moved client home on its next write. Failover and failback times are
 * printed. The event-driven purge is `edge_purge_journey_test.ts`.
 */
import assert from "node:assert/strict";
import { EDGE_CACHE_DEFAULTS, EDGE_RATE_LIMIT_DEFAULTS } from "../edge/edge_options.ts";
import { createEdgeTestKey } from "../edge/testing/test_keys.ts";
import { loadConfig } from "../shared/config/config.ts";
import { uniqueName } from "../shared/testing/unique.ts";
import { listenerPid } from "../scripts/kafka/_process.ts";
import { call, dropIsolatedInfra, isolatedInfraEnv, JOURNEY_ADMIN, startPlatform } from "./support/platform.ts";
import { edgeRegionGauges, realKeySigner, regionRequestCount, timeUntil } from "./support/region_probes.ts";
import { burst, forgedTokenCases, killByPid, sleep } from "./support/edge_journey_steps.ts";

const PORT_OFFSET = 6;
const FAILOVER_BOUND_MS = 10_000;
const FAILBACK_BOUND_MS = 30_000;

Deno.test({
  name: "the edge refuses bad tokens and bursts before any region, caches public reads, fails over and back",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const id = uniqueName("bve");
    const env = isolatedInfraEnv(id, PORT_OFFSET);
    const config = loadConfig(env);
    const platform = await startPlatform("scripts/start_infra.ts", env);
    const { edgeUrl, ingressUrl } = platform;
    // Every client of this journey is named by X-Forwarded-For (the edge trusts it from a loopback peer): its
    // own rate-limit bucket and its own address pin.
    const as = (client: string, headers: Record<string, string> = {}) => ({ "x-forwarded-for": client, ...headers });
    const regionCounts = async () => ({
      east: await regionRequestCount(ingressUrl.east),
      west: await regionRequestCount(ingressUrl.west),
    });
    try {
      console.log(`start:infra ready in ${Math.round(await platform.waitReady(120_000))} ms`);
      await timeUntil(
        "both invalidation streams up",
        () => fetch(`${edgeUrl}/metrics`).then((r) => r.text()),
        (t) =>
          t.includes('bv_edge_invalidation_stream_up{region="east"} 1') &&
          t.includes('bv_edge_invalidation_stream_up{region="west"} 1'),
        { timeoutMs: 30_000, pauseMs: 200 },
      );

      // Setup in east (the hint keeps these requests there whatever the latencies do).
      const admin = as("192.0.2.1", { "x-bv-region": "east" });
      const login = await call(`${edgeUrl}/api/v1/auth/login`, { body: JOURNEY_ADMIN, headers: admin });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      const created = await call(`${edgeUrl}/api/v1/products`, {
        token: login.body.accessToken,
        headers: admin,
        body: {
          sku: `EDGE-${id}`.toUpperCase(),
          name: "Edge Lamp",
          description: "",
          category: "home",
          price: "12.00",
          currency: "EUR",
        },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const productId: string = created.body.id;

      // --- 2. Cache. The product's own reads are purged by its creation event; a second key (a query the catalog
      // ignores) is filled once those purges have passed, so MISS → HIT below is the cache's doing alone.
      const reader = as("192.0.2.2", { "x-bv-region": "east" });
      const productUrl = `${edgeUrl}/api/v1/products/${productId}`;
      await timeUntil(
        "product settled into a HIT",
        async () => {
          const first = await call(productUrl, { headers: reader });
          await sleep(500);
          return [first, await call(productUrl, { headers: reader })].map((r) => r.headers.get("x-bv-cache")).join();
        },
        (states) => states === "HIT,HIT",
        { timeoutMs: 15_000, pauseMs: 20 },
      );
      const viewUrl = `${productUrl}?view=journey`;
      const miss = await call(viewUrl, { headers: reader });
      const filledAt = performance.now();
      const hit = await call(viewUrl, { headers: reader });
      assert.deepEqual([miss.status, miss.headers.get("x-bv-cache"), miss.headers.get("x-bv-region")], [
        200,
        "MISS",
        "east",
      ]);
      assert.deepEqual([hit.status, hit.headers.get("x-bv-cache"), hit.body.id], [200, "HIT", productId]);
      const etag = hit.headers.get("etag");
      assert.ok(etag, "a cached read carries an ETag");
      const notModified = await call(viewUrl, { headers: { ...reader, "if-none-match": etag } });
      assert.deepEqual([notModified.status, notModified.headers.get("x-bv-cache")], [304, "HIT"]);

      // --- 1. JWT cases while the entry ages. A token naming an unknown kid makes the edge reload the regions'
      // JWKS (its own request, at most once per 30 s): sent once before counting, so the window holds none.
      const signer = await realKeySigner(config.regions.east.pgUrl, {
        issuer: config.BV_JWT_ISSUER,
        audience: config.BV_JWT_AUDIENCE,
      });
      const stranger = await createEdgeTestKey();
      const jwtClient = as("192.0.2.3");
      await call(`${productUrl}`, { token: await stranger.sign("warm-up"), headers: jwtClient });
      const cases = await forgedTokenCases(signer, stranger);
      const beforeJwt = await regionCounts();
      for (const { name, token, code } of cases) {
        for (const [method, path] of [["POST", "/api/v1/orders"], ["GET", `/api/v1/products/${productId}`]]) {
          const body = method === "POST" ? { items: [{ productId, quantity: 1 }] } : undefined;
          const answer = await call(`${edgeUrl}${path}`, { method, body, token, headers: jwtClient });
          assert.equal(answer.status, 401, `${name}: ${method} ${path} → ${JSON.stringify(answer.body)}`);
          assert.equal(answer.headers.get("content-type"), "application/problem+json", name);
          assert.match(answer.headers.get("www-authenticate") ?? "", /invalid_token/, name);
          assert.equal(answer.body.code, code, `${name}: ${method} ${path}`);
        }
      }
      assert.deepEqual(await regionCounts(), beforeJwt, "no request with a bad token reached a region");
      // The same key and claims without the defect are accepted and reach a region, so the counter can move.
      const good = await call(`${edgeUrl}/api/v1/orders/${crypto.randomUUID()}`, {
        token: await signer.sign(crypto.randomUUID()),
        headers: jwtClient,
      });
      assert.notEqual(good.status, 401, JSON.stringify(good.body));
      const afterGood = await regionCounts();
      assert.equal(afterGood.east + afterGood.west, beforeJwt.east + beforeJwt.west + 1, "the valid token's request");

      // --- 3. A burst from one client: more than its bucket holds, all at once, on a read the edge never caches.
      const burstSize = EDGE_RATE_LIMIT_DEFAULTS.perClient.burst * 3;
      const beforeBurst = await regionCounts();
      const outcome = await burst(`${edgeUrl}/api/v1/inventory/${productId}`, as("192.0.2.4"), burstSize);
      const afterBurst = await regionCounts();
      const reached = afterBurst.east + afterBurst.west - beforeBurst.east - beforeBurst.west;
      console.log(`burst of ${burstSize}: ${outcome.passed} passed, ${outcome.limited} answered 429`);
      assert.equal(outcome.failed, 0, "every burst request got an answer");
      assert.equal(outcome.limitedMalformed, 0, "every 429 is a COMMON.RATE_LIMITED problem with Retry-After");
      assert.ok(outcome.limited > 0, "some requests of the burst were refused");
      assert.ok(outcome.passed >= EDGE_RATE_LIMIT_DEFAULTS.perClient.burst, "the bucket's burst passed");
      assert.equal(reached, outcome.passed, "only the requests that passed the limit reached a region");

      // --- 2 (cont.). Past the TTL: served STALE at once while one refresh runs, then fresh again.
      await sleep(Math.max(0, filledAt + EDGE_CACHE_DEFAULTS.ttlMs + 500 - performance.now()));
      const stale = await call(viewUrl, { headers: reader });
      assert.deepEqual([stale.status, stale.headers.get("x-bv-cache")], [200, "STALE"]);
      assert.ok(
        Number(stale.headers.get("age")) >= EDGE_CACHE_DEFAULTS.ttlMs / 1000,
        `age ${stale.headers.get("age")}`,
      );
      const revalidated = await timeUntil(
        "revalidated entry",
        () => call(viewUrl, { headers: reader }),
        (r) => r.headers.get("x-bv-cache") === "HIT",
        { timeoutMs: 5_000, pauseMs: 20 },
      );
      assert.ok(Number(revalidated.value.headers.get("age")) <= 5, "the refresh stored a new copy");
      console.log(`stale → revalidated copy served in ${revalidated.elapsedMs.toFixed(0)} ms`);

      // --- 4. Failover: a client the edge placed in east; east's ingress is SIGKILLed under its reads.
      const jwksPath = "/.well-known/jwks.json";
      // A new client goes to east unless west's probes are faster by more than 10 ms; right after the burst the
      // probes may still say so, so new clients are tried until one is placed in east.
      let placedClients = 0;
      const placed = await timeUntil(
        "a new client placed in east",
        async () => {
          const client = `198.51.100.${++placedClients}`;
          const r = await call(`${edgeUrl}${jwksPath}`, { headers: as(client) });
          return { client, region: r.headers.get("x-bv-region"), edge: await edgeRegionGauges(edgeUrl) };
        },
        (r) => r.region === "east",
        { timeoutMs: 20_000, pauseMs: 100 },
      );
      const home = placed.value.client;
      const reads: { issuedAt: number; doneAt: number; status: number; region: string | null }[] = [];
      let reading = true;
      const readLoop = (async () => {
        while (reading) {
          const issuedAt = performance.now();
          const r = await call(`${edgeUrl}${jwksPath}`, { headers: as(home) }).catch(() => undefined);
          reads.push({
            issuedAt,
            doneAt: performance.now(),
            status: r?.status ?? 0,
            region: r?.headers.get("x-bv-region") ?? null,
          });
          await sleep(25);
        }
      })();
      const eastPort = config.regions.east.ingressPort;
      const oldPid = await listenerPid(eastPort);
      assert.ok(oldPid, `east's ingress listens on ${eastPort}`);
      const killedAt = performance.now();
      const deadAt = await killByPid(oldPid);
      const failover = await timeUntil(
        "failover to west",
        () => Promise.resolve(reads.at(-1)),
        (r) => r !== undefined && r.issuedAt > killedAt && r.status === 200 && r.region === "west",
        {
          timeoutMs: FAILOVER_BOUND_MS,
          pauseMs: 10,
          since: killedAt,
        },
      );
      const failoverMs = failover.value!.doneAt - killedAt;
      console.log(`failover: east ingress SIGKILLed → first read served by west in ${failoverMs.toFixed(0)} ms`);

      const restart = await timeUntil(
        "east ingress restarted",
        () => listenerPid(eastPort),
        (pid) => pid !== undefined && pid !== oldPid,
        { timeoutMs: FAILBACK_BOUND_MS, pauseMs: 100, since: killedAt },
      );
      let attempt = 0;
      const newClient = await timeUntil(
        "a new client served by east",
        () => call(`${edgeUrl}${jwksPath}`, { headers: as(`203.0.113.${++attempt}`) }),
        (r) => r.headers.get("x-bv-region") === "east",
        { timeoutMs: FAILBACK_BOUND_MS, pauseMs: 100, since: killedAt },
      );
      reading = false;
      await readLoop;
      const stayed = await call(`${edgeUrl}${jwksPath}`, { headers: as(home) });
      const write = await call(`${edgeUrl}/api/v1/auth/login`, { body: {}, headers: as(home) });
      const homeAt = performance.now() - killedAt;
      const after = await call(`${edgeUrl}${jwksPath}`, { headers: as(home) });
      console.log(
        `failback: ingress listening again ${restart.elapsedMs.toFixed(0)} ms after the kill; a new client served ` +
          `by east after ${newClient.elapsedMs.toFixed(0)} ms; the moved client home on its next write at ` +
          `${homeAt.toFixed(0)} ms (${reads.length} reads meanwhile)`,
      );
      const afterDeath = reads.filter((r) => r.issuedAt > deadAt);
      assert.deepEqual(afterDeath.filter((r) => r.status !== 200), [], "every read after the kill succeeded");
      assert.ok(failoverMs < FAILOVER_BOUND_MS, `failover took ${failoverMs} ms`);
      assert.equal(stayed.headers.get("x-bv-region"), "west", "a moved client's reads do not go home");
      assert.ok(write.status < 500, `the write was answered: ${write.status}`);
      assert.equal(write.headers.get("x-bv-region"), "east", "a moved client goes home on its next write");
      assert.equal(after.headers.get("x-bv-region"), "east", "and stays home");
    } catch (error) {
      console.error(`--- ${platform.logPath}\n${await platform.tail(60)}`);
      throw error;
    } finally {
      assert.equal(await platform.stop(), 0, await platform.tail());
      await dropIsolatedInfra(id);
    }
  },
});
