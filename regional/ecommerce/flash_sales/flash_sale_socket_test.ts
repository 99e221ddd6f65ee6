import assert from "node:assert/strict";
import { Hono } from "hono";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { installProblemHandlers } from "../../../shared/http/problem_response.ts";
import type { Cache, Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { openSse, waitUntil } from "./_sse_client_for_test.ts";
import { recordBroadcast } from "./broadcast_log.ts";
import { type FlashSaleHub, startFlashSaleHub } from "./flash_sale_hub.ts";
import { flashSalesMigrations } from "./migrations.ts";

const CHANNEL = "flash_sales:test";

interface Rig {
  readonly sql: Sql;
  readonly cache: Cache;
  readonly hub: FlashSaleHub;
  readonly url: string;
  /** Records a broadcast in the log and publishes it on the region channel, as the projection does. */
  broadcast(productId: string): Promise<number>;
}

async function withRig(options: { subscribersMax?: number }, run: (rig: Rig) => Promise<void>): Promise<void> {
  const sql = await createPgliteSql();
  await migrate(sql, [...outboxMigrations, ...flashSalesMigrations]);
  const cache = createMemoryCache();
  const hub = await startFlashSaleHub({ sql, cache, channel: CHANNEL, subscribersMax: options.subscribersMax });
  const app = new Hono();
  installProblemHandlers(app);
  app.get(
    "/sse/flash-sales",
    (c) => hub.open({ lastEventId: c.req.header("last-event-id"), signal: c.req.raw.signal }),
  );
  app.get("/ws/flash-sales", (c) => hub.openSocket(c.req.raw, c.req.query("lastEventId")));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  try {
    await run({
      sql,
      cache,
      hub,
      url: `127.0.0.1:${server.addr.port}`,
      async broadcast(productId) {
        const data = {
          saleId: crypto.randomUUID(),
          productId,
          price: "9.90",
          currency: "EUR",
          endsAt: "2030-01-01T00:00:00Z",
        };
        const stored = await recordBroadcast(
          sql,
          { eventId: crypto.randomUUID(), event: "flash_sale.started", data },
          1_000,
        );
        await cache.publish(CHANNEL, JSON.stringify(stored));
        return stored!.seq;
      },
    });
  } finally {
    await hub.close();
    await server.shutdown();
    await cache.close();
    await sql.close();
  }
}

/** A WebSocket that collects every text frame as JSON. */
async function openSocket(url: string): Promise<{ socket: WebSocket; frames: Record<string, unknown>[] }> {
  const socket = new WebSocket(url);
  const frames: Record<string, unknown>[] = [];
  socket.onmessage = (event) => frames.push(JSON.parse(String(event.data)));
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error(`WebSocket ${url} did not open`));
  });
  return { socket, frames };
}

async function closed(socket: WebSocket): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return;
  await new Promise((resolve) => {
    socket.onclose = resolve;
    socket.close();
  });
}

Deno.test("/ws/flash-sales gets the same broadcasts as /sse/flash-sales, with the SSE ids, and resumes after lastEventId", async () => {
  await withRig({}, async (rig) => {
    const sse = await openSse(`http://${rig.url}/sse/flash-sales`);
    const first = await openSocket(`ws://${rig.url}/ws/flash-sales`);
    await waitUntil("the socket is registered", () => rig.hub.sockets() === 1);
    const productId = crypto.randomUUID();
    const seq = await rig.broadcast(productId);
    await waitUntil("both clients got the broadcast", () => sse.events.length === 1 && first.frames.length === 1);
    assert.deepEqual(first.frames[0], { type: "flash_sale.started", id: String(seq), data: sse.events[0].data });
    assert.equal(sse.events[0].id, String(seq));
    assert.equal((first.frames[0].data as { productId: string }).productId, productId);
    await closed(first.socket);

    // Missed while away: a reconnect with the last id seen gets exactly what followed it.
    const missed = await rig.broadcast(crypto.randomUUID());
    const again = await openSocket(`ws://${rig.url}/ws/flash-sales?lastEventId=${seq}`);
    await waitUntil("the reconnected socket caught up", () => again.frames.length === 1);
    assert.equal(again.frames[0].id, String(missed));
    await closed(again.socket);
    await sse.close();
  });
});

Deno.test("/ws/flash-sales answers a client frame with an error and stays open; sockets count against subscribersMax", async () => {
  await withRig({ subscribersMax: 1 }, async (rig) => {
    const client = await openSocket(`ws://${rig.url}/ws/flash-sales`);
    await waitUntil("the socket is registered", () => rig.hub.sockets() === 1);
    client.socket.send("{not json");
    await waitUntil("an error frame", () => client.frames.length === 1);
    assert.equal(client.frames[0].type, "error");
    assert.equal(client.frames[0].code, "COMMON.VALIDATION_FAILED");
    const full = await fetch(`http://${rig.url}/sse/flash-sales`);
    assert.equal(full.status, 429);
    assert.equal(full.headers.get("retry-after"), "5");
    await full.body?.cancel();
    // Still delivering after the bad frame.
    const seq = await rig.broadcast(crypto.randomUUID());
    await waitUntil("the broadcast", () => client.frames.length === 2);
    assert.equal(client.frames[1].id, String(seq));
    await closed(client.socket);
    await waitUntil("the socket is freed", () => rig.hub.sockets() === 0);
  });
});
