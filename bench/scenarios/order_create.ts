/**
 * @module
 * `POST /api/v1/orders` (customer JWT, Idempotency-Key, 1 item of 1 unit) straight to east's e-commerce
 * deployable at 200 orders/s open loop: idempotency record, pricing from the catalog, transaction 1 (order,
 * item, history, `order.created` in the outbox), ReserveStock over gRPC (its own transaction + stock event),
 * transaction 2 (RESERVED), the answer stored for replays. Items rotate over 20 stocked products. Baseline: a
 * raw postgres.js transaction inserting one order row and one outbox row (into copies of the real tables,
 * `create table … (like … including all)`, so the relay does not publish them) at the same rate.
 */
import postgres from "postgres";
import { resultOf, type Scenario } from "../harness.ts";
import { compareAtRate } from "../open_loop.ts";
import { acquirePlatform, releasePlatform, STOCKED_FOR_ORDERS } from "./_ecommerce_platform.ts";
import { postOrder, warmUpOrders } from "./_orders.ts";
import { machinePerOpLine, perOpLine, startCpuMeter, startMachineCpuMeter } from "./_process_cpu.ts";

const NAME = "order_create";
const RATE_PER_SEC = 200;
const DURATION_MS_PER_ROUND = 3_300;
const WARMUP_MS_PER_ROUND = 500;
const MAX_IN_FLIGHT = 256;
/** The e-commerce deployable's own pool is 10 connections; the baseline gets the same. */
const POOL_SIZE = 10;

export const orderCreate: Scenario = {
  name: NAME,
  description: `POST /api/v1/orders (1 item, Idempotency-Key) to east's e-commerce at ${RATE_PER_SEC}/s: ` +
    "REST → gRPC ReserveStock → Postgres + outbox vs a raw postgres.js transaction (order row + outbox row)",
  async run(ctx) {
    try {
      const platform = await acquirePlatform(ctx);
      const sql = postgres(platform.pgUrl, {
        max: POOL_SIZE,
        connect_timeout: 5,
        idle_timeout: 30,
        onnotice: () => {},
      });
      try {
        await sql.unsafe(`
          create table if not exists bench_orders (like orders including all);
          create table if not exists bench_outbox (like outbox including all);`);
        const products = platform.products.slice(0, STOCKED_FOR_ORDERS);
        let n = 0;
        const subject = async () => {
          const product = products[n++ % products.length];
          const response = await postOrder(platform, product.id);
          const text = await response.text();
          if (response.status !== 201) throw new Error(`POST /api/v1/orders answered ${response.status}: ${text}`);
        };
        const baseline = async () => {
          const orderId = crypto.randomUUID();
          const eventId = crypto.randomUUID();
          const envelope = JSON.stringify({ eventId, eventType: "ecommerce.order.order.created.v1", orderId });
          await sql.begin(async (tx) => {
            await tx`
              insert into bench_orders (id, user_id, status, total_amount, currency, created_at, updated_at)
              values (${orderId}, 'bench-user', 'PENDING', 10.50, 'USD', now(), now())`;
            await tx`
              insert into bench_outbox (event_id, topic, partition_key, envelope, headers)
              values (${eventId}, 'ecommerce.order.order.created.v1', ${orderId}, ${envelope},
                      ${sql.json({ "event-type": "ecommerce.order.order.created.v1" })})`;
          });
        };
        await warmUpOrders(ctx.log, subject, {
          ratePerSec: RATE_PER_SEC,
          maxInFlight: MAX_IN_FLIGHT,
          pgUrl: platform.pgUrl,
        });
        const warmUpOrdersSent = n;
        const cpu = await startCpuMeter({ ecommerce: platform.config.regions.east.servicePorts.ecommerce });
        const machine = await startMachineCpuMeter();
        const sides = await compareAtRate(
          { label: "REST → gRPC → Postgres + outbox", op: subject },
          { label: "postgres.js tx (order + outbox row)", op: baseline },
          {
            ratePerSec: RATE_PER_SEC,
            durationMsPerRound: DURATION_MS_PER_ROUND,
            warmupMsPerRound: WARMUP_MS_PER_ROUND,
            maxInFlight: MAX_IN_FLIGHT,
            onError: "count",
          },
        );
        for (const side of [sides.subject, sides.baseline]) {
          if (side.firstError) ctx.log(`${side.label}: first failure: ${side.firstError}`);
        }
        // The e-commerce process only drains the subject's backlog (relay, projections) in baseline rounds.
        // Orders since the meters started (the rounds' own short warm-ups included, the steady-state one not).
        const metered = n - warmUpOrdersSent;
        ctx.log(`${perOpLine(await cpu.read(), metered)} (${metered} orders, warm-up included)`);
        ctx.log(`${machinePerOpLine(await machine.read(), metered)} (baseline rounds included)`);
        return resultOf(NAME, sides);
      } finally {
        await sql.end({ timeout: 5 });
      }
    } finally {
      await releasePlatform(ctx, NAME);
    }
  },
};
