/**
 * One product through the catalog routes: created, refused, read back, repriced (SCD2 price history) and
 * announced through the outbox, or rolled back with its event.
 */
import assert from "node:assert/strict";
import { productUpdated } from "../../../shared/contracts/events/ecommerce.ts";
import { closeWorld, createProduct, opts, problemCode, send, sku, world } from "./_catalog_fixture.ts";
import type { ProductView } from "./mod.ts";

Deno.test({
  ...opts,
  name: "POST /products creates a product an admin can read back, with its first price and an event",
  fn: async () => {
    const w = await world();
    const nudgesBefore = w.nudges;
    const created = await createProduct(w, { price: "19.9" });
    assert.match(created.id, /^[0-9a-f-]{36}$/);
    assert.equal(created.price, "19.90");
    assert.deepEqual(Object.keys(created).sort(), [
      "category",
      "createdAt",
      "currency",
      "description",
      "id",
      "name",
      "price",
      "sku",
      "updatedAt",
    ]);
    assert.equal(w.nudges, nudgesBefore + 1);
    const read = await send(w, "GET", `/api/v1/products/${created.id}`, undefined, null);
    assert.deepEqual(await read.json(), created);
    const history = await (await send(w, "GET", `/api/v1/products/${created.id}/price-history`, undefined, null))
      .json();
    assert.equal(history.items.length, 1);
    assert.equal(history.items[0].price, "19.90");
    assert.equal(history.items[0].validTo, null);
    assert.equal(history.items[0].changedBy, "admin-1");
    const events = await w.sql.query<{ envelope: string }>`
      select envelope from outbox where topic = ${productUpdated.eventType} and partition_key = ${created.id}`;
    assert.equal(events.length, 1);
    assert.deepEqual(JSON.parse(events[0].envelope).payload, {
      productId: created.id,
      sku: created.sku,
      price: "19.90",
      currency: "EUR",
      version: 1,
    });
  },
});

Deno.test({
  ...opts,
  name: "POST /products refuses a duplicate sku with 409 ECOMMERCE.SKU_TAKEN and non-admins with 401/403",
  fn: async () => {
    const w = await world();
    const first = await createProduct(w);
    const again = await send(w, "POST", "/api/v1/products", {
      sku: first.sku,
      name: "Other",
      category: "x",
      price: "1.00",
      currency: "EUR",
    });
    assert.equal(again.status, 409);
    assert.equal(await problemCode(again), "ECOMMERCE.SKU_TAKEN");
    const body = { sku: sku(), name: "N", category: "c", price: "1.00", currency: "EUR" };
    const asCustomer = await send(w, "POST", "/api/v1/products", body, w.customer);
    assert.equal(asCustomer.status, 403);
    assert.equal(await problemCode(asCustomer), "AUTH.FORBIDDEN");
    const anonymous = await send(w, "POST", "/api/v1/products", body, null);
    assert.equal(anonymous.status, 401);
    for (
      const bad of [{ ...body, price: "0.00" }, { ...body, price: "-1" }, { ...body, price: 10 }, {
        ...body,
        currency: "eur",
      }, { ...body, extra: true }]
    ) {
      const res = await send(w, "POST", "/api/v1/products", bad);
      assert.equal(res.status, 400, JSON.stringify(bad));
      assert.equal(await problemCode(res), "COMMON.VALIDATION_FAILED");
    }
  },
});

Deno.test({
  ...opts,
  name: "GET /products/{id} answers 404 ECOMMERCE.PRODUCT_NOT_FOUND for unknown and malformed ids",
  fn: async () => {
    const w = await world();
    for (const id of [crypto.randomUUID(), "not-a-uuid", "1%27%20or%201%3D1", "%00"]) {
      const res = await send(w, "GET", `/api/v1/products/${id}`, undefined, null);
      assert.equal(res.status, 404, id);
      assert.equal(await problemCode(res), "ECOMMERCE.PRODUCT_NOT_FOUND");
      const history = await send(w, "GET", `/api/v1/products/${id}/price-history`, undefined, null);
      assert.equal(history.status, 404);
      const put = await send(w, "PATCH", `/api/v1/products/${id}`, { name: "x" });
      assert.equal(put.status, 404);
    }
  },
});

Deno.test({
  ...opts,
  name: "PUT with a new price closes the current price row and opens the next one (SCD2) and announces it",
  fn: async () => {
    const w = await world();
    const product = await createProduct(w);
    const put = await send(w, "PUT", `/api/v1/products/${product.id}`, {
      name: "Trail shoe v2",
      description: "Lighter",
      category: "shoes",
      price: "99.00",
      currency: "EUR",
    });
    assert.equal(put.status, 200);
    const updated: ProductView = await put.json();
    assert.equal(updated.price, "99.00");
    assert.equal(updated.name, "Trail shoe v2");
    assert.equal(updated.createdAt, product.createdAt);
    const { items } = await (await send(w, "GET", `/api/v1/products/${product.id}/price-history`, undefined, null))
      .json();
    assert.deepEqual(items.map((r: { price: string }) => r.price), ["99.00", "129.50"]);
    assert.equal(items[0].validTo, null);
    assert.equal(items[1].validTo, items[0].validFrom, "the closed row ends where the new one starts");
    const [{ version }] = await w.sql.query`select version from products where id = ${product.id}::uuid`;
    assert.equal(version, 2);
    const events = await w.sql.query<{ envelope: string }>`
      select envelope from outbox where partition_key = ${product.id} order by id`;
    assert.deepEqual(events.map((e) => JSON.parse(e.envelope).payload.price), ["129.50", "99.00"]);
    assert.deepEqual(events.map((e) => JSON.parse(e.envelope).payload.version), [1, 2], "each event names its version");

    // A PATCH of the name only: event, no price row. A PATCH that changes nothing: neither.
    const patch = await send(w, "PATCH", `/api/v1/products/${product.id}`, { name: "Renamed" });
    assert.equal((await patch.json()).name, "Renamed");
    const same = await send(w, "PATCH", `/api/v1/products/${product.id}`, { price: "99", currency: "EUR" });
    assert.equal(same.status, 200);
    const [{ n: rows }] = await w.sql.query`
      select count(*)::int as n from product_price_history where product_id = ${product.id}::uuid`;
    assert.equal(rows, 2);
    const [{ n: outboxRows }] = await w.sql
      .query`select count(*)::int as n from outbox where partition_key = ${product.id}`;
    assert.equal(outboxRows, 3);
    // A currency change is a price change too.
    await send(w, "PATCH", `/api/v1/products/${product.id}`, { currency: "USD" });
    const history =
      await (await send(w, "GET", `/api/v1/products/${product.id}/price-history?limit=1`, undefined, null))
        .json();
    assert.deepEqual(history.items.map((r: { currency: string }) => r.currency), ["USD"]);

    const empty = await send(w, "PATCH", `/api/v1/products/${product.id}`, {});
    assert.equal(empty.status, 400);
    const withSku = await send(w, "PATCH", `/api/v1/products/${product.id}`, { sku: "NEW" });
    assert.equal(withSku.status, 400);
    const partialPut = await send(w, "PUT", `/api/v1/products/${product.id}`, { name: "only" });
    assert.equal(partialPut.status, 400);
    const asCustomer = await send(w, "PATCH", `/api/v1/products/${product.id}`, { name: "x" }, w.customer);
    assert.equal(asCustomer.status, 403);
  },
});

Deno.test({
  ...opts,
  name: "a product change whose event cannot be written is rolled back: neither the change nor the event remains",
  fn: async () => {
    const w = await world();
    const product = await createProduct(w);
    await w.sql.exec(`
      create or replace function refuse_outbox() returns trigger language plpgsql as $$
      begin raise exception 'outbox refused for the test'; end $$;
      create trigger refuse_outbox before insert on outbox for each row execute function refuse_outbox();`);
    try {
      const res = await send(w, "PATCH", `/api/v1/products/${product.id}`, { price: "1.00", name: "Never" });
      assert.equal(res.status, 500);
      assert.equal(await problemCode(res), "COMMON.INTERNAL");
    } finally {
      await w.sql.exec("drop trigger refuse_outbox on outbox; drop function refuse_outbox();");
    }
    const [row] = await w.sql
      .query`select name, price::text as price, version from products where id = ${product.id}::uuid`;
    assert.deepEqual(row, { name: product.name, price: "129.50", version: 1 });
    const [{ n: history }] = await w.sql.query`
      select count(*)::int as n from product_price_history where product_id = ${product.id}::uuid`;
    assert.equal(history, 1);
    const [{ n: events }] = await w.sql
      .query`select count(*)::int as n from outbox where partition_key = ${product.id}`;
    assert.equal(events, 1, "only the creation event");
  },
});

Deno.test({
  ...opts,
  name: "close the catalog test database",
  fn: closeWorld,
});
