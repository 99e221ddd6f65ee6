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
  "a retry after the process died mid-request answers the first order instead of placing a second": async (bench) => {
    const key = crypto.randomUUID();
    const body = { items: [{ productId: bench.products.apple, qty: 1 }] };
    const first = await created(await call(bench, "/api/v1/orders", { body, key }));
    // The process died after the order committed, before the key's response was stored (or the store
    // failed): the claim stays in flight until its lease has run out.
    const died = async (orderStatus?: string) => {
      await bench.sql.query`
        update idempotency_keys set status = 'in_flight', response_status = null, response_headers = null,
          response_body = null, created_at = created_at - interval '10 minutes'
        where user_id = 'alice' and key = ${key}`;
      if (orderStatus) await bench.sql.query`update orders set status = ${orderStatus} where id = ${first.id}::uuid`;
    };
    await died();
    const retried = await created(await call(bench, "/api/v1/orders", { body, key }));
    assert.equal(retried.id, first.id, "the same order, not a second one");
    assert.equal(retried.status, "RESERVED");
    // Died right after the order was inserted PENDING: the retry takes it on to RESERVED.
    await died("PENDING");
    const resumed = await created(await call(bench, "/api/v1/orders", { body, key }));
    assert.equal(resumed.id, first.id);
    assert.equal(resumed.status, "RESERVED");
    const [{ n }] = await bench.sql.query<{ n: number }>`select count(*)::int as n from orders where user_id = 'alice'`;
    assert.equal(n, 1);
    assert.equal(bench.stock.available(bench.products.apple), 9, "one unit held, once");
    // A stored answer is replayed as before.
    const replay = await call(bench, "/api/v1/orders", { body, key });
    assert.equal(replay.headers.get("idempotent-replayed"), "true");
    assert.equal((await created(replay)).id, first.id);
  },
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

  "every order POST without an Idempotency-Key answers 400 and changes nothing": async (bench) => {
    const id = await placeApples(bench);
    const before = await eventsOf(bench.sql, id);
    const body = { items: [{ productId: bench.products.apple, qty: 1 }] };
    await problem(await call(bench, "/api/v1/orders", { body, key: null }), 400, "ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED");
    for (const action of ["pay", "cancel"]) {
      const response = await call(bench, `/api/v1/orders/${id}/${action}`, { method: "POST", key: null });
      await problem(response, 400, "ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED");
    }
    const fulfil = await call(bench, `/api/v1/orders/${id}/fulfill`, { method: "POST", key: null, roles: ["ADMIN"] });
    await problem(fulfil, 400, "ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED");
    await problem(await call(bench, "/api/v1/orders", { body, key: "" }), 400, "ECOMMERCE.IDEMPOTENCY_KEY_REQUIRED");
    await problem(await call(bench, "/api/v1/orders", { body, key: "x".repeat(256) }), 400, "COMMON.VALIDATION_FAILED");
    assert.deepEqual(await eventsOf(bench.sql, id), before);
    assert.equal(bench.stock.available(bench.products.apple), 8);
  },

  "a repeated Idempotency-Key with the same payload replays the first response byte for byte": async (bench) => {
    const key = crypto.randomUUID();
    const { apple, pear } = bench.products;
    const first = await call(bench, "/api/v1/orders", {
      key,
      body: { items: [{ productId: apple, qty: 1 }, { qty: 2, productId: pear }] },
    });
    const firstText = await first.text();
    assert.equal(first.status, 201);
    // The same request written differently (key order, spacing) is the same request.
    const again = await call(bench, "/api/v1/orders", {
      key,
      rawBody: `{ "items": [ {"qty":1, "productId":"${apple}"}, {"productId":"${pear}","qty":2} ] }`,
    });
    assert.equal(again.status, 201);
    assert.equal(await again.text(), firstText);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(first.headers.get("idempotent-replayed"), null);
    const headersOf = (r: Response) => [...r.headers].filter(([name]) => name !== "idempotent-replayed");
    assert.deepEqual(headersOf(again), headersOf(first));
    const orders = await bench.sql.query`select id from orders where user_id = 'alice'`;
    assert.equal(orders.length, 1, "the order was placed once");
    assert.equal(bench.stock.calls.filter((c) => c.startsWith("reserve:")).length, 1);
  },

  "a repeated Idempotency-Key with a different payload answers 422": async (bench) => {
    const key = crypto.randomUUID();
    await created(
      await call(bench, "/api/v1/orders", { key, body: { items: [{ productId: bench.products.apple, qty: 1 }] } }),
    );
    const other = await call(bench, "/api/v1/orders", {
      key,
      body: { items: [{ productId: bench.products.apple, qty: 2 }] },
    });
    const body = await problem(other, 422, "ECOMMERCE.IDEMPOTENCY_KEY_REUSED");
    assert.match(String(body.detail), new RegExp(`"${key}"`));
    // The same key on another endpoint is another request too.
    const id = (await bench.sql.query<{ id: string }>`select id::text as id from orders where user_id = 'alice'`)[0].id;
    await problem(
      await call(bench, `/api/v1/orders/${id}/cancel`, { method: "POST", key }),
      422,
      "ECOMMERCE.IDEMPOTENCY_KEY_REUSED",
    );
  },

  "a repeated Idempotency-Key while the first request is in flight answers 409": async (bench) => {
    const key = crypto.randomUUID();
    const body = { items: [{ productId: bench.products.apple, qty: 1 }] };
    const held = bench.stock.holdNextReserve();
    const first = call(bench, "/api/v1/orders", { key, body });
    await held.entered;
    const concurrent = await call(bench, "/api/v1/orders", { key, body });
    await problem(concurrent, 409, "ECOMMERCE.IDEMPOTENCY_KEY_IN_FLIGHT");
    assert.equal(concurrent.headers.get("retry-after"), "1");
    held.release();
    const order = await created(await first);
    const replay = await call(bench, "/api/v1/orders", { key, body });
    assert.equal((await created(replay)).id, order.id);
    assert.equal(replay.headers.get("idempotent-replayed"), "true");
  },

  "Idempotency-Keys are scoped per user": async (bench) => {
    const key = crypto.randomUUID();
    const body = { items: [{ productId: bench.products.pear, qty: 1 }] };
    const alices = await created(await call(bench, "/api/v1/orders", { key, body, user: "alice" }));
    const bobs = await call(bench, "/api/v1/orders", { key, body, user: "bob" });
    assert.equal(bobs.headers.get("idempotent-replayed"), null);
    const bobsOrder = await created(bobs);
    assert.notEqual(bobsOrder.id, alices.id);
    assert.equal(bobsOrder.userId, "bob");
  },

  "a 5xx is not stored: the key is freed and the retry places the order": async (bench) => {
    const key = crypto.randomUUID();
    const body = { items: [{ productId: bench.products.apple, qty: 1 }] };
    bench.stock.setUnavailable("reserve", true);
    const failed = await call(bench, "/api/v1/orders", { key, body });
    await problem(failed, 503, "COMMON.UPSTREAM_UNAVAILABLE");
    // No answer stored; the claim is kept (it names the order the attempt placed) with its lease ended, so the
    // retry takes it over at once.
    const keys = await bench.sql.query<{ status: string; response_status: number | null; created_at: Date }>`
      select status, response_status, created_at from idempotency_keys where key = ${key}`;
    assert.equal(keys.length, 1);
    assert.equal(keys[0].response_status, null, "no answer stored");
    assert.ok(keys[0].created_at.getTime() < Date.now() - 3_600_000, "its lease has ended");
    const abandoned = await bench.sql.query<{ id: string; status: string }>`
      select id::text as id, status from orders where user_id = 'alice'`;
    assert.deepEqual(
      abandoned.map((o) => o.status),
      ["CANCELED"],
      "the half-placed order is canceled, not left PENDING",
    );
    assert.ok(bench.stock.calls.includes(`release:${abandoned[0].id}`));
    bench.stock.setUnavailable("reserve", false);
    const retried = await call(bench, "/api/v1/orders", { key, body });
    assert.equal(retried.headers.get("idempotent-replayed"), null);
    assert.equal((await created(retried)).status, "RESERVED");
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

  "another user's order answers 404 exactly like a missing one; an admin sees it": async (bench) => {
    const id = await placeApples(bench);
    const mine = await call(bench, `/api/v1/orders/${id}`);
    assert.equal(mine.status, 200);
    assert.equal((await mine.json()).id, id);
    const theirs = await problem(
      await call(bench, `/api/v1/orders/${id}`, { user: "bob" }),
      404,
      "ECOMMERCE.ORDER_NOT_FOUND",
    );
    const missingId = crypto.randomUUID();
    const missing = await problem(
      await call(bench, `/api/v1/orders/${missingId}`, { user: "bob" }),
      404,
      "ECOMMERCE.ORDER_NOT_FOUND",
    );
    assert.equal(String(theirs.detail).replace(id, "X"), String(missing.detail).replace(missingId, "X"));
    await problem(await call(bench, "/api/v1/orders/not-a-uuid"), 404, "ECOMMERCE.ORDER_NOT_FOUND");
    for (const action of ["pay", "cancel"]) {
      await problem(
        await call(bench, `/api/v1/orders/${id}/${action}`, { method: "POST", user: "bob" }),
        404,
        "ECOMMERCE.ORDER_NOT_FOUND",
      );
    }
    const admin = await call(bench, `/api/v1/orders/${id}`, { user: "ops", roles: ["ADMIN"] });
    assert.equal(admin.status, 200);
    await problem(await call(bench, `/api/v1/orders/${id}`, { user: "" }), 401, "AUTH.UNAUTHENTICATED");
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

  "an order from a cart empties the cart; another user's cart answers 404": async (bench) => {
    const cart = await (await call(bench, "/api/v1/carts", { method: "POST", key: null }, bench.carts)).json();
    const add = await call(bench, `/api/v1/carts/${cart.id}/items`, {
      key: null,
      body: { productId: bench.products.pear, qty: 4 },
    }, bench.carts);
    assert.equal(add.status, 200, await add.clone().text());
    await problem(
      await call(bench, "/api/v1/orders", { user: "bob", body: { cartId: cart.id } }),
      404,
      "ECOMMERCE.CART_NOT_FOUND",
    );
    const order = await created(await call(bench, "/api/v1/orders", { body: { cartId: cart.id } }));
    assert.deepEqual(order.items, [{ productId: bench.products.pear, qty: 4, price: "1.50" }]);
    assert.equal(order.totalAmount, "6.00");
    const after = await (await call(bench, `/api/v1/carts/${cart.id}`, {}, bench.carts)).json();
    assert.deepEqual(after.items, []);
    await problem(await call(bench, "/api/v1/orders", { body: { cartId: cart.id } }), 400, "COMMON.VALIDATION_FAILED");
  },

  "a cart checkout takes off only the lines it ordered; a line added or changed meanwhile stays": async (bench) => {
    const cart = await (await call(bench, "/api/v1/carts", { method: "POST", key: null }, bench.carts)).json();
    const put = async (productId: string, qty: number) => {
      const response = await call(
        bench,
        `/api/v1/carts/${cart.id}/items`,
        { key: null, body: { productId, qty } },
        bench.carts,
      );
      assert.equal(response.status, 200, await response.clone().text());
    };
    await put(bench.products.pear, 4);
    await put(bench.products.apple, 1);
    const held = bench.stock.holdNextReserve();
    const placing = call(bench, "/api/v1/orders", { body: { cartId: cart.id } });
    await held.entered;
    // While the stock is being reserved, the customer adds two more apples in another tab (1 + 2).
    await put(bench.products.apple, 2);
    held.release();
    const order = await created(await placing);
    const items = order.items as { qty: number }[];
    assert.deepEqual(items.map((i) => i.qty).sort(), [1, 4], "ordered as read");
    const after = await (await call(bench, `/api/v1/carts/${cart.id}`, {}, bench.carts)).json();
    assert.deepEqual(
      after.items.map((i: { productId: string; qty: number }) => [i.productId, i.qty]),
      [[bench.products.apple, 3]],
      "the changed line was not ordered, so it stays",
    );
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

  "GET /api/v1/orders?mine lists only the caller's orders, newest first, page by page": async (bench) => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await placeApples(bench, 1));
    await placeApples(bench, 1, "bob");
    const seen: { id: string; createdAt: string }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `&cursor=${cursor}` : "";
      const page = await (await call(bench, `/api/v1/orders?mine&limit=2${query}`)).json();
      seen.push(...page.items);
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    assert.equal(pages, 3);
    assert.deepEqual(seen.map((o) => o.id).sort(), [...ids].sort(), "every order once, none of bob's");
    // Newest first; orders placed in the same millisecond are ordered by id, descending.
    const expected = [...seen].sort((a, b) =>
      a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : (a.createdAt < b.createdAt ? 1 : -1)
    );
    assert.deepEqual(seen, expected);
    await problem(await call(bench, "/api/v1/orders?mine&limit=101"), 400, "COMMON.VALIDATION_FAILED");
    await problem(await call(bench, "/api/v1/orders?mine&cursor=nonsense"), 400, "COMMON.VALIDATION_FAILED");
    await problem(await call(bench, "/api/v1/orders?mine&unknown=1"), 400, "COMMON.VALIDATION_FAILED");
  },

  "a cursor naming a time outside years 1970 to 9999 is a 400 problem, not a database error": async (bench) => {
    const id = await placeApples(bench, 1);
    const cursorOf = (iso: string, orderId = "00000000-0000-0000-0000-000000000000") =>
      btoa(JSON.stringify([iso, orderId])).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
    // PostgreSQL refuses year 0000 and earlier (SQLSTATE 22008); the others name no order either.
    for (const iso of ["0000-01-01T00:00:00Z", "-000001-01-01T00:00:00Z", "+010000-01-01T00:00:00Z", "1969-12-31"]) {
      const body = await problem(
        await call(bench, `/api/v1/orders?mine&cursor=${cursorOf(iso)}`),
        400,
        "COMMON.VALIDATION_FAILED",
      );
      assert.match(String(body.detail), /pass the nextCursor of the previous page unchanged/, iso);
    }
    // The bounds themselves are positions: before every order, and after none.
    const last = await (await call(bench, `/api/v1/orders?mine&cursor=${cursorOf("9999-12-31T23:59:59.999Z")}`))
      .json();
    assert.deepEqual(last.items.map((o: { id: string }) => o.id), [id]);
    const first = await (await call(bench, `/api/v1/orders?mine&cursor=${cursorOf("1970-01-01T00:00:00Z")}`)).json();
    assert.deepEqual(first, { items: [], nextCursor: null });
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
