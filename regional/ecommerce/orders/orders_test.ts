/**
 * An order's life through the routes: placed and priced, paid, fulfilled or canceled, the failures on the way
 * (stock, payment, transitions) and the metrics it leaves: on PGlite and on PostgreSQL.
 */
import assert from "node:assert/strict";
import { metrics } from "../../../shared/observability/mod.ts";
import {
  type Bench,
  call,
  CANCELED,
  CREATED,
  created,
  eventsOf,
  FULFILLED,
  historyOf,
  PAID,
  paid,
  payloadsOf,
  placeApples,
  problem,
  runOrderScenarios,
} from "./_orders_fixture.ts";

const scenarios: Record<string, (bench: Bench) => Promise<void>> = {
  "placing an order prices items from the catalog and answers 201 RESERVED": async (bench) => {
    const { apple, pear } = bench.products;
    const response = await call(bench, "/api/v1/orders", {
      body: { items: [{ productId: apple, qty: 2 }, { productId: pear.toUpperCase(), qty: 3 }] },
    });
    const order = await created(response);
    assert.equal(response.headers.get("location"), `/api/v1/orders/${order.id}`);
    assert.equal(order.status, "RESERVED");
    assert.equal(order.totalAmount, "54.50");
    assert.equal(order.currency, "USD");
    assert.equal(order.userId, "alice");
    assert.deepEqual(order.items, [
      { productId: apple, qty: 2, price: "25.00" },
      { productId: pear, qty: 3, price: "1.50" },
    ]);
    assert.equal(bench.stock.available(apple), 8);
    assert.deepEqual(await eventsOf(bench.sql, order.id), [CREATED]);
    assert.deepEqual(await historyOf(bench.sql, order.id), ["->PENDING", "PENDING>RESERVED"]);
    const [payload] = await payloadsOf(bench.sql, order.id);
    assert.deepEqual(payload, {
      orderId: order.id,
      userId: "alice",
      totalAmount: "54.50",
      currency: "USD",
      items: [{ productId: apple, qty: 2, price: "25.00" }, { productId: pear, qty: 3, price: "1.50" }],
    });
    assert.ok(bench.nudges() >= 1, "the outbox relay is nudged after the commit");
  },

  "the lifecycle PENDING → RESERVED → PAID → FULFILLED writes its events to the outbox in order": async (bench) => {
    const id = await placeApples(bench);
    const pay = await call(bench, `/api/v1/orders/${id}/pay`, { method: "POST" });
    assert.equal(pay.status, 200);
    assert.equal((await pay.json()).status, "PAID");
    assert.equal(bench.stock.stateOf(id), "confirmed");
    const fulfil = await call(bench, `/api/v1/orders/${id}/fulfill`, { method: "POST", user: "ops", roles: ["ADMIN"] });
    assert.equal(fulfil.status, 200);
    assert.equal((await fulfil.json()).status, "FULFILLED");
    assert.equal(bench.stock.stateOf(id), "committed");
    assert.deepEqual(await eventsOf(bench.sql, id), [CREATED, PAID, FULFILLED]);
    assert.deepEqual(await historyOf(bench.sql, id), [
      "->PENDING",
      "PENDING>RESERVED",
      "RESERVED>PAID",
      "PAID>FULFILLED",
    ]);
    const paidPayload = (await payloadsOf(bench.sql, id))[1];
    assert.deepEqual(paidPayload, {
      orderId: id,
      userId: "alice",
      amount: "50.00",
      currency: "USD",
      authCode: "AUTH-1",
    });
    const payments = await bench.sql.query`select status, auth_code, via, amount::text as amount from payments
      where order_id = ${id}::uuid`;
    assert.deepEqual(payments, [{ status: "APPROVED", auth_code: "AUTH-1", via: "soap", amount: "50.00" }]);
  },

  "a customer cannot cancel a PAID order (409); an admin can": async (bench) => {
    const id = await placeApples(bench);
    await paid(bench, id);
    const refused = await call(bench, `/api/v1/orders/${id}/cancel`, { method: "POST" });
    const body = await problem(refused, 409, "ECOMMERCE.ORDER_NOT_CANCELABLE");
    assert.match(String(body.detail), /is PAID and cannot be canceled/);
    assert.deepEqual(await eventsOf(bench.sql, id), [CREATED, PAID]);
    const admin = await call(bench, `/api/v1/orders/${id}/cancel`, {
      user: "ops",
      roles: ["ADMIN"],
      body: { reason: "customer called support" },
    });
    assert.equal(admin.status, 200, await admin.clone().text());
    assert.equal((await admin.json()).status, "CANCELED");
    assert.equal(bench.stock.stateOf(id), "released");
    const payloads = await payloadsOf(bench.sql, id);
    assert.equal(payloads[2].reason, "customer called support");
  },

  "a customer cancels their RESERVED order: stock released and the event written": async (bench) => {
    const id = await placeApples(bench, 4);
    assert.equal(bench.stock.available(bench.products.apple), 6);
    const response = await call(bench, `/api/v1/orders/${id}/cancel`, { method: "POST" });
    assert.equal(response.status, 200);
    assert.equal((await response.json()).status, "CANCELED");
    assert.equal(bench.stock.available(bench.products.apple), 10);
    assert.deepEqual(await eventsOf(bench.sql, id), [CREATED, CANCELED]);
    assert.equal((await payloadsOf(bench.sql, id))[1].reason, "canceled by customer");
    await problem(
      await call(bench, `/api/v1/orders/${id}/cancel`, { method: "POST" }),
      409,
      "ECOMMERCE.ORDER_NOT_CANCELABLE",
    );
  },

  "insufficient stock answers 409 and leaves the order CANCELED": async (bench) => {
    const response = await call(bench, "/api/v1/orders", {
      body: { items: [{ productId: bench.products.apple, qty: 11 }] },
    });
    const body = await problem(response, 409, "ECOMMERCE.INSUFFICIENT_STOCK");
    assert.match(String(body.detail), /Cannot reserve 11 of product ".+": only 10 available/);
    const [order] = await bench.sql.query<{ id: string; status: string }>`
      select id::text as id, status from orders where user_id = 'alice'`;
    assert.equal(order.status, "CANCELED");
    assert.deepEqual(await eventsOf(bench.sql, order.id), [CREATED, CANCELED]);
    assert.match(String((await payloadsOf(bench.sql, order.id))[1].reason), /only 10 available/);
    assert.equal(bench.stock.available(bench.products.apple), 10);
    const list = await (await call(bench, "/api/v1/orders?mine")).json();
    assert.deepEqual(list.items.map((o: { status: string }) => o.status), ["CANCELED"]);
  },

  "a declined payment answers 402, cancels the order and releases its stock": async (bench) => {
    const id = await placeApples(bench, 3);
    bench.payments.setBehaviour("decline");
    const response = await call(bench, `/api/v1/orders/${id}/pay`, { method: "POST" });
    const body = await problem(response, 402, "ECOMMERCE.PAYMENT_DECLINED");
    assert.match(String(body.detail), /declined \("insufficient funds"\)/);
    const order = await (await call(bench, `/api/v1/orders/${id}`)).json();
    assert.equal(order.status, "CANCELED");
    assert.equal(bench.stock.available(bench.products.apple), 10);
    assert.deepEqual(await eventsOf(bench.sql, id), [CREATED, CANCELED]);
    assert.equal((await payloadsOf(bench.sql, id))[1].reason, "payment declined");
    const payments = await bench.sql.query`select status from payments where order_id = ${id}::uuid`;
    assert.deepEqual(payments, [{ status: "DECLINED" }]);
  },

  "an unavailable gateway answers 503 and the order stays RESERVED until a retry succeeds": async (bench) => {
    const id = await placeApples(bench);
    const key = crypto.randomUUID();
    bench.payments.setBehaviour("unavailable");
    const failed = await call(bench, `/api/v1/orders/${id}/pay`, { method: "POST", key });
    await problem(failed, 503, "ECOMMERCE.PAYMENT_UNAVAILABLE");
    assert.equal(failed.headers.get("retry-after"), "5");
    assert.equal((await (await call(bench, `/api/v1/orders/${id}`)).json()).status, "RESERVED");
    assert.deepEqual(await eventsOf(bench.sql, id), [CREATED]);
    bench.payments.setBehaviour("approve");
    const retried = await call(bench, `/api/v1/orders/${id}/pay`, { method: "POST", key });
    assert.equal(retried.status, 200);
    assert.equal((await retried.json()).status, "PAID");
    assert.equal(bench.payments.charged(), 1);
    const attempts = await bench.sql.query<{ status: string }>`
      select status from payments where order_id = ${id}::uuid order by id`;
    assert.deepEqual(attempts.map((a) => a.status), ["UNAVAILABLE", "APPROVED"]);
  },

  "fulfilment needs ADMIN and a PAID order; invalid transitions answer 409": async (bench) => {
    const id = await placeApples(bench);
    await problem(await call(bench, `/api/v1/orders/${id}/fulfill`, { method: "POST" }), 403, "AUTH.FORBIDDEN");
    const early = await call(bench, `/api/v1/orders/${id}/fulfill`, { method: "POST", user: "ops", roles: ["ADMIN"] });
    await problem(early, 409, "ECOMMERCE.ORDER_INVALID_TRANSITION");
    await paid(bench, id);
    await problem(
      await call(bench, `/api/v1/orders/${id}/pay`, { method: "POST" }),
      409,
      "ECOMMERCE.ORDER_INVALID_TRANSITION",
    );
    await problem(
      await call(bench, `/api/v1/orders/${id}/pay`, { method: "POST", user: "ops", roles: ["ADMIN"] }),
      403,
      "AUTH.FORBIDDEN",
    );
    assert.deepEqual(await eventsOf(bench.sql, id), [CREATED, PAID]);
  },

  "mixed currencies answer 422 and unknown products 404, and no order is created": async (bench) => {
    const { apple, euro } = bench.products;
    const mixed = await call(bench, "/api/v1/orders", {
      body: { items: [{ productId: apple, qty: 1 }, { productId: euro, qty: 1 }] },
    });
    await problem(mixed, 422, "ECOMMERCE.CURRENCY_MISMATCH");
    const unknown = crypto.randomUUID();
    const missing = await call(bench, "/api/v1/orders", { body: { items: [{ productId: unknown, qty: 1 }] } });
    const body = await problem(missing, 404, "ECOMMERCE.PRODUCT_NOT_FOUND");
    assert.match(String(body.detail), new RegExp(unknown));
    const dup = await call(bench, "/api/v1/orders", {
      body: { items: [{ productId: apple, qty: 1 }, { productId: apple, qty: 1 }] },
    });
    await problem(dup, 400, "COMMON.VALIDATION_FAILED");
    assert.equal((await bench.sql.query`select 1 from orders where user_id = 'alice'`).length, 0);
  },

  "concurrent transitions of one order: exactly one wins, the others answer 409": async (bench) => {
    const id = await placeApples(bench);
    const responses = await Promise.all(
      Array.from({ length: 5 }, () => call(bench, `/api/v1/orders/${id}/cancel`, { method: "POST" })),
    );
    const statuses = responses.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 409, 409, 409, 409]);
    for (const r of responses.filter((r) => r.status === 409)) {
      assert.match((await r.json()).code, /^ECOMMERCE\.ORDER_(NOT_CANCELABLE|INVALID_TRANSITION)$/);
    }
    assert.deepEqual(await eventsOf(bench.sql, id), [CREATED, CANCELED]);
    assert.deepEqual(await historyOf(bench.sql, id), ["->PENDING", "PENDING>RESERVED", "RESERVED>CANCELED"]);
  },

  "an order canceled while its stock is being reserved gives the stock back": async (bench) => {
    const held = bench.stock.holdNextReserve();
    const placing = call(bench, "/api/v1/orders", { body: { items: [{ productId: bench.products.apple, qty: 3 }] } });
    await held.entered;
    const [pending] = await bench.sql.query<{ id: string }>`select id::text as id from orders where user_id = 'alice'`;
    const cancel = await call(bench, `/api/v1/orders/${pending.id}/cancel`, { method: "POST" });
    assert.equal(cancel.status, 200, await cancel.clone().text());
    held.release();
    await problem(await placing, 409, "ECOMMERCE.ORDER_INVALID_TRANSITION");
    assert.equal(bench.stock.available(bench.products.apple), 10, "the late reservation was released");
    assert.deepEqual(await eventsOf(bench.sql, pending.id), [CREATED, CANCELED]);
  },

  "order metrics count placed orders and their latency": async (bench) => {
    // The registry is process-wide and earlier scenarios placed orders too: compare before and after.
    const series = async () => {
      const text = await metrics.render();
      const value = (pattern: RegExp) => Number(text.match(pattern)?.[1] ?? 0);
      return {
        created: value(/^bv_orders_created_total\{outcome="reserved"\} (\d+)$/m),
        timed: value(/^bv_order_creation_latency_seconds_count\{outcome="reserved"\} (\d+)$/m),
        slow: value(/^bv_order_creation_latency_seconds_bucket\{le="\+Inf",outcome="reserved"\} (\d+)$/m),
      };
    };
    const before = await series();
    await placeApples(bench, 1);
    const after = await series();
    assert.deepEqual(
      { created: after.created - before.created, timed: after.timed - before.timed, inf: after.slow - before.slow },
      { created: 1, timed: 1, inf: 1 },
    );
  },
};

runOrderScenarios("orders", scenarios);
