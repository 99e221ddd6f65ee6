/**
 * Stock holds bound their orders (pay_order.ts, order_lapse.ts) and a 5xx after an order was placed keeps its
 * Idempotency-Key's claim (place_order.ts, idempotency.ts): on PGlite and on PostgreSQL.
 */
import assert from "node:assert/strict";
import {
  type Bench,
  call,
  CANCELED,
  CREATED,
  created,
  eventsOf,
  paid,
  payloadsOf,
  placeApples,
  problem,
  runOrderScenarios,
} from "./_orders_fixture.ts";
import { startOrderLapse } from "./order_lapse.ts";

const scenarios: Record<string, (bench: Bench) => Promise<void>> = {
  "paying an order whose stock hold would lapse during the charge cancels it: 409, nothing charged": async (bench) => {
    const orderId = await placeApples(bench, 2);
    assert.equal(bench.stock.available(bench.products.apple), 8);
    // TTL 60 s; the charge (2 s), the confirm (2 s) and 5 s of margin would end past the hold's end.
    await bench.sql
      .query`update orders set created_at = created_at - interval '52 seconds' where id = ${orderId}::uuid`;
    const response = await call(bench, `/api/v1/orders/${orderId}/pay`, { method: "POST" });
    await problem(response, 409, "ECOMMERCE.RESERVATION_EXPIRED");
    assert.equal(bench.payments.requests.length, 0, "the gateway was not called");
    const order = await (await call(bench, `/api/v1/orders/${orderId}`)).json();
    assert.equal(order.status, "CANCELED");
    assert.deepEqual(await eventsOf(bench.sql, orderId), [CREATED, CANCELED]);
    assert.equal((await payloadsOf(bench.sql, orderId))[1].reason, "reservation expired");
    assert.equal(bench.stock.available(bench.products.apple), 10, "the hold was released");
    // A retry gets the same answer from the canceled order, never a charge.
    await problem(
      await call(bench, `/api/v1/orders/${orderId}/pay`, { method: "POST" }),
      409,
      "ECOMMERCE.ORDER_INVALID_TRANSITION",
    );
    assert.equal(bench.payments.requests.length, 0);
  },

  "an approved charge that finds its hold gone cancels the order (409) instead of answering 503 forever": async (
    bench,
  ) => {
    const orderId = await placeApples(bench, 1);
    // The hold lapsed behind the order's back (inventory's sweeper, a lost release).
    await bench.stock.release(orderId);
    const response = await call(bench, `/api/v1/orders/${orderId}/pay`, { method: "POST" });
    await problem(response, 409, "ECOMMERCE.RESERVATION_EXPIRED");
    const order = await (await call(bench, `/api/v1/orders/${orderId}`)).json();
    assert.equal(order.status, "CANCELED");
    const payments = await bench.sql.query<{ status: string }>`
      select status from payments where order_id = ${orderId}::uuid`;
    assert.deepEqual(payments.map((p) => p.status), ["APPROVED"], "the charge is on record for its refund");
    assert.deepEqual(await eventsOf(bench.sql, orderId), [CREATED, CANCELED]);
  },

  "the lapse sweeper cancels open orders past their hold, and leaves fresh and paid ones": async (bench) => {
    const reserved = await placeApples(bench, 1);
    const pending = await placeApples(bench, 1);
    const fresh = await placeApples(bench, 1);
    const paidOrder = await placeApples(bench, 1);
    await paid(bench, paidOrder);
    // A process that died between the insert and the reservation leaves an order PENDING.
    await bench.sql.query`update orders set status = 'PENDING' where id = ${pending}::uuid`;
    await bench.sql.query`
      update orders set created_at = created_at - interval '121 seconds'
      where id = any(${[reserved, pending, paidOrder]}::uuid[])`;
    const released: string[] = [];
    const lapse = startOrderLapse({
      sql: bench.sql,
      release: (orderId) => (released.push(orderId), bench.stock.release(orderId)),
      nudgeOutbox: () => {},
      reservationTtlSec: 60,
      graceMs: 60_000,
      intervalMs: 3_600_000,
    });
    try {
      assert.equal(await lapse.sweep(), 2);
      assert.equal(await lapse.sweep(), 0, "each is canceled once");
    } finally {
      await lapse.stop();
    }
    assert.deepEqual(released.sort(), [reserved, pending].sort());
    for (const id of [reserved, pending]) {
      assert.deepEqual(await eventsOf(bench.sql, id), [CREATED, CANCELED]);
      assert.equal((await payloadsOf(bench.sql, id))[1].reason, "reservation expired");
    }
    const statusOf = async (id: string) => (await (await call(bench, `/api/v1/orders/${id}`)).json()).status;
    assert.equal(await statusOf(fresh), "RESERVED");
    assert.equal(await statusOf(paidOrder), "PAID");
    assert.equal(bench.stock.available(bench.products.apple), 8, "fresh and paid keep their units");
  },

  "a 5xx after the order was placed: the retry with the key finds that order instead of a second": async (bench) => {
    // Transitions to a status named in the table fail, as a database error would.
    await bench.sql.exec(`
      create table if not exists bv_test_blocked (status text primary key);
      create or replace function bv_test_block_status() returns trigger language plpgsql as $$
      begin
        if exists (select 1 from bv_test_blocked where status = new.status) then
          raise exception 'transition to % blocked by the test', new.status;
        end if;
        return new;
      end $$;
      create or replace trigger bv_test_block_status before update on orders
        for each row execute function bv_test_block_status();`);
    const body = { items: [{ productId: bench.products.apple, qty: 1 }] };
    const ordersOfAlice = async () => (await bench.sql.query<{ id: string; status: string }>`
        select id::text as id, status from orders where user_id = 'alice' order by created_at`);
    try {
      // 1. RESERVED fails, the cancel works: the order is CANCELED with its event and its stock back.
      await bench.sql.exec("insert into bv_test_blocked values ('RESERVED')");
      const key = crypto.randomUUID();
      const failed = await call(bench, "/api/v1/orders", { body, key });
      assert.equal(failed.status, 500, await failed.clone().text());
      const [first] = await ordersOfAlice();
      assert.equal(first.status, "CANCELED", "no order is left PENDING with nothing ahead of it");
      assert.deepEqual(await eventsOf(bench.sql, first.id), [CREATED, CANCELED]);
      assert.equal(bench.stock.available(bench.products.apple), 10);
      await bench.sql.exec("delete from bv_test_blocked");
      // The retry places the order anew (the first was canceled, nothing charged or held).
      const retried = await created(await call(bench, "/api/v1/orders", { body, key }));
      assert.notEqual(retried.id, first.id);
      assert.equal(retried.status, "RESERVED");
      assert.equal(bench.stock.available(bench.products.apple), 9);

      // 2. RESERVED and CANCELED both fail: the order stays PENDING with its stock held, and the retry with
      // the key takes that very order on instead of placing a second one.
      await bench.sql.exec("insert into bv_test_blocked values ('RESERVED'), ('CANCELED')");
      const key2 = crypto.randomUUID();
      const failedAgain = await call(bench, "/api/v1/orders", { body, key: key2 });
      assert.equal(failedAgain.status, 500, await failedAgain.clone().text());
      const stuck = (await ordersOfAlice()).at(-1)!;
      assert.equal(stuck.status, "PENDING");
      assert.equal(bench.stock.available(bench.products.apple), 8, "its hold stays");
      await bench.sql.exec("delete from bv_test_blocked");
      const resumed = await created(await call(bench, "/api/v1/orders", { body, key: key2 }));
      assert.equal(resumed.id, stuck.id, "the same order, not a second one");
      assert.equal(resumed.status, "RESERVED");
      assert.equal((await ordersOfAlice()).length, 3);
      assert.equal(bench.stock.available(bench.products.apple), 8, "held once");
    } finally {
      await bench.sql.exec(
        "drop trigger if exists bv_test_block_status on orders; drop table if exists bv_test_blocked",
      );
    }
  },
};

runOrderScenarios("order holds", scenarios);
