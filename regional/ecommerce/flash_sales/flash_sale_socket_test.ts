import assert from "node:assert/strict";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Cache, Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { openSse, waitUntil } from "./_sse_client_for_test.ts";
import { recordBroadcast } from "./broadcast_log.ts";
import { FLASH_SALE_CLOSE_CODES, type FlashSaleHub, startFlashSaleHub } from "./flash_sale_hub.ts";
import { flashSalesMigrations } from "./migrations.ts";
import { createFlashSaleRoutes } from "./routes.ts";

const CHANNEL = "flash_sales:test";

interface Rig {
  readonly sql: Sql;
  readonly cache: Cache;
  readonly hub: FlashSaleHub;
  readonly url: string;
  /**
   * Upgrades on `/test/held-ws` have passed the hub (`openSocket`) but wait for `release()` before their
   * 101 goes out: the window between an upgrade and its socket opening, held open on purpose.
   */
  readonly held: { upgrades(): number; release(): void };
  /** Records a broadcast in the log and publishes it on the region channel, as the projection does. */
  broadcast(productId: string): Promise<number>;
}

async function withRig(options: { subscribersMax?: number }, run: (rig: Rig) => Promise<void>): Promise<void> {
  const sql = await createPgliteSql();
  await migrate(sql, [...outboxMigrations, ...flashSalesMigrations]);
  const cache = createMemoryCache();
  const hub = await startFlashSaleHub({ sql, cache, channel: CHANNEL, subscribersMax: options.subscribersMax });
  const app = createFlashSaleRoutes({
    sql,
    cache,
    verifier: (await createTestTokens()).verifier,
    hub,
    nudgeOutbox: () => {},
    onSaleStarted: () => {},
    now: Date.now,
  });
  let heldUpgrades = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  app.get("/test/held-ws", async (c) => {
    const response = hub.openSocket(c.req.raw, undefined);
    heldUpgrades++;
    await released;
    return response;
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  try {
    await run({
      sql,
      cache,
      hub,
      url: `127.0.0.1:${server.addr.port}`,
      held: { upgrades: () => heldUpgrades, release },
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
    release();
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

Deno.test("/ws/flash-sales answers a malformed handshake with 400 problem+json, not 500", async () => {
  await withRig({}, async (rig) => {
    const cases: [string, Record<string, string>][] = [
      ["no Connection: Upgrade", { upgrade: "websocket", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" }],
      ["no Sec-WebSocket-Key", { upgrade: "websocket", connection: "Upgrade" }],
    ];
    for (const [what, headers] of cases) {
      const response = await fetch(`http://${rig.url}/ws/flash-sales`, { headers });
      assert.equal(response.status, 400, what);
      assert.match(response.headers.get("content-type") ?? "", /^application\/problem\+json/, what);
      const problem = await response.json();
      assert.equal(problem.code, "COMMON.VALIDATION_FAILED", what);
      assert.match(problem.detail, /handshake/i, what);
    }
    assert.equal(rig.hub.sockets(), 0);
    // Nothing was held back for the refused handshakes: the one place left still opens.
    const client = await openSocket(`ws://${rig.url}/ws/flash-sales`);
    await waitUntil("the socket is registered", () => rig.hub.sockets() === 1);
    await closed(client.socket);
  });
});

Deno.test("/ws/flash-sales counts upgrades still opening against subscribersMax, so a burst cannot overshoot it", async () => {
  await withRig({ subscribersMax: 2 }, async (rig) => {
    let refused = 0;
    const outcomes: Promise<WebSocket | "refused">[] = [];
    for (let i = 0; i < 5; i++) {
      const socket = new WebSocket(`ws://${rig.url}/test/held-ws`);
      outcomes.push(
        new Promise((resolve) => {
          socket.onopen = () => resolve(socket);
          socket.onerror = () => {
            refused++;
            resolve("refused");
          };
        }),
      );
    }
    // Every upgrade is decided (held between the hub's check and its socket opening, or refused) while
    // none has opened yet.
    await waitUntil("all five upgrades are decided", () => rig.held.upgrades() + refused === 5);
    assert.equal(rig.held.upgrades(), 2, "only subscribersMax upgrades get past the limit while none is open");
    rig.held.release();
    const settled = await Promise.all(outcomes);
    const opened = settled.filter((s): s is WebSocket => s !== "refused");
    assert.equal(opened.length, 2);
    await waitUntil("the opened sockets are registered", () => rig.hub.sockets() === 2);
    // Opening gave the pending places back: after both leave, two new sockets fit again.
    for (const socket of opened) await closed(socket);
    await waitUntil("the sockets are freed", () => rig.hub.sockets() === 0);
    const again = [
      await openSocket(`ws://${rig.url}/ws/flash-sales`),
      await openSocket(`ws://${rig.url}/ws/flash-sales`),
    ];
    await waitUntil("both fit again", () => rig.hub.sockets() === 2);
    for (const { socket } of again) await closed(socket);
  });
});

Deno.test("/ws/flash-sales closes a client that sends frames but never reads the replies once 1 MiB is unsent (4429)", async () => {
  await withRig({}, async (rig) => {
    const [hostname, port] = rig.url.split(":");
    const conn = await Deno.connect({ hostname, port: Number(port) });
    try {
      await handshake(conn);
      await waitUntil("the socket is registered", () => rig.hub.sockets() === 1);
      // Each one-byte frame earns a ~110-byte error reply; the kernel's socket buffers take a few MiB of
      // them before the server's own buffer grows. 400,000 frames (~44 MB of replies) is far past both.
      const batch = maskedTextFrames(10_000);
      for (let sent = 0; sent < 400_000 && rig.hub.sockets() === 1; sent += 10_000) await writeAll(conn, batch);
      await waitUntil("the non-reading socket is dropped", () => rig.hub.sockets() === 0);
      // The server let the connection go. Its close frame (4429) is read when it arrives intact; closing
      // with our frames still unread makes the kernel reset the connection instead, which drops it unseen.
      const end = await connectionEndOf(conn);
      assert.ok(end === FLASH_SALE_CLOSE_CODES.TOO_SLOW || end === "reset", `ended with ${end}`);
    } finally {
      conn.close();
    }
  });
});

/** Opens a WebSocket by hand on a raw connection, so the test decides when (and whether) it reads. */
async function handshake(conn: Deno.Conn): Promise<void> {
  await writeAll(
    conn,
    new TextEncoder().encode(
      "GET /ws/flash-sales HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ),
  );
  let head = "";
  const buffer = new Uint8Array(1);
  // Byte by byte up to the blank line, so no frame bytes are swallowed with the response head.
  while (!head.endsWith("\r\n\r\n")) {
    if ((await conn.read(buffer)) === null) throw new Error(`Connection closed during the handshake: ${head}`);
    head += String.fromCharCode(buffer[0]);
  }
  assert.match(head, /^HTTP\/1\.1 101 /);
}

/** `count` masked client text frames of one byte each (a client must mask, RFC 6455 section 5.3). */
function maskedTextFrames(count: number): Uint8Array {
  const frame = [0x81, 0x80 | 1, 1, 2, 3, 4, "x".charCodeAt(0) ^ 1];
  const bytes = new Uint8Array(frame.length * count);
  for (let i = 0; i < count; i++) bytes.set(frame, i * frame.length);
  return bytes;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) written += await conn.write(bytes.subarray(written));
}

/** Reads server frames until the close frame and returns its status code, or how the connection ended. */
async function connectionEndOf(conn: Deno.Conn): Promise<number | "eof" | "reset"> {
  let pending = new Uint8Array(0);
  const chunk = new Uint8Array(64 * 1024);
  for (;;) {
    // Server frames are unmasked: 2 header bytes, then a 16- or 64-bit length when the 7-bit one says so.
    while (pending.length >= 2) {
      const opcode = pending[0] & 0x0f;
      let length = pending[1] & 0x7f;
      let offset = 2;
      if (length === 126) [length, offset] = [(pending[2] << 8) | pending[3], 4];
      else if (length === 127) [length, offset] = [Number(new DataView(pending.buffer).getBigUint64(2)), 10];
      if (pending.length < offset + length) break;
      if (opcode === 0x8) return (pending[offset] << 8) | pending[offset + 1];
      pending = pending.slice(offset + length);
    }
    const read = await conn.read(chunk).catch((error) => {
      if (error instanceof Deno.errors.ConnectionReset) return "reset" as const;
      throw error;
    });
    if (read === "reset" || read === null) return read ?? "eof";
    const joined = new Uint8Array(pending.length + read);
    joined.set(pending);
    joined.set(chunk.subarray(0, read), pending.length);
    pending = joined;
  }
}
