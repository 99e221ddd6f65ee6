/**
 * Order replication between the project's east and west clusters (scripts/postgres), on throw-away
 * databases: east publishes, west subscribes and refuses local writes, promotion flips the writer, the old
 * writer re-syncs as replica. Brings the clusters up when they are not running.
 */
import assert from "node:assert/strict";
import type { Sql } from "../../shared/ports/mod.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import { createWriterRoleReader } from "../../regional/ecommerce/orders/writer/mod.ts";
import { withRegionDatabases } from "./_region_databases_for_test.ts";
import { tableParity } from "./table_parity.ts";
import { ensurePublication, ensureSubscription } from "../../shared/adapters/postgres/replication.ts";
import { REPLICATED_ORDER_TABLES } from "../../regional/ecommerce/orders/writer/mod.ts";
import {
  ensureOrderReplication,
  ORDER_PUBLICATION,
  orderParity,
  orderSubscriptionName,
  promoteOrderWriter,
  readWriterRoles,
  resyncAsReplica,
} from "./order_replication.ts";

const quiet = () => {};

async function placeOrder(sql: Sql, userId: string): Promise<string> {
  const id = crypto.randomUUID();
  const at = new Date();
  await sql.transaction(async (tx) => {
    await tx.query`insert into orders (id, user_id, status, total_amount, currency, created_at, updated_at)
      values (${id}, ${userId}, 'PENDING', '10.00', 'USD', ${at}, ${at})`;
    await tx.query`insert into order_items (order_id, line_no, product_id, qty, price)
      values (${id}, 1, ${crypto.randomUUID()}, 1, '10.00')`;
    await tx.query`insert into order_status_history (order_id, from_status, to_status, reason, actor, at)
      values (${id}, null, 'PENDING', 'placed', ${userId}, ${at})`;
  });
  return id;
}

/** A product with a price row, 7 units with their ledger row, and a cart holding it (what a checkout reads). */
async function catalogAndCart(sql: Sql, userId: string): Promise<{ productId: string; cartId: string }> {
  const productId = crypto.randomUUID();
  const cartId = crypto.randomUUID();
  await sql.transaction(async (tx) => {
    await tx.query`insert into products (id, sku, name, category, price, currency)
      values (${productId}, ${uniqueName("SKU").toUpperCase()}, 'Mug', 'kitchen', '4.50', 'USD')`;
    await tx.query`insert into product_price_history (product_id, price, currency, valid_from, changed_by)
      values (${productId}, '4.50', 'USD', now(), 'test')`;
    await tx.query`insert into inventory_stock (product_id, sku, on_hand) select id, sku, 7 from products
      where id = ${productId}`;
    await tx.query`insert into inventory_adjustment (product_id, delta, reason, source)
      values (${productId}, 7, 'count', 'test')`;
    await tx.query`insert into carts (id, user_id) values (${cartId}, ${userId})`;
    await tx.query`insert into cart_items (cart_id, product_id, qty) values (${cartId}, ${productId}, 2)`;
  });
  return { productId, cartId };
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const started = performance.now();
  while (!(await probe())) {
    if (performance.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function waitForOrder(sql: Sql, id: string, timeoutMs: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    const rows = await sql.query`select 1 from orders where id = ${id}`;
    if (rows.length > 0) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`order ${id} not replicated within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test({
  name:
    "orders, catalog, stock and carts written in east reach west, west refuses them, promotion + re-sync swap roles",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bvr", async ({ dbs, east, west }) => {
      const before = await placeOrder(east, "u-before");
      const link = await ensureOrderReplication(dbs, { log: quiet });
      assert.equal(link.writer, "east");
      assert.equal(link.subscription, orderSubscriptionName(dbs, "east"));
      // The initial copy brought the order that existed before the subscription.
      assert.equal((await west.query`select 1 from orders where id = ${before}`).length, 1);
      // A second run changes nothing.
      assert.equal((await ensureOrderReplication(dbs, { log: quiet })).outcome, "unchanged");

      // Catalog, stock and carts are authored in east too, and refused in west.
      const { productId, cartId } = await catalogAndCart(east, "u-east");
      await waitFor(
        "cart line in west",
        async () =>
          (await west.query`select 1 from cart_items where cart_id = ${cartId} and product_id = ${productId}`).length >
            0,
        10_000,
      );
      const [westStock] = await west.query<{ on_hand: number }>`
      select on_hand from inventory_stock where product_id = ${productId}`;
      assert.equal(westStock.on_hand, 7);
      for (const write of [() => catalogAndCart(west, "u-west"), () => west.exec("delete from idempotency_keys")]) {
        await assert.rejects(write(), (error: Error & { code?: string }) => error.code === "25006");
      }

      const placed = await placeOrder(east, "u-east");
      const lagMs = await waitForOrder(west, placed, 10_000);
      console.log(`east → west order visible after ${lagMs.toFixed(1)} ms`);
      const items = await west.query`select qty from order_items where order_id = ${placed}`;
      assert.deepEqual(items.map((r) => r.qty), [1]);

      await assert.rejects(placeOrder(west, "u-west"), (error: Error & { code?: string }) => {
        assert.equal(error.code, "25006");
        assert.match(error.message, /region "east" writes orders/);
        return true;
      });
      const westRole = await createWriterRoleReader(west, { cacheMs: 0 }).current();
      assert.deepEqual(westRole, { localRegion: "west", writerRegion: "east", epoch: 1 });

      // Promotion: west writes, its status-history sequence continues after the replicated rows.
      const promoted = await promoteOrderWriter(dbs, "west", quiet);
      assert.equal(promoted.epoch, 2);
      assert.ok((promoted.sequences["public.product_price_history_id_seq"] ?? 0) >= 1, JSON.stringify(promoted));
      await catalogAndCart(west, "u-west"); // the promoted region authors the catalog and carts now
      const westOrder = await placeOrder(west, "u-west");
      const [maxEast] = await east.query<{ max: string }>`select max(id)::text as max from order_status_history`;
      const [newRow] = await west.query<{ id: string }>`
      select id::text as id from order_status_history where order_id = ${westOrder}`;
      assert.ok(BigInt(newRow.id) > BigInt(maxEast.max), `${newRow.id} must be above ${maxEast.max}`);
      // East (the old writer) now refuses local writes: its row was flipped.
      await assert.rejects(placeOrder(east, "u-east-late"), /region "west" writes orders/);

      const resync = await resyncAsReplica(dbs, "east", { log: quiet });
      assert.deepEqual(resync.discardedOrderIds, []);
      const fromWest = await placeOrder(west, "u-west-2");
      await waitForOrder(east, fromWest, 10_000);
      const parity = await orderParity(dbs);
      assert.deepEqual({ missingInEast: parity.missingInEast, missingInWest: parity.missingInWest }, {
        missingInEast: [],
        missingInWest: [],
      });
      assert.equal(parity.east, 4);
      await waitFor("every replicated table equal", async () => (await tableParity(dbs)).every((t) => t.equal), 10_000);
      const carts = (await tableParity(dbs)).find((t) => t.table === "cart_items");
      assert.deepEqual([carts?.east.rows, carts?.west.rows], [2, 2]);
      const roles = await readWriterRoles(dbs);
      assert.deepEqual(roles, { east: { writer: "west", epoch: 2 }, west: { writer: "west", epoch: 2 } });
    });
  },
});

Deno.test({
  name: "a link made when only orders replicated takes the catalog, stock and carts, discarding the replica's own rows",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bvu", async ({ dbs, east, west }) => {
      // The previous layout: orders only, while west kept its own catalog and carts.
      await ensurePublication(dbs.east, ORDER_PUBLICATION, REPLICATED_ORDER_TABLES);
      await ensureSubscription({
        subscriberUrl: dbs.west,
        publisherUrl: dbs.east,
        publication: ORDER_PUBLICATION,
        subscription: orderSubscriptionName(dbs, "east"),
        copyData: true,
        synchronousCommit: "off",
      });
      const eastOwn = await catalogAndCart(east, "u-east");
      const westOwn = await catalogAndCart(west, "u-west");
      await ensureOrderReplication(dbs, { log: quiet });
      assert.equal((await west.query`select 1 from products where id = ${westOwn.productId}`).length, 0);
      assert.equal((await west.query`select 1 from cart_items where cart_id = ${eastOwn.cartId}`).length, 1);
      await waitFor("every replicated table equal", async () => (await tableParity(dbs)).every((t) => t.equal), 10_000);
    });
  },
});
