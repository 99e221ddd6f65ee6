/**
 * Optimistic concurrency on products: a strong ETag of the row version on every product answer (cached or not),
 * `If-None-Match` reads, and `If-Match` writes that refuse to overwrite a change their client did not see — on
 * PGlite, and with truly concurrent transactions on real PostgreSQL.
 */
import assert from "node:assert/strict";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { closeWorld, createProduct, opts, problemCode, sku, type World, world } from "./_catalog_fixture.ts";
import { catalogMigrations, createCatalogRoutes, invalidateCachedProduct, type ProductView } from "./mod.ts";

const replacement = {
  name: "Trail shoe v2",
  description: "Lighter",
  category: "shoes",
  price: "99.00",
  currency: "EUR",
};

/** Sends `body` as the admin with extra request `headers` (If-Match, If-None-Match). */
function request(w: World, method: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  return w.app.request(path, {
    method,
    headers: {
      authorization: `Bearer ${w.admin}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function row(w: World, id: string) {
  const [found] = await w.sql.query<{ name: string; price: string; version: number }>`
    select name, price::text as price, version from products where id = ${id}::uuid`;
  return found;
}

async function eventCount(w: World, id: string): Promise<number> {
  const [{ n }] = await w.sql.query<{ n: number }>`select count(*)::int as n from outbox where partition_key = ${id}`;
  return n;
}

Deno.test({
  ...opts,
  name: "a product answers a strong ETag of its version: on create, on reads from SQL and from the cache, on change",
  fn: async () => {
    const w = await world();
    const created = await request(w, "POST", "/api/v1/products", { ...replacement, sku: sku() });
    assert.equal(created.status, 201);
    assert.equal(created.headers.get("etag"), '"v1"');
    const product: ProductView = await created.json();
    const path = `/api/v1/products/${product.id}`;

    const miss = await request(w, "GET", path, undefined);
    assert.equal(miss.headers.get("etag"), '"v1"');
    assert.deepEqual(await miss.json(), product);
    const hit = await request(w, "GET", path, undefined);
    assert.equal(hit.headers.get("etag"), '"v1"', "a cached read names the version it was cached at");

    const patched = await request(w, "PATCH", path, { name: "Renamed" });
    assert.equal(patched.status, 200);
    assert.equal(patched.headers.get("etag"), '"v2"');
    // Until product.updated is consumed the cache serves version 1: its body and its ETag, never a mix.
    const stale = await request(w, "GET", path, undefined);
    assert.equal(stale.headers.get("etag"), '"v1"');
    assert.equal((await stale.json()).name, product.name);
    await invalidateCachedProduct(w.cache, product.id, 2);
    const fresh = await request(w, "GET", path, undefined);
    assert.equal(fresh.headers.get("etag"), '"v2"');
    assert.equal((await fresh.json()).name, "Renamed");
    const again = await request(w, "GET", path, undefined);
    assert.equal(again.headers.get("etag"), '"v2"');

    // A change that alters nothing keeps the version, and says so.
    const same = await request(w, "PATCH", path, { name: "Renamed" });
    assert.equal(same.headers.get("etag"), '"v2"');
  },
});

Deno.test({
  ...opts,
  name: "GET /products/{id} with If-None-Match naming the current version answers 304 with the ETag and no body",
  fn: async () => {
    const w = await world();
    const product = await createProduct(w);
    const path = `/api/v1/products/${product.id}`;
    for (const value of ['"v1"', 'W/"v1"', '"v9", "v1"', "*"]) {
      const res = await request(w, "GET", path, undefined, { "if-none-match": value });
      assert.equal(res.status, 304, value);
      assert.equal(res.headers.get("etag"), '"v1"');
      assert.equal(await res.text(), "");
    }
    for (const value of ['"v2"', "v1", '"a1b2"']) {
      const res = await request(w, "GET", path, undefined, { "if-none-match": value });
      assert.equal(res.status, 200, value);
      assert.equal((await res.json()).id, product.id);
    }
  },
});

Deno.test({
  ...opts,
  name: "PUT/PATCH with If-Match of the current version apply and answer the next ETag; a stale one answers 412",
  fn: async () => {
    const w = await world();
    const product = await createProduct(w);
    const path = `/api/v1/products/${product.id}`;
    const put = await request(w, "PUT", path, replacement, { "if-match": '"v1"' });
    assert.equal(put.status, 200);
    assert.equal(put.headers.get("etag"), '"v2"');
    assert.equal((await put.json()).price, "99.00");
    const listed = await request(w, "PATCH", path, { name: "Listed" }, { "if-match": '"v7", "v2"' });
    assert.equal(listed.status, 200, "a list matches when any of its tags does");
    assert.equal(listed.headers.get("etag"), '"v3"');

    const before = { row: await row(w, product.id), events: await eventCount(w, product.id) };
    // A stale tag, a weak tag (If-Match compares strongly), a tag that is not ours, and a no-op that is stale too.
    for (
      const [method, body, ifMatch] of [
        ["PUT", { ...replacement, price: "1.00" }, '"v2"'],
        ["PATCH", { price: "1.00" }, 'W/"v3"'],
        ["PATCH", { price: "1.00" }, '"kQ3dS0cT"'],
        ["PATCH", { name: "Listed" }, '"v1"'],
      ] as const
    ) {
      const res = await request(w, method, path, body, { "if-match": ifMatch });
      assert.equal(res.status, 412, ifMatch);
      assert.equal(res.headers.get("etag"), null);
      const problem = await res.clone().json();
      assert.equal(await problemCode(res), "ECOMMERCE.PRODUCT_VERSION_MISMATCH");
      assert.equal(problem.title, "Precondition Failed");
      assert.match(problem.detail, /changed since you read it.*"v3".*read it again with GET \/api\/v1\/products\//);
    }
    assert.deepEqual(
      { row: await row(w, product.id), events: await eventCount(w, product.id) },
      before,
      "a refused write changes nothing and announces nothing",
    );
  },
});

Deno.test({
  ...opts,
  name: "If-Match: * updates any existing product; on an unknown product every If-Match answers 404",
  fn: async () => {
    const w = await world();
    const product = await createProduct(w);
    await request(w, "PATCH", `/api/v1/products/${product.id}`, { name: "Second" });
    const any = await request(w, "PATCH", `/api/v1/products/${product.id}`, { name: "Third" }, { "if-match": "*" });
    assert.equal(any.status, 200);
    assert.equal(any.headers.get("etag"), '"v3"');
    for (const ifMatch of ["*", '"v1"']) {
      const res = await request(w, "PATCH", `/api/v1/products/${crypto.randomUUID()}`, { name: "x" }, {
        "if-match": ifMatch,
      });
      assert.equal(res.status, 404, ifMatch);
      assert.equal(await problemCode(res), "ECOMMERCE.PRODUCT_NOT_FOUND");
    }
  },
});

Deno.test({
  ...opts,
  name: "without If-Match a PUT or PATCH overwrites whatever version is current, as before ETags",
  fn: async () => {
    const w = await world();
    const product = await createProduct(w);
    const path = `/api/v1/products/${product.id}`;
    assert.equal((await request(w, "PUT", path, replacement)).status, 200);
    const last = await request(w, "PATCH", path, { price: "5.00" });
    assert.equal(last.status, 200);
    assert.equal(last.headers.get("etag"), '"v3"');
    assert.deepEqual(await row(w, product.id), { name: replacement.name, price: "5.00", version: 3 });
  },
});

Deno.test({
  ...opts,
  name: "a malformed If-Match answers 400 COMMON.VALIDATION_FAILED and writes nothing",
  fn: async () => {
    const w = await world();
    const product = await createProduct(w);
    const tooMany = Array.from({ length: 17 }, (_, i) => `"v${i + 1}"`).join(", ");
    for (const ifMatch of ["v1", '"v1" "v2"', '*, "v1"', "", " , ", '"v1', 'w/"v1"', tooMany]) {
      const res = await request(w, "PATCH", `/api/v1/products/${product.id}`, { price: "1.00" }, {
        "if-match": ifMatch,
      });
      assert.equal(res.status, 400, JSON.stringify(ifMatch));
      const problem = await res.clone().json();
      assert.equal(await problemCode(res), "COMMON.VALIDATION_FAILED");
      assert.match(problem.detail, /If-Match/);
    }
    assert.deepEqual(await row(w, product.id), { name: product.name, price: "129.50", version: 1 });
  },
});

/** Two admins read version 1 and both send a change with If-Match "v1" at once: one applies, the other is refused. */
async function concurrentReplace(app: World["app"], admins: readonly string[], id: string) {
  const answers = await Promise.all(admins.map((token, i) =>
    app.request(`/api/v1/products/${id}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "if-match": '"v1"' },
      body: JSON.stringify({ ...replacement, name: `By admin ${i}`, price: `${10 + i}.00` }),
    })
  ));
  const statuses = answers.map((res) => res.status);
  const bodies = await Promise.all(answers.map((res) => res.json()));
  return { statuses, bodies, etags: answers.map((res) => res.headers.get("etag")) };
}

Deno.test({
  ...opts,
  name: 'two admins who read version 1 replace it at once with If-Match "v1": exactly one 200, the other 412',
  fn: async () => {
    const w = await world();
    const product = await createProduct(w);
    const second = await w.tokens.token("admin-2", ["ADMIN"]);
    const read = await request(w, "GET", `/api/v1/products/${product.id}`, undefined);
    assert.equal(read.headers.get("etag"), '"v1"');
    const { statuses, bodies, etags } = await concurrentReplace(w.app, [w.admin, second], product.id);
    assert.deepEqual([...statuses].sort(), [200, 412]);
    const winner = statuses.indexOf(200);
    assert.equal(etags[winner], '"v2"');
    assert.equal(bodies[1 - winner].code, "ECOMMERCE.PRODUCT_VERSION_MISMATCH");
    assert.deepEqual(await row(w, product.id), { name: `By admin ${winner}`, price: `${10 + winner}.00`, version: 2 });
    assert.equal(await eventCount(w, product.id), 2, "the creation and the one change");
    const [{ n: prices }] = await w.sql.query<{ n: number }>`
      select count(*)::int as n from product_price_history where product_id = ${product.id}::uuid`;
    assert.equal(prices, 2);
  },
});

Deno.test({ ...opts, name: "close the catalog test database", fn: closeWorld });

Deno.test({
  name: '[postgres] eight admins replace version 1 at once with If-Match "v1" on a pool: one 200, seven 412',
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const db = await createTestDatabase();
    // Eight connections: the transactions really overlap, and wait on the product's row lock.
    const sql = createPostgresSql({ url: db.url, maxConnections: 8 });
    try {
      await migrate(sql, [...outboxMigrations, ...catalogMigrations]);
      const tokens = await createTestTokens();
      const admins = await Promise.all(Array.from({ length: 8 }, (_, i) => tokens.token(`admin-${i}`, ["ADMIN"])));
      const app = createCatalogRoutes({ sql, cache: createMemoryCache(), verifier: tokens.verifier, nudgeOutbox() {} });
      for (let round = 0; round < 3; round++) {
        const created = await app.request("/api/v1/products", {
          method: "POST",
          headers: { authorization: `Bearer ${admins[0]}`, "content-type": "application/json" },
          body: JSON.stringify({ ...replacement, sku: sku("PG") }),
        });
        const product: ProductView = await created.json();
        const { statuses, bodies } = await concurrentReplace(app, admins, product.id);
        assert.equal(statuses.filter((s) => s === 200).length, 1, `round ${round}: ${statuses}`);
        assert.equal(statuses.filter((s) => s === 412).length, 7, `round ${round}: ${statuses}`);
        const winner = statuses.indexOf(200);
        assert.equal(bodies[winner].name, `By admin ${winner}`);
        const [stored] = await sql.query<{ name: string; version: number }>`
          select name, version from products where id = ${product.id}::uuid`;
        assert.deepEqual(stored, { name: `By admin ${winner}`, version: 2 });
        const [{ n: events }] = await sql.query<{ n: number }>`
          select count(*)::int as n from outbox where partition_key = ${product.id}`;
        assert.equal(events, 2);
      }
    } finally {
      await sql.close();
      await db.drop();
    }
  },
});
