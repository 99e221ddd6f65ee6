import assert from "node:assert/strict";
import { createKafkaEventLog } from "../../../shared/adapters/kafka/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { TEST_CONSUMER_TIMINGS } from "../../../shared/testing/kafka_test_timings.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { ordersMigrations } from "../orders/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { canceledEvent, paidEvent, publishEvents, waitForProcessed } from "./_fixtures_for_test.ts";
import {
  analyticsMigrations,
  createAnalyticsRoutes,
  formatParity,
  readDailySales,
  replayRevenue,
  startRevenueProjection,
} from "./mod.ts";

const ROOT = new URL("../../../", import.meta.url);

/** Runs an analytics command against the test database and the east Kafka; resolves with its exit and output. */
async function runScript(script: string, args: string[], database: string): Promise<{ code: number; out: string }> {
  const kafkaPort = realInfra.kafkaBrokers[0].split(":").at(-1)!;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    cwd: ROOT,
    env: {
      BV_MODE: "infra",
      BV_PG_URL: realInfra.postgresAdminUrl,
      BV_EAST_PG_DATABASE: database,
      KAFKA_EAST_PORT: kafkaPort,
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, out: decode(output.stdout) + decode(output.stderr) };
}

Deno.test({
  name: "[postgres+kafka] revenue windows from Kafka, the REST read, the daily batch and replay parity",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const db = await createTestDatabase();
    const sql = createPostgresSql({ url: db.url });
    const eventLog = createKafkaEventLog({
      brokers: realInfra.kafkaBrokers,
      clientId: uniqueName("analytics-test"),
      logLevel: "error",
      consumer: TEST_CONSUMER_TIMINGS,
    });
    // Topics of this run only: the shared order topics hold every other run's events too.
    const topics = { paid: uniqueName("analytics_paid"), canceled: uniqueName("analytics_canceled") };
    let projection: { close(): Promise<void> } | undefined;
    try {
      await migrate(sql, [...outboxMigrations, ...ordersMigrations, ...analyticsMigrations]);
      const live = await startRevenueProjection({ sql, eventLog, region: "east", topics, groupId: uniqueName("rev") });
      projection = live;
      await live.ready;
      const repeated = paidEvent("o-2", "20.25", "EUR", "2025-03-01T10:00:30Z");
      await publishEvents(eventLog, [
        paidEvent("o-1", "129.50", "USD", "2025-03-01T10:00:05Z"),
        repeated,
        repeated,
        canceledEvent("o-1", "2025-03-01T10:02:00Z"),
        paidEvent("o-3", "3.00", "USD", "2025-03-01T10:02:59Z"),
        // Late: published last, lands in its own (earlier) window.
        paidEvent("o-4", "1.00", "USD", "2025-03-01T09:59:00Z"),
      ], { topics });
      await waitForProcessed(sql, 5, 30_000);

      await t.step("an ADMIN reads the windows over REST", async () => {
        const tokens = await createTestTokens();
        const app = createAnalyticsRoutes({ sql, verifier: tokens.verifier });
        const response = await app.request(
          "/api/v1/analytics/revenue?from=2025-03-01T09:00:00Z&to=2025-03-01T11:00:00Z&currency=USD",
          { headers: { authorization: `Bearer ${await tokens.token("admin-1", ["ADMIN"])}` } },
        );
        assert.equal(response.status, 200);
        const body = await response.json();
        assert.deepEqual(body.windows, [
          { windowStart: "2025-03-01T09:59:00.000Z", currency: "USD", revenue: "1.00", orders: 1 },
          { windowStart: "2025-03-01T10:00:00.000Z", currency: "USD", revenue: "129.50", orders: 1 },
          { windowStart: "2025-03-01T10:02:00.000Z", currency: "USD", revenue: "-126.50", orders: 0 },
        ]);
        assert.deepEqual(body.totals, [{ currency: "USD", revenue: "4.00", orders: 2 }]);
      });

      await t.step("the replay from the earliest offset matches the live projection", async () => {
        const parity = await replayRevenue({
          sql,
          eventLog,
          region: "east",
          topics,
          quietMs: 1_000,
          timeoutMs: 30_000,
        });
        assert.equal(parity.ok, true, formatParity(parity));
        assert.equal(parity.eventsApplied, 5);
        assert.equal(parity.equal, 4);
      });

      await t.step("the replay command exits 1 and names the window after the live table is tampered", async () => {
        await sql.exec("update revenue_minute set orders = orders + 1 where currency = 'EUR'");
        const { code, out } = await runScript("scripts/analytics/replay_revenue.ts", [
          `--paid-topic=${topics.paid}`,
          `--canceled-topic=${topics.canceled}`,
          "--quiet-ms=1000",
          "--timeout-ms=60000",
        ], db.name);
        assert.equal(code, 1, out);
        assert.match(out, /^2025-03-01T10:00:00.000Z EUR live=20.25\/2 replay=20.25\/1 differs$/m);
        assert.match(out, /parity: MISMATCH — windows 4, equal 3, differs 1/);
      });

      await t.step("the daily batch command writes the day from the orders tables, twice the same", async () => {
        const id = crypto.randomUUID();
        await sql.query`
          insert into orders (id, user_id, status, total_amount, currency, created_at, updated_at)
          values (${id}::uuid, 'u-1', 'PAID', 42.10, 'USD', '2025-03-01T10:00:00Z', '2025-03-01T10:00:01Z')`;
        await sql.query`
          insert into order_status_history (order_id, from_status, to_status, reason, actor, at)
          values (${id}::uuid, 'RESERVED', 'PAID', 'payment approved via soap', 'u-1', '2025-03-01T10:00:01Z')`;
        for (let run = 0; run < 2; run++) {
          const { code, out } = await runScript("scripts/analytics/daily_sales.ts", ["--date=2025-03-01"], db.name);
          assert.equal(code, 0, out);
          assert.match(out, /^2025-03-01 USD revenue=42.10 orders=1$/m);
        }
        assert.deepEqual(await readDailySales(sql, "2025-03-01"), [
          { date: "2025-03-01", currency: "USD", revenue: "42.10", orders: 1 },
        ]);
        const bad = await runScript("scripts/analytics/daily_sales.ts", ["--date=2025-13-01"], db.name);
        assert.equal(bad.code, 64);
        assert.match(bad.out, /Date "2025-13-01" is not a calendar date; use YYYY-MM-DD/);
      });
    } finally {
      await projection?.close();
      await eventLog.close();
      await sql.close();
      await db.drop();
    }
  },
});
