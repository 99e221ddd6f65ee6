/**
 * Reading many products: `GET /products` pages in sku order and filters, and `getProductsByIds` looks up a set.
 */
import assert from "node:assert/strict";
import { closeWorld, createProduct, opts, problemCode, send, world } from "./_catalog_fixture.ts";
import { getProductsByIds, listProducts, type ProductView } from "./mod.ts";

Deno.test({
  ...opts,
  name: "GET /products pages in sku order without skipping or repeating while products are added",
  fn: async () => {
    const w = await world();
    const category = `page-${Date.now().toString(36)}`;
    const prefix = `PG${Date.now().toString(36)}`;
    for (let i = 0; i < 25; i++) {
      await createProduct(w, { sku: `${prefix}-${String(i * 2).padStart(3, "0")}`, category });
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `?category=${category}&limit=10${cursor ? `&cursor=${cursor}` : ""}`;
      const page: { items: ProductView[]; nextCursor: string | null } =
        await (await send(w, "GET", `/api/v1/products${query}`, undefined, null)).json();
      seen.push(...page.items.map((p) => p.sku));
      cursor = page.nextCursor;
      if (pages++ === 0) {
        // Added behind the cursor and ahead of it: the first is not seen, the second is, nothing repeats.
        await createProduct(w, { sku: `${prefix}-001`, category });
        await createProduct(w, { sku: `${prefix}-041`, category });
      }
    } while (cursor !== null && pages < 10);
    assert.equal(pages, 3);
    assert.equal(new Set(seen).size, seen.length, "no sku is repeated");
    assert.deepEqual(seen, [...seen].sort());
    assert.equal(seen.length, 26);
    assert.ok(seen.includes(`${prefix}-041`) && !seen.includes(`${prefix}-001`));
  },
});

Deno.test({
  ...opts,
  name: "GET /products filters by text (wildcards are literal), category and price range",
  fn: async () => {
    const w = await world();
    const category = `filter-${Date.now().toString(36)}`;
    await createProduct(w, { category, name: "100% wool sock", price: "12.00" });
    await createProduct(w, { category, name: "Cotton sock", description: "soft_and_warm", price: "8.50" });
    await createProduct(w, { category, name: "Wool hat", price: "30.00" });
    const names = async (query: string) =>
      ((await (await send(w, "GET", `/api/v1/products?category=${category}&${query}`, undefined, null)).json())
        .items as ProductView[]).map((p) => p.name).sort();
    assert.deepEqual(await names("q=wool"), ["100% wool sock", "Wool hat"]);
    assert.deepEqual(await names("q=100%25"), ["100% wool sock"]);
    assert.deepEqual(await names("q=%25"), ["100% wool sock"]);
    assert.deepEqual(await names("q=_and_"), ["Cotton sock"]);
    assert.deepEqual(await names("q=t_n"), []);
    assert.deepEqual(await names("minPrice=8.50&maxPrice=12"), ["100% wool sock", "Cotton sock"]);
    assert.deepEqual(await names("minPrice=12.01"), ["Wool hat"]);
    const direct = await listProducts(w.sql, { category, q: "SOCK", limit: 1 });
    assert.equal(direct.items.length, 1);
    assert.notEqual(direct.nextCursor, null);

    for (
      const bad of [
        "minPrice=20&maxPrice=10",
        "minPrice=abc",
        "limit=0",
        "limit=101",
        "limit=ten",
        "cursor=not*valid",
        "cursor=eyJ2IjoyfQ",
        "colour=red",
        `q=${"x".repeat(101)}`,
      ]
    ) {
      const res = await send(w, "GET", `/api/v1/products?${bad}`, undefined, null);
      assert.equal(res.status, 400, bad);
      assert.equal(await problemCode(res), "COMMON.VALIDATION_FAILED");
    }
  },
});

Deno.test({
  ...opts,
  name: "getProductsByIds returns known products and ignores unknown or malformed ids",
  fn: async () => {
    const w = await world();
    const a = await createProduct(w);
    const b = await createProduct(w);
    const found = await getProductsByIds(w.sql, [a.id, b.id.toUpperCase(), crypto.randomUUID(), "nope", a.id]);
    assert.deepEqual([...found.keys()].sort(), [a.id, b.id].sort());
    assert.deepEqual(found.get(a.id), a);
    assert.equal((await getProductsByIds(w.sql, [])).size, 0);
  },
});

Deno.test({
  ...opts,
  name: "close the catalog test database",
  fn: closeWorld,
});
