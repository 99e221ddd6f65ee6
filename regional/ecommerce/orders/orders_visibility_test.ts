/**
 * Who sees which order: another user's order is a 404 like a missing one, and `GET /api/v1/orders?mine` pages
 * through the caller's own orders with a cursor it validates: on PGlite and on PostgreSQL.
 */
import assert from "node:assert/strict";
import { type Bench, call, placeApples, problem, runOrderScenarios } from "./_orders_fixture.ts";

const scenarios: Record<string, (bench: Bench) => Promise<void>> = {
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
};

runOrderScenarios("order visibility", scenarios);
