/**
 * @module
 * `GET /api/v1/products/{id}` through the east ingress (ingress process → e-commerce process → Redis
 * `product:{id}`, Postgres on a miss) at 2,000 req/s open loop, against raw `Deno.serve` + raw ioredis GET
 * of the same cached JSON (raw postgres.js + SET on a miss) in a worker thread, at the same rate.
 *
 * - **hit** (`product_get_ingress`): 200 products, all cached (warmed before the rounds).
 * - **miss** (`product_get_ingress_miss`): the same ring of 200 products; request k deletes the key of
 *   request k + 50 (25 ms ahead, fire-and-forget, on both sides), so every request finds its key gone and
 *   reads SQL, then sets the cache. The e-commerce deployable's hit/miss counter is read before and after
 *   and the miss share is logged.
 */
import { Redis } from "ioredis";
import { resultOf, type Scenario, type ScenarioContext } from "../harness.ts";
import { compareAtRate } from "../open_loop.ts";
import { createHttp1Client, type Http1Client } from "../http1_client.ts";
import { acquirePlatform, releasePlatform } from "./_ecommerce_platform.ts";
import { nextMessage } from "./_worker.ts";
import { perOpLine, startCpuMeter } from "./_process_cpu.ts";

const RATE_PER_SEC = 2_000;
const DURATION_MS_PER_ROUND = 3_300;
const WARMUP_MS_PER_ROUND = 500;
const MAX_IN_FLIGHT = 512;
/** How far ahead (in requests) the miss mode deletes the key it will ask for. */
const MISS_LOOKAHEAD = 50;
const WORKER_TIMEOUT_MS = 10_000;

export const productGetIngress: Scenario = {
  name: "product_get_ingress",
  description: `GET /api/v1/products/{id} via the east ingress at ${RATE_PER_SEC}/s, cache hit: ` +
    "ingress → e-commerce → Redis vs raw Deno.serve + ioredis GET of the same JSON (worker thread)",
  run: (ctx) => runProductGet(ctx, "product_get_ingress", "hit"),
};

export const productGetIngressMiss: Scenario = {
  name: "product_get_ingress_miss",
  description: `GET /api/v1/products/{id} via the east ingress at ${RATE_PER_SEC}/s, cache miss (key deleted ` +
    `${MISS_LOOKAHEAD} requests ahead): + Postgres read and cache set vs raw Deno.serve + ioredis + postgres.js`,
  run: (ctx) => runProductGet(ctx, "product_get_ingress_miss", "miss"),
};

async function runProductGet(ctx: ScenarioContext, name: string, mode: "hit" | "miss") {
  try {
    const platform = await acquirePlatform(ctx);
    const baselinePrefix = `${platform.runId}:bench:`;
    const worker = new Worker(new URL("./_product_baseline_server.ts", import.meta.url), { type: "module" });
    const redis = new Redis(platform.redisUrl, { connectTimeout: 5_000, commandTimeout: 5_000 });
    try {
      worker.postMessage({ redisUrl: platform.redisUrl, keyPrefix: baselinePrefix, pgUrl: platform.pgUrl });
      const { port } = await nextMessage<{ port: number }>(worker, WORKER_TIMEOUT_MS);
      const products = platform.products;
      // The baseline's cache holds exactly what the catalog's holds.
      await redis.mset(...products.flatMap((p) => [`${baselinePrefix}product:${p.id}`, p.json]));

      const pendingDeletes = new Set<Promise<unknown>>();
      // Both sides' requests go out on the bench's minimal HTTP/1.1 client (http1_client.ts): fetch would spend
      // ~0.2 ms of CPU per request here, half a core at this rate, taken from the servers being measured.
      const clients: Http1Client[] = [];
      const getter = (baseUrl: string, keyPrefix: string) => {
        const origin = new URL(baseUrl);
        const client = createHttp1Client(origin.hostname, Number(origin.port), { maxConnections: 128 });
        clients.push(client);
        let k = 0;
        return async () => {
          const i = k++;
          if (mode === "miss") {
            const ahead = products[(i + MISS_LOOKAHEAD) % products.length];
            const deleting = redis.del(`${keyPrefix}product:${ahead.id}`);
            pendingDeletes.add(deleting);
            deleting.finally(() => pendingDeletes.delete(deleting));
          }
          const product = products[i % products.length];
          const response = await client.get(`${origin.pathname}${product.id}`);
          const text = response.text();
          if (response.status !== 200 || !text.includes(product.id)) {
            throw new Error(`GET ${baseUrl}${product.id} answered ${response.status}: ${text.slice(0, 200)}`);
          }
        };
      };
      if (mode === "miss") {
        // The first MISS_LOOKAHEAD requests have nobody deleting ahead of them: delete their keys now.
        const first = products.slice(0, MISS_LOOKAHEAD).map((p) => p.id);
        await redis.del(...first.map((id) => `${platform.redisPrefix}product:${id}`));
        await redis.del(...first.map((id) => `${baselinePrefix}product:${id}`));
      }
      const before = await cacheCounters(platform);
      const east = platform.config.regions.east;
      const cpu = await startCpuMeter({ ecommerce: east.servicePorts.ecommerce, ingress: east.ingressPort });
      const subjectGet = getter(`${platform.ingressUrl}/api/v1/products/`, platform.redisPrefix);
      let subjectCalls = 0;
      const sides = await compareAtRate(
        { label: "ingress → e-commerce", op: () => (subjectCalls++, subjectGet()) },
        { label: "Deno.serve + ioredis", op: getter(`http://127.0.0.1:${port}/products/`, baselinePrefix) },
        {
          ratePerSec: RATE_PER_SEC,
          durationMsPerRound: DURATION_MS_PER_ROUND,
          warmupMsPerRound: WARMUP_MS_PER_ROUND,
          maxInFlight: MAX_IN_FLIGHT,
          onError: "count",
        },
      );
      await Promise.allSettled([...pendingDeletes]);
      // Both processes idle during the baseline's rounds, so their CPU is the subject's (warm-up included).
      ctx.log(`${perOpLine(await cpu.read(), subjectCalls)} (${subjectCalls} subject requests)`);
      for (const side of [sides.subject, sides.baseline]) {
        if (side.firstError) ctx.log(`${side.label}: first failure: ${side.firstError}`);
      }
      const after = await cacheCounters(platform);
      const hits = after.hit - before.hit;
      const misses = after.miss - before.miss;
      ctx.log(
        `e-commerce product cache during the rounds: ${hits} hits, ${misses} misses ` +
          `(${((100 * misses) / Math.max(1, hits + misses)).toFixed(1)} % misses)`,
      );
      for (const client of clients) client.close();
      worker.postMessage("stop");
      await nextMessage(worker, WORKER_TIMEOUT_MS);
      return resultOf(name, sides);
    } finally {
      worker.terminate();
      redis.disconnect();
    }
  } finally {
    await releasePlatform(ctx, name);
  }
}

async function cacheCounters(platform: { counter(name: string, labelMatch?: string): Promise<number> }) {
  const [hit, miss] = await Promise.all([
    platform.counter("bv_product_cache_requests_total", 'result="hit"'),
    platform.counter("bv_product_cache_requests_total", 'result="miss"'),
  ]);
  return { hit, miss };
}
