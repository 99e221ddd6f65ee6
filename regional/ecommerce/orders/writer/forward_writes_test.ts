import assert from "node:assert/strict";
import { Hono } from "hono";
import {
  FORWARDED_FROM_HEADER,
  forwardOrderWrites,
  isOrderWrite,
  isReplicatedWrite,
  ORDER_WRITER_HEADER,
} from "./forward_writes.ts";
import {
  HOP_SIGNATURE_TOLERANCE_SEC,
  REPLICA_WAIT_HEADER,
  signedHopHeaders,
  verifiedHopOf,
  waitForReplica,
  WRITER_LSN_HEADER,
  type WriterRole,
  type WriterRoleReader,
} from "../../../wiring/writer/mod.ts";

/** BV_INTERNAL_SIGNING_KEY as every e-commerce process of both regions holds it. */
const SIGNING_KEY = `whsec_${btoa("hop-signing-key-for-tests-32byte")}`;
/** A key of nobody's: what a client that guessed the scheme could sign with. */
const OTHER_KEY = `whsec_${btoa("another-key-of-thirty-two-bytes!")}`;

/** A role that tests can flip, as a promotion flips the database row. */
function roleOf(initial: WriterRole | undefined): WriterRoleReader & { set(role: WriterRole | undefined): void } {
  let role = initial;
  return { current: () => Promise.resolve(role), set: (next) => void (role = next) };
}

/** A real HTTP server standing in for the writer region's ingress; records what reached it. */
function writerIngress() {
  const seen: { method: string; path: string; headers: Headers; body: string }[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (request) => {
    seen.push({
      method: request.method,
      path: new URL(request.url).pathname,
      headers: request.headers,
      body: await request.text(),
    });
    return Response.json({ id: "o-1", writtenBy: "east" }, { status: 201 });
  });
  return { seen, url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

function appWith(role: WriterRoleReader, ingressUrl: string | undefined): Hono {
  const app = new Hono();
  app.use(
    "/api/v1/orders/*",
    forwardOrderWrites({ role, ingressUrlOf: () => ingressUrl, timeoutMs: 2_000, signingKey: SIGNING_KEY }),
  );
  app.post("/api/v1/orders", (c) => c.json({ writtenBy: "local" }, 201));
  app.post("/api/v1/orders/:id/pay", (c) => c.json({ writtenBy: "local" }));
  app.get("/api/v1/orders/:id", (c) => c.json({ readBy: "local" }));
  return app;
}

const placeOrder = (headers: Record<string, string> = {}) =>
  new Request("http://west.local/api/v1/orders", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: "Bearer token-1",
      "idempotency-key": "key-1",
      "correlation-id": "corr-1",
      ...headers,
    },
    body: JSON.stringify({ items: [{ productId: "p", qty: 1 }] }),
  });

Deno.test("a replica forwards an order POST to the writer with its token, key, correlation id and body", async () => {
  const writer = writerIngress();
  try {
    const app = appWith(roleOf({ localRegion: "west", writerRegion: "east", epoch: 1 }), writer.url);
    const response = await app.request(placeOrder());
    assert.equal(response.status, 201);
    assert.deepEqual(await response.json(), { id: "o-1", writtenBy: "east" });
    assert.equal(response.headers.get(ORDER_WRITER_HEADER), "east");
    assert.equal(writer.seen.length, 1);
    const [forwarded] = writer.seen;
    assert.equal(forwarded.path, "/api/v1/orders");
    assert.equal(forwarded.headers.get("authorization"), "Bearer token-1");
    assert.equal(forwarded.headers.get("idempotency-key"), "key-1");
    assert.equal(forwarded.headers.get("correlation-id"), "corr-1");
    assert.equal(forwarded.headers.get(FORWARDED_FROM_HEADER), "west");
    assert.deepEqual(
      await verifiedHopOf({ method: "POST", path: "/api/v1/orders", headers: forwarded.headers }, SIGNING_KEY),
      { claimed: true, trusted: true, fromRegion: "west" },
      "the hop claim is signed",
    );
    assert.deepEqual(JSON.parse(forwarded.body), { items: [{ productId: "p", qty: 1 }] });
  } finally {
    await writer.close();
  }
});

Deno.test("the writer, a standalone region and every read are served locally", async () => {
  const writer = writerIngress();
  try {
    const role = roleOf({ localRegion: "east", writerRegion: "east", epoch: 1 });
    const app = appWith(role, writer.url);
    assert.deepEqual(await (await app.request(placeOrder())).json(), { writtenBy: "local" });
    role.set(undefined);
    assert.deepEqual(await (await app.request(placeOrder())).json(), { writtenBy: "local" });
    role.set({ localRegion: "west", writerRegion: "east", epoch: 1 });
    assert.deepEqual(await (await app.request("http://west.local/api/v1/orders/o-1")).json(), { readBy: "local" });
    assert.equal(writer.seen.length, 0);
  } finally {
    await writer.close();
  }
});

Deno.test("a replica forwards a write whose path is percent-encoded, as Hono routes it, never writing locally", async () => {
  const writer = writerIngress();
  try {
    const app = appWith(roleOf({ localRegion: "west", writerRegion: "east", epoch: 1 }), writer.url);
    // Hono decodes these to /api/v1/orders and /api/v1/orders/o-1/pay: the local write routes would run them.
    const spellings = ["/api/v1/%6Frders", "/api/v1/orders/o-1/%70ay", "/api/v1/%6frders/o-1/pay"];
    for (const path of spellings) {
      const response = await app.request(new Request(`http://west.local${path}`, placeOrder()));
      assert.equal(response.status, 201, path);
      assert.deepEqual(await response.json(), { id: "o-1", writtenBy: "east" }, path);
      assert.equal(response.headers.get(ORDER_WRITER_HEADER), "east");
    }
    // Forwarded as sent: the writer's router decodes it the same way.
    assert.deepEqual(writer.seen.map((s) => s.path), spellings);
  } finally {
    await writer.close();
  }
});

Deno.test("a write already forwarded once (signed) is refused with 421 ORDER_WRITER_ELSEWHERE, never forwarded again", async () => {
  const writer = writerIngress();
  try {
    const app = appWith(roleOf({ localRegion: "west", writerRegion: "east", epoch: 2 }), writer.url);
    const hop = await signedHopHeaders({ method: "POST", path: "/api/v1/orders", fromRegion: "east" }, SIGNING_KEY);
    const response = await app.request(placeOrder(hop));
    assert.equal(response.status, 421);
    const problem = await response.json();
    assert.equal(problem.code, "ECOMMERCE.ORDER_WRITER_ELSEWHERE");
    assert.match(problem.detail, /region "east"/);
    assert.equal(response.headers.get(ORDER_WRITER_HEADER), "east");
    assert.equal(writer.seen.length, 0);
  } finally {
    await writer.close();
  }
});

Deno.test("an unreachable writer is a 503 from this region, not marked as this region being unreachable", async () => {
  const writer = writerIngress();
  await writer.close();
  const app = appWith(roleOf({ localRegion: "west", writerRegion: "east", epoch: 1 }), writer.url);
  const response = await app.request(placeOrder());
  assert.equal(response.status, 503);
  assert.equal((await response.json()).code, "COMMON.UPSTREAM_UNAVAILABLE");
  assert.equal(response.headers.get("x-bv-proxy-error"), null);
  assert.equal(response.headers.get(ORDER_WRITER_HEADER), "east");
});

Deno.test("isOrderWrite() matches the four order write routes only", () => {
  assert.ok(isOrderWrite("POST", "/api/v1/orders"));
  for (const action of ["pay", "cancel", "fulfill"]) assert.ok(isOrderWrite("POST", `/api/v1/orders/o-1/${action}`));
  assert.ok(!isOrderWrite("GET", "/api/v1/orders"));
  assert.ok(!isOrderWrite("POST", "/api/v1/orders/o-1/refund"));
  assert.ok(!isOrderWrite("POST", "/api/v1/ordersx"));
});

Deno.test("isReplicatedWrite() matches catalog, inventory, cart and webhook writes, never their reads", () => {
  const writes = [
    ["POST", "/api/v1/products"],
    ["PUT", "/api/v1/products/p-1"],
    ["PATCH", "/api/v1/products/p-1"],
    ["POST", "/api/v1/inventory/p-1/adjustments"],
    ["POST", "/api/v1/carts"],
    ["POST", "/api/v1/carts/c-1/items"],
    ["PUT", "/api/v1/carts/c-1/items/p-1"],
    ["DELETE", "/api/v1/carts/c-1/items/p-1"],
    ["DELETE", "/api/v1/carts/c-1"],
    ["POST", "/api/v1/orders/o-1/pay"],
    ["POST", "/api/v1/webhooks/subscriptions"],
    ["DELETE", "/api/v1/webhooks/subscriptions/s-1"],
    ["POST", "/api/v1/webhooks/subscriptions/s-1/rotate-secret"],
  ];
  for (const [method, path] of writes) assert.ok(isReplicatedWrite(method, path), `${method} ${path}`);
  const reads = [
    ["GET", "/api/v1/products"],
    ["GET", "/api/v1/products/p-1"],
    ["GET", "/api/v1/products/p-1/price-history"],
    ["GET", "/api/v1/inventory/p-1"],
    ["GET", "/api/v1/carts/c-1"],
    ["DELETE", "/api/v1/products/p-1"],
    ["POST", "/api/v1/flash-sales"],
    ["GET", "/api/v1/webhooks/subscriptions"],
    ["GET", "/api/v1/webhooks/subscriptions/s-1"],
  ];
  for (const [method, path] of reads) assert.ok(!isReplicatedWrite(method, path), `${method} ${path}`);
});

Deno.test("a replica forwards a cart item PUT with its method, path and body; the cart GET stays local", async () => {
  const writer = writerIngress();
  try {
    const app = new Hono();
    const role = roleOf({ localRegion: "west", writerRegion: "east", epoch: 1 });
    app.use(
      "/api/v1/*",
      forwardOrderWrites({ role, ingressUrlOf: () => writer.url, timeoutMs: 2_000, signingKey: SIGNING_KEY }),
    );
    app.put("/api/v1/carts/:id/items/:productId", (c) => c.json({ writtenBy: "local" }));
    app.get("/api/v1/carts/:id", (c) => c.json({ readBy: "local" }));
    const put = await app.request("http://west.local/api/v1/carts/c-1/items/p-1", {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: "Bearer token-1" },
      body: JSON.stringify({ qty: 3 }),
    });
    assert.equal(put.status, 201);
    assert.equal(put.headers.get(ORDER_WRITER_HEADER), "east");
    assert.deepEqual(await (await app.request("http://west.local/api/v1/carts/c-1")).json(), { readBy: "local" });
    assert.equal(writer.seen.length, 1);
    assert.deepEqual(
      [writer.seen[0].method, writer.seen[0].path, JSON.parse(writer.seen[0].body)],
      ["PUT", "/api/v1/carts/c-1/items/p-1", { qty: 3 }],
    );
  } finally {
    await writer.close();
  }
});

/** An in-memory replica position: it "applies" the writer's LSN after `lagPolls` polls. */
function lagging(lagPolls: number) {
  let polls = 0;
  const asked: string[] = [];
  return {
    asked,
    polls: () => polls,
    positions: {
      writerLsn: () => Promise.resolve("0/16B3748"),
      replicaHasApplied: (lsn: string) => {
        asked.push(lsn);
        return Promise.resolve(++polls > lagPolls);
      },
    },
  };
}

Deno.test("read-your-writes: the writer stamps forwarded writes with its LSN; the replica holds the answer until applied", async () => {
  const writerPositions = lagging(0);
  const writerApp = new Hono();
  writerApp.use(
    "/api/v1/*",
    forwardOrderWrites({
      role: roleOf({ localRegion: "east", writerRegion: "east", epoch: 1 }),
      ingressUrlOf: () => undefined,
      timeoutMs: 2_000,
      signingKey: SIGNING_KEY,
      positions: writerPositions.positions,
    }),
  );
  writerApp.post("/api/v1/carts", (c) => c.json({ id: "c-1" }, 201));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, writerApp.fetch);
  try {
    // A client's own request to the writer is not stamped (nobody waits for it).
    const direct = await writerApp.request("http://east.local/api/v1/carts", { method: "POST" });
    assert.equal(direct.headers.get(WRITER_LSN_HEADER), null);

    const replica = lagging(3);
    const replicaApp = new Hono();
    replicaApp.use(
      "/api/v1/*",
      forwardOrderWrites({
        role: roleOf({ localRegion: "west", writerRegion: "east", epoch: 1 }),
        ingressUrlOf: () => `http://127.0.0.1:${server.addr.port}`,
        timeoutMs: 2_000,
        signingKey: SIGNING_KEY,
        positions: replica.positions,
      }),
    );
    const response = await replicaApp.request("http://west.local/api/v1/carts", { method: "POST" });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get(WRITER_LSN_HEADER), "0/16B3748");
    assert.deepEqual(replica.asked, ["0/16B3748", "0/16B3748", "0/16B3748", "0/16B3748"]);
    assert.match(response.headers.get(REPLICA_WAIT_HEADER) ?? "(missing)", /^\d+\.\d$/, "the replica's wait is stated");
  } finally {
    await server.shutdown();
  }
});

Deno.test("read-your-writes: a replica that never catches up releases the answer after the bound", async () => {
  const never = lagging(Number.POSITIVE_INFINITY);
  const started = performance.now();
  const waited = await waitForReplica(never.positions, "0/1", 60);
  assert.equal(waited.caughtUp, false);
  assert.ok(performance.now() - started >= 60 && performance.now() - started < 1_000);
  assert.deepEqual(await waitForReplica(never.positions, "not-an-lsn", 60), { waitedMs: 0, caughtUp: false });
});

/** Hop claims a client can send to an ingress itself: none of them is signed with the regions' key. */
async function forgedClaims(from: string, path: string): Promise<[string, Record<string, string>][]> {
  const claim = { method: "POST", path, fromRegion: from };
  return [
    ["unsigned", { [FORWARDED_FROM_HEADER]: from }],
    ["signed with another key", await signedHopHeaders(claim, OTHER_KEY)],
    [
      "signed too long ago",
      await signedHopHeaders(claim, SIGNING_KEY, {
        timestampSec: Math.floor(Date.now() / 1000) - HOP_SIGNATURE_TOLERANCE_SEC - 60,
      }),
    ],
    ["signed for another route", await signedHopHeaders({ ...claim, path: "/api/v1/orders" }, SIGNING_KEY)],
  ];
}

/** The `msg` of every warn line logged while `run` runs (the logger writes warnings to stderr). */
async function warningsWhile(run: () => Promise<void>): Promise<string[]> {
  const original = console.error;
  const lines: string[] = [];
  console.error = (line: unknown) => void lines.push(String(line));
  try {
    await run();
  } finally {
    console.error = original;
  }
  return lines.flatMap((line) => {
    try {
      const parsed = JSON.parse(line);
      return parsed.level === "warn" ? [String(parsed.msg)] : [];
    } catch {
      return [];
    }
  });
}

Deno.test("the writer answers no WAL position to a forwarded-from claim without a valid signature, and logs it once", async () => {
  let lsnQueries = 0;
  const writerApp = new Hono();
  writerApp.use(
    "/api/v1/*",
    forwardOrderWrites({
      role: roleOf({ localRegion: "east", writerRegion: "east", epoch: 1 }),
      ingressUrlOf: () => undefined,
      timeoutMs: 2_000,
      signingKey: SIGNING_KEY,
      positions: {
        writerLsn: () => Promise.resolve(`0/${++lsnQueries}`),
        replicaHasApplied: () => Promise.resolve(true),
      },
    }),
  );
  writerApp.post("/api/v1/carts", (c) => c.json({ id: "c-1" }, 201));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, writerApp.fetch);
  const url = `http://127.0.0.1:${server.addr.port}/api/v1/carts`;
  try {
    for (const [name, headers] of await forgedClaims("west", "/api/v1/carts")) {
      let response: Response | undefined;
      const warnings = await warningsWhile(async () => {
        response = await fetch(url, { method: "POST", headers });
        await response.body?.cancel();
      });
      assert.equal(response?.status, 201, `${name}: served as a client's write`);
      assert.equal(response?.headers.get(WRITER_LSN_HEADER), null, `${name}: no WAL position`);
      assert.equal(lsnQueries, 0, `${name}: no LSN query`);
      assert.deepEqual(warnings, ["a forwarded-write claim without a valid signature is not trusted"], name);
    }
    // The same write signed by a region is answered with the position to wait for.
    const hop = await signedHopHeaders({ method: "POST", path: "/api/v1/carts", fromRegion: "west" }, SIGNING_KEY);
    const signed = await fetch(url, { method: "POST", headers: hop });
    await signed.body?.cancel();
    assert.equal(signed.headers.get(WRITER_LSN_HEADER), "0/1");
  } finally {
    await server.shutdown();
  }
});

Deno.test("a replica refuses a write whose forwarded-from claim has no valid signature, as it refuses a second hop", async () => {
  const writer = writerIngress();
  try {
    const app = appWith(roleOf({ localRegion: "west", writerRegion: "east", epoch: 1 }), writer.url);
    for (const [name, headers] of await forgedClaims("east", "/api/v1/orders/o-1/pay")) {
      let response: Response | undefined;
      const warnings = await warningsWhile(async () => {
        response = await app.request(new Request("http://west.local/api/v1/orders/o-1/pay", placeOrder(headers)));
      });
      // Forwarding it again would drop the loop guard when the regions' keys differ during a promotion.
      assert.equal(response?.status, 421, `${name}: refused, not forwarded`);
      assert.equal((await response?.json()).code, "ECOMMERCE.ORDER_WRITER_ELSEWHERE", name);
      assert.equal(response?.headers.get(ORDER_WRITER_HEADER), "east", name);
      assert.deepEqual(warnings, ["a forwarded-write claim without a valid signature is not trusted"], name);
    }
    assert.equal(writer.seen.length, 0);
    // Without any claim the same write is forwarded, with this region's own signed claim.
    const response = await app.request(new Request("http://west.local/api/v1/orders/o-1/pay", placeOrder({})));
    assert.equal(response.status, 201);
    const forwarded = writer.seen.at(-1)!;
    assert.deepEqual(
      await verifiedHopOf({ method: "POST", path: "/api/v1/orders/o-1/pay", headers: forwarded.headers }, SIGNING_KEY),
      { claimed: true, trusted: true, fromRegion: "west" },
    );
  } finally {
    await writer.close();
  }
});
