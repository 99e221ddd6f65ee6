/**
 * Idempotency-Keys on the order routes (idempotency.ts, place_order.ts): required, replayed, refused when
 * reused or in flight, scoped per user, freed after a 5xx and recovered after a crash: on PGlite and on PostgreSQL.
 */
import assert from "node:assert/strict";
import { type Bench, call, created, eventsOf, placeApples, problem, runOrderScenarios } from "./_orders_fixture.ts";

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
};

runOrderScenarios("order idempotency keys", scenarios);
