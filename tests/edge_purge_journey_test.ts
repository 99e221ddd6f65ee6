/**
 * Journey (issue 5 acceptance: "cache hit, revalidation and event-driven purge") on the real services:
 * east's security, e-commerce and ingress processes (Postgres, Redis, Kafka, RabbitMQ, Mosquitto) and an
 * edge in this process following east's invalidation stream. The edge's TTL is set to 60 s, so anything
 * seen within the bound below can only come from a purge: an ADMIN's price change, a stock adjustment
 * (the cached GraphQL inventory read) and a flash-sale start each reach the edge through
 * `GET /api/v1/ecommerce/invalidations`. Latencies are printed: change acknowledged → edge serves the new
 * value (outbox relay + Kafka + consumer + stream + refetch).
 */
import assert from "node:assert/strict";
import { createEdge, EDGE_CACHE_DEFAULTS } from "../edge/worker.ts";
import { loadConfig, SERVICES } from "../shared/config/config.ts";
import { ensureDatabase } from "../shared/testing/pg_database.ts";
import { ensureVhost } from "../shared/testing/rabbit_vhost.ts";
import { realInfra } from "../shared/testing/real_infra.ts";
import { uniqueName } from "../shared/testing/unique.ts";
import {
  call,
  dropIsolatedInfra,
  JOURNEY_ADMIN,
  journeyEnv,
  type RunningPlatform,
  startPlatform,
} from "./support/platform.ts";

/** Change acknowledged → new value at the edge; far below the 60 s TTL, so only a purge can meet it. */
const PURGE_BOUND_MS = 3_000;
const EDGE_TTL_MS = 60_000;
// 30xxx: offsets above 12 put ports in Linux's ephemeral range (32768–60999), where an outgoing connection can hold
// one a moment before a deployable binds it (this journey failed once with AddrInUse at offset 17).
const PORT_OFFSET = 10;

/** Polls `read` until `done` holds; resolves with the elapsed ms and the last value. */
async function timeUntil<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number) {
  const started = performance.now();
  while (true) {
    const value = await read();
    const elapsedMs = performance.now() - started;
    if (done(value)) return { elapsedMs, value };
    if (elapsedMs > timeoutMs) throw new Error(`not within ${timeoutMs} ms; last: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Reads `url` at the edge until two reads 500 ms apart are both HITs: earlier events' purges have passed. */
async function settledHit(url: string, read = () => call(url)): Promise<void> {
  const deadline = performance.now() + 15_000;
  while (performance.now() < deadline) {
    if ((await read()).headers.get("x-bv-cache") === "HIT") {
      await new Promise((r) => setTimeout(r, 500));
      if ((await read()).headers.get("x-bv-cache") === "HIT") return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${url} never settled into a cache hit at the edge`);
}

Deno.test({
  name: "the edge serves a product's new price, stock and flash sale within 3 s of the change (event-driven purge)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const id = uniqueName("bvp");
    const env = {
      ...journeyEnv(PORT_OFFSET, {
        BV_EAST_PG_DATABASE: `${id}_east`,
        BV_EAST_AMQP_VHOST: `${id}_east`,
        BV_REDIS_PREFIX: `${id}:`,
        BV_KAFKA_PREFIX: `${id}.`,
        BV_ADMIN_EMAIL: JOURNEY_ADMIN.email,
        BV_ADMIN_PASSWORD: JOURNEY_ADMIN.password,
      }),
      BV_MODE: "infra",
      BV_REGION: "east",
    };
    const config = loadConfig(env);
    await ensureDatabase(realInfra.postgresAdminUrl, `${id}_east`);
    await ensureVhost(`${id}_east`);
    // The whole east region: its ingress is ready (and so healthy for the edge) only when every deployable is.
    const processes: RunningPlatform[] = [];
    for (const service of SERVICES) {
      processes.push(await startPlatform(`regional/${service}/main.ts`, env, [`${service}-east`]));
    }
    processes.push(await startPlatform("regional/ingress/main.ts", env, ["ingress-east"]));
    const ingress = `http://${config.connectHost}:${config.regions.east.ingressPort}`;
    const edge = createEdge({
      regions: [{ name: "east", url: ingress }],
      upstreamTimeoutMs: config.BV_CALL_TIMEOUT_MS,
      auth: {
        jwksUrls: [`${ingress}/.well-known/jwks.json`],
        issuer: config.BV_JWT_ISSUER,
        audience: config.BV_JWT_AUDIENCE,
      },
      cache: { ...EDGE_CACHE_DEFAULTS, ttlMs: EDGE_TTL_MS },
    });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, edge.app.fetch);
    const edgeUrl = `http://127.0.0.1:${server.addr.port}`;
    try {
      await Promise.all(processes.map((p) => p.waitReady(120_000)));
      await edge.start();
      await timeUntil(
        () => fetch(`${edgeUrl}/metrics`).then((r) => r.text()),
        (text) => text.includes('bv_edge_invalidation_stream_up{region="east"} 1'),
        30_000,
      );

      const login = await call(`${edgeUrl}/api/v1/auth/login`, { body: JOURNEY_ADMIN });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      const admin = login.body.accessToken;
      const created = await call(`${edgeUrl}/api/v1/products`, {
        token: admin,
        body: {
          sku: `PURGE-${id}`.toUpperCase(),
          name: "Purge Kettle",
          description: "",
          category: "kitchen",
          price: "40.00",
          currency: "EUR",
        },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const productId: string = created.body.id;
      const productUrl = `${edgeUrl}/api/v1/products/${productId}`;
      const stocked = await call(`${edgeUrl}/api/v1/inventory/${productId}/adjustments`, {
        token: admin,
        body: { delta: 10, reason: "initial" },
      });
      assert.equal(stocked.status, 200, JSON.stringify(stocked.body));
      // The purges of the creation and the first stock events must have passed before caching starts.
      await settledHit(productUrl);

      // 1. Price change by an ADMIN: the cached product read is purged, the edge refetches the new price.
      const hit = await call(productUrl);
      assert.deepEqual([hit.headers.get("x-bv-cache"), hit.body.price], ["HIT", "40.00"]);
      const patched = await call(productUrl, { method: "PATCH", token: admin, body: { price: "35.50" } });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      const price = await timeUntil(() => call(productUrl), (r) => r.body.price === "35.50", PURGE_BOUND_MS);
      console.log(`purge latency, price change → edge serves the new price: ${price.elapsedMs.toFixed(1)} ms`);
      const again = await call(productUrl);
      assert.deepEqual([again.headers.get("x-bv-cache"), again.body.price], ["HIT", "35.50"], "cached again");

      // 2. Stock adjustment: the cached GraphQL inventory read is purged (REST stock is never cached at the edge).
      const query = { query: `{ productInventory(id: "${productId}") { productId available } }` };
      const gql = () => call(`${edgeUrl}/graphql`, { body: query });
      await settledHit(`${edgeUrl}/graphql`, gql);
      assert.equal((await gql()).body.data.productInventory.available, 10);
      const adjusted = await call(`${edgeUrl}/api/v1/inventory/${productId}/adjustments`, {
        token: admin,
        body: { delta: 5, reason: "recount" },
      });
      assert.equal(adjusted.status, 200, JSON.stringify(adjusted.body));
      const stock = await timeUntil(gql, (r) => r.body.data?.productInventory?.available === 15, PURGE_BOUND_MS);
      console.log(`purge latency, stock adjustment → edge serves the new stock: ${stock.elapsedMs.toFixed(1)} ms`);
      assert.equal((await call(`${edgeUrl}/api/v1/inventory/${productId}`)).body.available, 15);

      // 3. Flash-sale start: the product's entry is purged only once the sale price is the region's authority.
      await settledHit(productUrl);
      const sale = await call(`${edgeUrl}/api/v1/flash-sales`, {
        token: admin,
        body: { productId, price: "20.00", durationSec: 60 },
      });
      assert.equal(sale.status, 201, JSON.stringify(sale.body));
      const purged = await timeUntil(() => call(productUrl), (r) => r.headers.get("x-bv-cache") !== "HIT", 5_000);
      console.log(`purge latency, flash sale start → product entry purged: ${purged.elapsedMs.toFixed(1)} ms`);
      const live = await call(`${edgeUrl}/api/v1/flash-sales/${productId}`);
      assert.deepEqual([live.status, live.body.price], [200, "20.00"]);
    } catch (error) {
      for (const p of processes) console.error(`--- ${p.logPath}\n${await p.tail(30)}`);
      throw error;
    } finally {
      await edge.stop();
      await server.shutdown();
      for (const p of processes.reverse()) await p.stop();
      await dropIsolatedInfra(id);
    }
  },
});
