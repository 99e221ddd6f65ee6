/**
 * @module
 * Worker side of the product GET baselines: raw `Deno.serve` answering `GET /products/{id}` with raw ioredis
 * (`GET <prefix>product:{id}`); on a miss it reads the row with raw postgres.js, builds the same JSON the
 * catalog answers and sets it back (300 s, like the catalog). It runs off the main thread so the load
 * generator and the server use separate cores, like the subject's separate processes. The first message
 * is `{ redisUrl, keyPrefix, pgUrl }`; it answers `{ port }` once listening; "stop" closes everything and
 * answers "stopped".
 */
import { Redis } from "ioredis";
import postgres from "postgres";

interface Setup {
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly pgUrl: string;
}

interface ProductRow {
  id: string;
  sku: string;
  name: string;
  description: string;
  category: string;
  price: string;
  currency: string;
  created_at: Date;
  updated_at: Date;
}

const CACHE_TTL_MS = 300_000;

const scope = self as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
};

let running: { stop(): Promise<void> } | undefined;

scope.onmessage = async (event) => {
  if (event.data === "stop") {
    await running?.stop();
    scope.postMessage("stopped");
    scope.close();
    return;
  }
  const setup = event.data as Setup;
  const redis = new Redis(setup.redisUrl, { keyPrefix: setup.keyPrefix, connectTimeout: 5_000 });
  const sql = postgres(setup.pgUrl, { max: 10, connect_timeout: 5, idle_timeout: 30, onnotice: () => {} });
  const abort = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: abort.signal, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      if (!path.startsWith("/products/")) return new Response("Not found", { status: 404 });
      const id = path.slice("/products/".length);
      const key = `product:${id}`;
      const cached = await redis.get(key);
      if (cached !== null) return new Response(cached, { headers: { "content-type": "application/json" } });
      const rows = await sql<ProductRow[]>`
      select id::text as id, sku, name, description, category, price::text as price, currency, created_at, updated_at
      from products where id = ${id}::uuid`;
      if (rows.length === 0) return Response.json({ title: "Not found" }, { status: 404 });
      const r = rows[0];
      const json = JSON.stringify({
        id: r.id,
        sku: r.sku,
        name: r.name,
        description: r.description,
        category: r.category,
        price: r.price,
        currency: r.currency,
        createdAt: r.created_at.toISOString(),
        updatedAt: r.updated_at.toISOString(),
      });
      await redis.set(key, json, "PX", CACHE_TTL_MS);
      return new Response(json, { headers: { "content-type": "application/json" } });
    },
  );
  running = {
    async stop() {
      abort.abort();
      await server.finished;
      redis.disconnect();
      await sql.end({ timeout: 5 });
    },
  };
  scope.postMessage({ port: server.addr.port });
};
