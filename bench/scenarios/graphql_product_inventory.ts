/**
 * @module
 * `POST /graphql { productInventory(id) { productId sku onHand reserved available } }` through the east
 * ingress at 500/s open loop over the ring of 200 products. The GraphQL layer reads the aggregate through
 * its `gql:product:{id}` cache (30 s TTL), so after the first round most requests are cache hits; a TTL
 * expiry during a round shows as misses (Postgres: one products and one stock query). Baseline: the raw SQL
 * join of `products` and `inventory_stock` by id with postgres.js, at the same rate.
 */
import postgres from "postgres";
import { resultOf, type Scenario } from "../harness.ts";
import { compareAtRate } from "../open_loop.ts";
import { acquirePlatform, releasePlatform } from "./_ecommerce_platform.ts";

const NAME = "graphql_product_inventory";
const RATE_PER_SEC = 500;
const DURATION_MS_PER_ROUND = 3_300;
const WARMUP_MS_PER_ROUND = 500;
const MAX_IN_FLIGHT = 256;
const POOL_SIZE = 10;
const QUERY = "query ($id: ID!) { productInventory(id: $id) { productId sku onHand reserved available } }";

export const graphqlProductInventory: Scenario = {
  name: NAME,
  description: `POST /graphql productInventory(id) via the east ingress at ${RATE_PER_SEC}/s (gql:product cache) ` +
    "vs a raw postgres.js join of products + inventory_stock",
  async run(ctx) {
    try {
      const platform = await acquirePlatform(ctx);
      const sql = postgres(platform.pgUrl, {
        max: POOL_SIZE,
        connect_timeout: 5,
        idle_timeout: 30,
        onnotice: () => {},
      });
      try {
        const products = platform.products;
        let n = 0;
        let m = 0;
        const [hitsBefore, missesBefore] = await gqlCounters(platform);
        const sides = await compareAtRate(
          {
            label: "ingress → GraphQL",
            op: async () => {
              const product = products[n++ % products.length];
              const response = await fetch(`${platform.ingressUrl}/graphql`, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ query: QUERY, variables: { id: product.id } }),
                signal: AbortSignal.timeout(10_000),
              });
              const body = await response.json();
              if (response.status !== 200 || body?.data?.productInventory?.sku !== product.sku) {
                throw new Error(`POST /graphql answered ${response.status}: ${JSON.stringify(body).slice(0, 300)}`);
              }
            },
          },
          {
            label: "postgres.js join",
            op: async () => {
              const product = products[m++ % products.length];
              const rows = await sql<{ sku: string }[]>`
                select p.id::text as product_id, p.sku, coalesce(s.on_hand, 0) as on_hand,
                       coalesce(s.reserved, 0) as reserved, coalesce(s.on_hand - s.reserved, 0) as available
                from products p left join inventory_stock s on s.product_id = p.id
                where p.id = ${product.id}::uuid`;
              if (rows[0]?.sku !== product.sku) throw new Error(`The join answered ${JSON.stringify(rows)}`);
            },
          },
          {
            ratePerSec: RATE_PER_SEC,
            durationMsPerRound: DURATION_MS_PER_ROUND,
            warmupMsPerRound: WARMUP_MS_PER_ROUND,
            maxInFlight: MAX_IN_FLIGHT,
            onError: "count",
          },
        );
        const [hitsAfter, missesAfter] = await gqlCounters(platform);
        ctx.log(
          `GraphQL aggregate cache during the rounds: ${hitsAfter - hitsBefore} hits, ` +
            `${missesAfter - missesBefore} misses (warm-ups included)`,
        );
        for (const side of [sides.subject, sides.baseline]) {
          if (side.firstError) ctx.log(`${side.label}: first failure: ${side.firstError}`);
        }
        return resultOf(NAME, sides);
      } finally {
        await sql.end({ timeout: 5 });
      }
    } finally {
      await releasePlatform(ctx, NAME);
    }
  },
};

function gqlCounters(platform: { counter(name: string, labelMatch?: string): Promise<number> }) {
  return Promise.all([
    platform.counter("bv_graphql_cache_requests_total", 'result="hit"'),
    platform.counter("bv_graphql_cache_requests_total", 'result="miss"'),
  ]);
}
