/**
 * A resolver's SQL failure that a retry may pass reaches the client as `COMMON.UPSTREAM_UNAVAILABLE`, the code
 * HTTP and gRPC give it, not as a masked `GRAPHQL.INTERNAL`; one that recurs stays masked. PGlite.
 */
import assert from "node:assert/strict";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { SqlError } from "../../../shared/ports/sql_values.ts";
import { LEAKS, migrateForGraphql, post } from "./_fixture_for_test.ts";
import { createGraphqlRoutes } from "./mod.ts";

Deno.test({
  name: "a lock not available in a resolver is COMMON.UPSTREAM_UNAVAILABLE; a full disk stays GRAPHQL.INTERNAL",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const real = await createPgliteSql();
    const quiet = console.error;
    console.error = () => {};
    try {
      await migrateForGraphql(real);
      const failingWith = (code: string): Sql => ({
        ...real,
        query: () =>
          Promise.reject(new SqlError(`could not obtain lock on relation "inventory_stock" (${code})`, code)),
      });
      const query = `{ product(id: "${crypto.randomUUID()}") { id } products { nodes { id } } }`;
      const locked = await post(createGraphqlRoutes({ sql: failingWith("55P03"), cache: createMemoryCache() }), query);
      assert.equal(locked.status, 200, locked.text);
      assert.deepEqual(locked.body.data, { product: null, products: null });
      assert.deepEqual(
        locked.body.errors.map((e: { extensions: { code: string } }) => e.extensions.code),
        ["COMMON.UPSTREAM_UNAVAILABLE", "COMMON.UPSTREAM_UNAVAILABLE"],
      );
      assert.doesNotMatch(locked.text, LEAKS);
      assert.doesNotMatch(locked.text, /55P03/);

      const full = await post(createGraphqlRoutes({ sql: failingWith("53100"), cache: createMemoryCache() }), query);
      assert.deepEqual(
        full.body.errors.map((e: { extensions: { code: string } }) => e.extensions.code),
        ["GRAPHQL.INTERNAL", "GRAPHQL.INTERNAL"],
      );
    } finally {
      console.error = quiet;
      await real.close();
    }
  },
});
