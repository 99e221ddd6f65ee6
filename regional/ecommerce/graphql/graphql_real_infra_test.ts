import assert from "node:assert/strict";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { createRedisCache } from "../../../shared/adapters/redis/mod.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { graphqlApp, insertProduct, migrateForGraphql, post, type TestProduct } from "./_fixture_for_test.ts";
import { gqlProductVersionKey } from "../catalog/mod.ts";
import { GQL_PRODUCT_CACHE, gqlProductCacheKey } from "./mod.ts";

Deno.test("on real Postgres and Redis, the second product(id) read is served from gql:product:{id}", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const database = await createTestDatabase();
  const sql = createPostgresSql({ url: database.url });
  const cache = createRedisCache({ url: realInfra.redisUrl, keyPrefix: `${uniqueName("bvtest")}:` });
  const products: TestProduct[] = [];
  try {
    await migrateForGraphql(sql);
    products.push(
      await insertProduct(sql, { stock: { onHand: 9, reserved: 2 } }),
      await insertProduct(sql, { stock: { onHand: 1, reserved: 1 } }),
      await insertProduct(sql),
    );
    const { app, statements, reset } = graphqlApp(sql, cache);
    const query = products.map((p, i) => `p${i}: product(id: "${p.id}") { sku price inventory { available } }`)
      .join(" ");

    reset();
    const first = await post(app, `{ ${query} }`);
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.body.data.p0, { sku: products[0].sku, price: "129.50", inventory: { available: 7 } });
    assert.deepEqual(first.body.data.p2.inventory, { available: 0 });
    assert.equal(statements(), 2, "one products query and one stock query on a cold cache");
    for (const p of products) {
      const ttl = await cache.ttlMs(gqlProductCacheKey(p.id));
      assert.ok(ttl > 0 && ttl <= GQL_PRODUCT_CACHE.TTL_MS, `ttl ${ttl} of ${p.id}`);
    }

    reset();
    const second = await post(app, `{ ${query} }`);
    assert.deepEqual(second.body, first.body);
    assert.equal(statements(), 0, "every aggregate came from Redis");
  } finally {
    // The entries and the aggregate marks their fills wrote.
    await cache.del(...products.flatMap((p) => [gqlProductCacheKey(p.id), gqlProductVersionKey(p.id)]));
    await cache.close();
    await sql.close();
    await database.drop();
  }
});
