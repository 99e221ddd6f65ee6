import assert from "node:assert/strict";
import fc from "fast-check";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { type Bench, createBench } from "./_orders_fixture.ts";

/** Asserts a 4xx problem+json and returns the status; a 5xx or any other body fails with the request shown. */
async function assertClientError(response: Response, what: string): Promise<number> {
  const text = await response.text();
  assert.ok(response.status >= 400 && response.status < 500, `${what} → ${response.status} ${text.slice(0, 300)}`);
  assert.equal(response.headers.get("content-type"), "application/problem+json", what);
  const body = JSON.parse(text);
  assert.equal(body.status, response.status);
  assert.match(body.code, /^[A-Z]+\.[A-Z_]+$/);
  return response.status;
}

function sender(bench: Bench, token: string) {
  return (path: string, body: string, contentType = "application/json") =>
    bench.app.request(path, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": contentType,
        "idempotency-key": crypto.randomUUID(),
      },
      body,
    });
}

const uuid = fc.uuid();
const outOfRangeQty = fc.oneof(
  fc.integer({ min: -1_000_000_000, max: 0 }),
  fc.integer({ min: 1_001, max: Number.MAX_SAFE_INTEGER }),
  fc.double({ noNaN: false }).filter((n) => !Number.isInteger(n)),
  fc.constantFrom(1e308, -0.5, 1.5, Number.MAX_VALUE),
);
const notANumber = fc.oneof(fc.string(), fc.boolean(), fc.constant(null), fc.array(fc.nat()), fc.object());

Deno.test({
  name: "[pglite] malformed order requests always answer 4xx problem+json, never 5xx",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sql = await createPgliteSql();
    try {
      const bench = await createBench(sql);
      const token = await bench.tokens.token("fuzzer");
      const post = sender(bench, token);
      const runs = { numRuns: 150 };

      await t.step("any JSON value as the body", async () => {
        await fc.assert(
          fc.asyncProperty(fc.jsonValue(), async (value) => {
            const text = JSON.stringify(value);
            await assertClientError(await post("/api/v1/orders", text), text);
          }),
          runs,
        );
      });

      await t.step("any text as the body (mostly malformed JSON)", async () => {
        await fc.assert(
          fc.asyncProperty(fc.string({ unit: "binary", maxLength: 200 }), async (text) => {
            await assertClientError(await post("/api/v1/orders", text), JSON.stringify(text));
          }),
          runs,
        );
      });

      await t.step("negative, fractional and huge quantities", async () => {
        await fc.assert(
          fc.asyncProperty(uuid, outOfRangeQty, async (productId, qty) => {
            const text = JSON.stringify({ items: [{ productId, qty }] });
            const status = await assertClientError(await post("/api/v1/orders", text), text);
            assert.equal(status, 400);
          }),
          runs,
        );
      });

      await t.step("wrong types for every field", async () => {
        await fc.assert(
          fc.asyncProperty(notANumber, fc.oneof(notANumber, fc.integer()), async (qty, productId) => {
            const text = JSON.stringify({ items: [{ productId, qty }] });
            await assertClientError(await post("/api/v1/orders", text), text);
          }),
          runs,
        );
      });

      await t.step("unknown fields next to a valid order", async () => {
        const known = new Set(["items", "cartId"]);
        await fc.assert(
          fc.asyncProperty(
            fc.string({ minLength: 1, maxLength: 20 }).filter((k) => !known.has(k) && k !== "__proto__"),
            fc.jsonValue(),
            async (field, value) => {
              const body = { items: [{ productId: bench.products.pear, qty: 1 }], [field]: value };
              const text = JSON.stringify(body);
              assert.equal(await assertClientError(await post("/api/v1/orders", text), text), 400);
            },
          ),
          runs,
        );
      });

      await t.step("too many items, duplicates, and both items and cartId", async () => {
        const line = (productId: string) => ({ productId, qty: 1 });
        const cases = [
          { items: Array.from({ length: 51 }, () => line(crypto.randomUUID())) },
          { items: [] },
          { items: [line(bench.products.pear), line(bench.products.pear.toUpperCase())] },
          { items: [line(bench.products.pear)], cartId: crypto.randomUUID() },
          { cartId: "not-a-uuid" },
        ];
        for (const body of cases) {
          const text = JSON.stringify(body);
          assert.equal(await assertClientError(await post("/api/v1/orders", text), text.slice(0, 80)), 400);
        }
      });

      await t.step("bodies over 1 MiB answer 413 on every order POST", async () => {
        const huge = JSON.stringify({ items: [{ productId: bench.products.pear, qty: 1 }], pad: "x".repeat(1 << 20) });
        const id = crypto.randomUUID();
        for (const path of ["/api/v1/orders", `/api/v1/orders/${id}/pay`, `/api/v1/orders/${id}/cancel`]) {
          assert.equal(await assertClientError(await post(path, huge), path), 413);
        }
      });

      await t.step("a wrong content type answers 415", async () => {
        const text = JSON.stringify({ items: [{ productId: bench.products.pear, qty: 1 }] });
        assert.equal(await assertClientError(await post("/api/v1/orders", text, "text/plain"), "text/plain"), 415);
      });

      await t.step("any body on pay and cancel of any id", async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.oneof(uuid, fc.string({ minLength: 1, maxLength: 40 }).map(encodeURIComponent)),
            fc.constantFrom("pay", "cancel"),
            fc.oneof(fc.jsonValue().map((v) => JSON.stringify(v)), fc.string({ maxLength: 50 })),
            async (id, action, text) => {
              await assertClientError(await post(`/api/v1/orders/${id}/${action}`, text), `${action} ${id} ${text}`);
            },
          ),
          runs,
        );
      });

      await t.step("any query string on the order list answers 200 or 400", async () => {
        await fc.assert(
          fc.asyncProperty(fc.string({ maxLength: 60 }), fc.string({ maxLength: 60 }), async (limit, cursor) => {
            const query = `mine&limit=${encodeURIComponent(limit)}&cursor=${encodeURIComponent(cursor)}`;
            const response = await bench.app.request(`/api/v1/orders?${query}`, {
              headers: { authorization: `Bearer ${token}` },
            });
            if (response.status === 200) return void await response.body?.cancel();
            assert.equal(await assertClientError(response, query), 400);
          }),
          runs,
        );
      });
    } finally {
      await sql.close();
    }
  },
});
