/**
 * @module
 * Cache-hit throughput at the edge: `GET /api/v1/products/p1` answered from the edge's hot cache (filled
 * once, then every request a HIT) against a bare `Deno.serve` answering the same bytes, both in worker
 * threads and driven by `fetch` with 32 requests in flight. Target from issue 5: at least 10,000 req/s.
 * The client shares the 2 cores with the server it drives, so both sides are client-bound in part: read
 * the ratio beside the absolute numbers.
 */
import { compare, resultOf, type Scenario } from "../harness.ts";
import { startEdgeRig } from "./_edge_rig.ts";
import { PRODUCT_PATH } from "./_edge_servers.ts";

const CONCURRENCY = 32;

export const edgeCacheHit: Scenario = {
  name: "edge_cache_hit",
  description: "GET product via fetch → edge hot cache (HIT) vs bare Deno.serve with the same bytes, 32 in flight",
  async run(ctx) {
    const rig = await startEdgeRig({ cache: true, flashSales: false });
    try {
      const get = (base: string, expectHit: boolean) => async () => {
        const response = await fetch(`${base}${PRODUCT_PATH}`);
        const body = await response.arrayBuffer();
        if (response.status !== 200 || body.byteLength < 100) {
          throw new Error(`GET ${base}${PRODUCT_PATH} answered ${response.status}`);
        }
        if (expectHit && response.headers.get("x-bv-cache") !== "HIT") {
          throw new Error(`expected a cache hit, got x-bv-cache: ${response.headers.get("x-bv-cache")}`);
        }
      };
      await get(rig.edgeUrl, false)();
      ctx.log(`edge ${rig.edgeUrl} warm (one fill); raw ${rig.rawUrl}`);
      const sides = await compare(
        { label: "edge cache hit", op: get(rig.edgeUrl, true) },
        { label: "bare Deno.serve", op: get(rig.rawUrl, false) },
        { iterationsPerRound: 20_000, warmupPerRound: 1_000, concurrency: CONCURRENCY, timeCapMsPerRound: 4_000 },
      );
      return resultOf("edge_cache_hit", sides);
    } finally {
      await rig.stop();
    }
  },
};
