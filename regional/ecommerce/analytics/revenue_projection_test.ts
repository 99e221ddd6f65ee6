import assert from "node:assert/strict";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { dlqTopicOf, type IncomingRecord } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { ORIGIN_REGION_HEADER } from "../../../shared/replication/event_mirror.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { canceledEvent, paidEvent, publishEvents, waitFor, waitForProcessed } from "./_fixtures_for_test.ts";
import { analyticsMigrations, REVENUE_TOPICS, startRevenueProjection } from "./mod.ts";
import { readRevenueWindows } from "./revenue_store.ts";

const DAY = { from: new Date("2025-03-01T00:00:00Z"), to: new Date("2025-03-02T00:00:00Z"), limit: 1_000 };

Deno.test({
  name: "[pglite+memory] the revenue projection keeps per-minute windows by currency from paid and canceled events",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sql = await createPgliteSql();
    const eventLog = createMemoryEventLog({ handlerRetry: { initialDelayMs: 10, maxDelayMs: 20 } });
    await migrate(sql, [...outboxMigrations, ...analyticsMigrations]);
    const projection = await startRevenueProjection({ sql, eventLog, region: "east" });
    await projection.ready;
    let processed = 0;
    const publish = async (envelopes: Parameters<typeof publishEvents>[1]) => {
      await publishEvents(eventLog, envelopes);
      processed += envelopes.length;
      await waitForProcessed(sql, processed);
    };
    const windows = () => readRevenueWindows(sql, DAY);
    try {
      await t.step("payments land in the minute and currency they happened in", async () => {
        await publish([
          paidEvent("o-1", "129.50", "USD", "2025-03-01T10:00:05Z"),
          paidEvent("o-2", "20.25", "USD", "2025-03-01T10:00:59.999Z"),
          paidEvent("o-3", "15.00", "EUR", "2025-03-01T10:00:30Z"),
          paidEvent("o-4", "1.10", "USD", "2025-03-01T10:01:00Z"),
        ]);
        assert.deepEqual(await windows(), [
          { windowStart: "2025-03-01T10:00:00.000Z", currency: "EUR", revenue: "15.00", orders: 1 },
          { windowStart: "2025-03-01T10:00:00.000Z", currency: "USD", revenue: "149.75", orders: 2 },
          { windowStart: "2025-03-01T10:01:00.000Z", currency: "USD", revenue: "1.10", orders: 1 },
        ]);
      });

      await t.step(
        "a cancel after payment subtracts in the cancel's minute; one before payment adds nothing",
        async () => {
          await publish([
            canceledEvent("o-1", "2025-03-01T10:03:10Z"),
            canceledEvent("o-never-paid", "2025-03-01T10:03:20Z"),
          ]);
          const rows = await windows();
          assert.deepEqual(rows.find((w) => w.windowStart === "2025-03-01T10:03:00.000Z"), {
            windowStart: "2025-03-01T10:03:00.000Z",
            currency: "USD",
            revenue: "-129.50",
            orders: -1,
          });
          assert.equal(rows.length, 4);
        },
      );

      await t.step("a redelivered event and a second event of the same kind are counted once", async () => {
        const again = paidEvent("o-5", "10.00", "USD", "2025-03-01T10:04:00Z");
        await publishEvents(eventLog, [again, again, paidEvent("o-5", "10.00", "USD", "2025-03-01T10:04:30Z")]);
        processed += 2; // the repeated envelope has the same event id
        await waitForProcessed(sql, processed);
        const minute = (await windows()).find((w) => w.windowStart === "2025-03-01T10:04:00.000Z");
        assert.deepEqual(minute, {
          windowStart: "2025-03-01T10:04:00.000Z",
          currency: "USD",
          revenue: "10.00",
          orders: 1,
        });
      });

      await t.step("a late event updates the window it belongs to, not the current one", async () => {
        await publish([paidEvent("o-late", "5.00", "EUR", "2025-03-01T10:00:45Z")]);
        const eur = (await windows()).find((w) => w.windowStart === "2025-03-01T10:00:00.000Z" && w.currency === "EUR");
        assert.deepEqual(eur, {
          windowStart: "2025-03-01T10:00:00.000Z",
          currency: "EUR",
          revenue: "20.00",
          orders: 2,
        });
      });

      await t.step("a cancel that arrives before its payment is applied when the payment arrives", async () => {
        // Paid and canceled travel on two topics, so nothing orders them against each other.
        await publish([canceledEvent("o-6", "2025-03-01T10:09:00Z")]);
        await publish([paidEvent("o-6", "7.00", "USD", "2025-03-01T10:08:00Z")]);
        const rows = await windows();
        assert.equal(rows.find((w) => w.windowStart === "2025-03-01T10:08:00.000Z")?.revenue, "7.00");
        assert.equal(rows.find((w) => w.windowStart === "2025-03-01T10:09:00.000Z")?.revenue, "-7.00");
      });

      await t.step("events mirrored in from another region are not this region's revenue", async () => {
        const before = await windows();
        const mirrored = paidEvent("o-west", "99.00", "USD", "2025-03-01T10:00:01Z");
        const own = paidEvent("o-east-own", "1.00", "GBP", "2025-03-01T11:00:00Z");
        // Same key as the next record, so it sits before it in one partition: once the own event is
        // processed, the mirrored one has been handled too.
        await eventLog.publish(REVENUE_TOPICS.paid, [{
          key: own.partitionKey,
          value: JSON.stringify(mirrored),
          headers: { [ORIGIN_REGION_HEADER]: "west" },
        }]);
        await publish([own]);
        const after = await windows();
        assert.deepEqual(after.filter((w) => w.currency !== "GBP"), before);
      });

      await t.step(
        "a malformed record goes to the dead-letter topic with its reason and the projection goes on",
        async () => {
          const dead: IncomingRecord[] = [];
          const dlq = await eventLog.subscribe({
            groupId: "dlq-reader",
            topics: [dlqTopicOf(REVENUE_TOPICS.paid)],
            from: "earliest",
            handler: (record) => Promise.resolve(void dead.push(record)),
          });
          try {
            await eventLog.publish(REVENUE_TOPICS.paid, [{ key: "o-bad", value: '{"eventId": "nope"' }]);
            await waitFor("the dead letter", () => Promise.resolve(dead.length === 1));
            assert.match(dead[0].headers["x-bv-error"], /Not a valid order event: Not JSON/);
            await publish([paidEvent("o-after-bad", "2.00", "GBP", "2025-03-01T11:00:10Z")]);
            const gbp = (await windows()).find((w) => w.currency === "GBP");
            assert.deepEqual(gbp, {
              windowStart: "2025-03-01T11:00:00.000Z",
              currency: "GBP",
              revenue: "3.00",
              orders: 2,
            });
          } finally {
            await dlq.close();
          }
        },
      );
    } finally {
      await projection.close();
      await eventLog.close();
      await sql.close();
    }
  },
});
