/**
 * @module
 * What the edge adds to a request: `GET /api/v1/products/p1` through the edge (routing, trace ids, the
 * proxy hop; no cache, no auth) to a fake region, against the same GET straight to that region, in the
 * same run. Sequential requests (one in flight), so the numbers are latency, not throughput. Target from
 * issue 5: the edge adds at most 1 ms at p50.
 */
import { compare, resultOf, type Scenario } from "../harness.ts";
import { startEdgeRig } from "./_edge_rig.ts";
import { PRODUCT_PATH } from "./_edge_servers.ts";

export const edgeOverhead: Scenario = {
  name: "edge_overhead",
  description: "GET product via fetch → edge worker → fake region vs fetch → fake region, 1 in flight",
  async run(ctx) {
    const rig = await startEdgeRig({ cache: false, flashSales: false });
    try {
      ctx.log(`edge ${rig.edgeUrl} → region ${rig.regionUrl}`);
      const get = (base: string) => async () => {
        const response = await fetch(`${base}${PRODUCT_PATH}`);
        const body = await response.arrayBuffer();
        if (response.status !== 200 || body.byteLength < 100) {
          throw new Error(`GET ${base}${PRODUCT_PATH} answered ${response.status} (${body.byteLength} bytes)`);
        }
      };
      const sides = await compare(
        { label: "edge → region", op: get(rig.edgeUrl) },
        { label: "direct → region", op: get(rig.regionUrl) },
        { iterationsPerRound: 3_000, warmupPerRound: 300, concurrency: 1, timeCapMsPerRound: 4_000 },
      );
      return resultOf("edge_overhead", sides);
    } finally {
      await rig.stop();
    }
  },
};
