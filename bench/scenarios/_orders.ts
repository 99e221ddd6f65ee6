/**
 * @module
 * The order request every order scenario sends (`order_create`, `order_to_kafka`, `order_to_websocket`):
 * one item of one unit, the bench customer's JWT and a fresh Idempotency-Key, so each call is a new order.
 * Callers read the answer themselves: what they time around it differs.
 */
import type { EcommercePlatform } from "./_ecommerce_platform.ts";
import postgres from "postgres";
import { measureAtRate } from "../open_loop.ts";

/** Longest one order request may take before it counts as failed. */
const ORDER_REQUEST_TIMEOUT_MS = 10_000;

/** `POST /api/v1/orders` for one unit of `productId` on east's e-commerce deployable. */
export function postOrder(platform: EcommercePlatform, productId: string): Promise<Response> {
  return fetch(`${platform.ecommerceUrl}/api/v1/orders`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${platform.customerToken}`,
      "content-type": "application/json",
      "idempotency-key": crypto.randomUUID(),
    },
    body: JSON.stringify({ items: [{ productId, qty: 1 }] }),
    signal: AbortSignal.timeout(ORDER_REQUEST_TIMEOUT_MS),
  });
}

/** Default length of the steady-state warm-up of the order scenarios, in seconds. */
export const ORDER_WARMUP_S_DEFAULT = 30;
const ORDER_WARMUP_S_MAX = 45;

/**
 * Seconds of unrecorded orders an order scenario sends before its meters and rounds start:
 * `BV_BENCH_WARMUP_S` (0 measures the cold platform, as before stop 10), else {@link ORDER_WARMUP_S_DEFAULT}.
 * The platform is started for the bench run, so without it the rounds measured its first seconds: V8 still
 * compiling, the run's new Kafka topics being found by MirrorMaker (each restarts its flow's task) and new
 * partitions on the brokers. `order_to_websocket` at 50/s, lean: p50 0.6–1.4 s / p99 1.8–3.1 s cold, p50
 * 36–67 / p99 144–296 ms after 30–45 s of orders (docs/ARCHITECTURE.md, "E-commerce speed").
 */
export function orderWarmupSeconds(): number {
  const raw = Deno.env.get("BV_BENCH_WARMUP_S");
  if (raw === undefined || raw === "") return ORDER_WARMUP_S_DEFAULT;
  const seconds = Number(raw);
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > ORDER_WARMUP_S_MAX) {
    // The scenario backstop is 90 s: a longer warm-up would leave no time to measure.
    throw new RangeError(
      `BV_BENCH_WARMUP_S must be a whole number of seconds from 0 to ${ORDER_WARMUP_S_MAX}, got "${raw}"`,
    );
  }
  return seconds;
}

/**
 * Sends `op` open loop at the scenario's rate for {@link orderWarmupSeconds}, recording nothing. Then, when the
 * PostgreSQL server runs without autovacuum (the shared server of this machine does: `autovacuum = off`), it
 * runs `VACUUM ANALYZE` on the platform's database once, as autovacuum would have by then: the run's tables
 * were created empty, and a prepared statement planned on an empty table keeps its plan until the table is
 * analyzed (the relay's `update outbox … where id = any($1)` stayed a sequential scan, ~2.8 ms a call, over a
 * table growing by 3 rows an order).
 */
export async function warmUpOrders(
  log: (line: string) => void,
  op: () => Promise<unknown>,
  options: { readonly ratePerSec: number; readonly maxInFlight: number; readonly pgUrl: string },
): Promise<void> {
  const seconds = orderWarmupSeconds();
  if (seconds === 0) return;
  log(`steady-state warm-up: orders at ${options.ratePerSec}/s for ${seconds} s (not recorded; BV_BENCH_WARMUP_S)`);
  const warm = await measureAtRate("warm-up", op, { ...options, durationMs: seconds * 1_000, onError: "count" });
  if (warm.failed > 0 || warm.dropped > 0) log(`warm-up: ${warm.failed} failed, ${warm.dropped} dropped`);
  const sql = postgres(options.pgUrl, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    const [{ autovacuum }] = await sql<{ autovacuum: string }[]>`select current_setting('autovacuum') as autovacuum`;
    if (autovacuum !== "on") {
      const started = performance.now();
      await sql.unsafe("vacuum (analyze)");
      log(
        `autovacuum is ${autovacuum} on this server: ran VACUUM ANALYZE after the warm-up in ${
          (performance.now() - started).toFixed(0)
        } ms`,
      );
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}
