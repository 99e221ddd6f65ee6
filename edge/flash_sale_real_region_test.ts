/**
 * The edge's fan-out against the region's real flash-sale hub (`regional/ecommerce/flash_sales`, its own
 * broadcast log on PGlite and its pub/sub on the memory cache): the id format, event names, heartbeats and
 * `Last-Event-ID` resume the edge relies on are the region's, not a fake's.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { createMemoryCache } from "../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../shared/adapters/pglite/mod.ts";
import { migrate } from "../shared/ports/sql_migrate.ts";
import { catalogMigrations } from "../regional/ecommerce/catalog/mod.ts";
import { flashSalesMigrations } from "../regional/ecommerce/flash_sales/mod.ts";
import { recordBroadcast } from "../regional/ecommerce/flash_sales/broadcast_log.ts";
import { startFlashSaleHub } from "../regional/ecommerce/flash_sales/flash_sale_hub.ts";
import { outboxMigrations } from "../regional/ecommerce/outbox/mod.ts";
import { eventually } from "./testing/fake_region.ts";
import { createEdge } from "./worker.ts";

/** The region's hub behind a minimal ingress (`/readyz` and `/sse/flash-sales`) on a fixed port. */
async function startRegionHub(sql: Awaited<ReturnType<typeof createPgliteSql>>, port: number) {
  const cache = createMemoryCache();
  const hub = await startFlashSaleHub({ sql, cache, channel: "flash_sales:east", catchUpIntervalMs: 50 });
  const app = new Hono();
  app.get("/readyz", (c) => c.json({ ready: true }));
  app.get(
    "/sse/flash-sales",
    (c) => hub.open({ lastEventId: c.req.header("last-event-id"), signal: c.req.raw.signal }),
  );
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, app.fetch);
  return {
    hub,
    port: server.addr.port,
    close: async () => {
      await hub.close();
      await server.shutdown();
      await cache.close();
    },
  };
}

Deno.test("edge relays the region's real flash-sale stream and resumes it after the region restarts", async () => {
  const sql = await createPgliteSql();
  await migrate(sql, [...outboxMigrations, ...catalogMigrations, ...flashSalesMigrations]);
  let region = await startRegionHub(sql, 0);
  const port = region.port;
  const edge = createEdge({
    regions: [{ name: "east", url: `http://127.0.0.1:${port}` }],
    flashSales: { upstream: { backoffInitialMs: 20, backoffMaxMs: 100 } },
  });
  await edge.start();
  const response = await edge.app.request("/sse/flash-sales");
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  /** Reads until the whole frame with `id` is in, and returns its event name and parsed data. */
  const frame = async (id: string) => {
    const start = () => text.indexOf(`id: ${id}\n`);
    while (start() < 0 || text.indexOf("\n\n", start()) < 0) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended before ${id}`);
      text += value;
    }
    const lines = text.slice(start(), text.indexOf("\n\n", start())).split("\n");
    return { event: lines[1].slice("event: ".length), data: JSON.parse(lines[2].slice("data: ".length)) };
  };
  try {
    await eventually("the upstream subscription", () => region.hub.subscribers() === 1);
    const data = { saleId: crypto.randomUUID(), productId: "p-1", price: "9.99", currency: "EUR", endsAt: "x" };
    await recordBroadcast(sql, { eventId: crypto.randomUUID(), event: "flash_sale.started", data }, 1_000);
    assert.deepEqual(await frame("east:1"), { event: "flash_sale.started", data });
    // The region restarts; a broadcast it logs while the edge is away comes through the resume.
    await region.close();
    await recordBroadcast(sql, { eventId: crypto.randomUUID(), event: "flash_sale.ended", data: { n: 2 } }, 1_000);
    region = await startRegionHub(sql, port);
    assert.deepEqual(await frame("east:2"), { event: "flash_sale.ended", data: { n: 2 } });
    assert.equal(text.split("id: east:1\n").length, 2, "the resume did not replay what the edge already had");
  } finally {
    await reader.cancel();
    await edge.stop();
    await region.close();
    await sql.close();
  }
});
