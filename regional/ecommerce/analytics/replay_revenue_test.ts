import assert from "node:assert/strict";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { EventLog, Subscription } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { ORIGIN_REGION_HEADER } from "../../../shared/replication/event_mirror.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { canceledEvent, paidEvent, publishEvents, waitForProcessed } from "./_fixtures_for_test.ts";
import { analyticsMigrations, formatParity, replayRevenue, REVENUE_TOPICS, startRevenueProjection } from "./mod.ts";

Deno.test({
  name: "[pglite+memory] the replay rebuilds the revenue windows from the topics and reports parity with the live ones",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sql = await createPgliteSql();
    const eventLog = createMemoryEventLog({ handlerRetry: { initialDelayMs: 5, maxDelayMs: 10 } });
    await migrate(sql, [...outboxMigrations, ...analyticsMigrations]);
    const projection = await startRevenueProjection({ sql, eventLog, region: "east" });
    try {
      await projection.ready;
      const repeated = paidEvent("o-2", "20.25", "EUR", "2025-03-01T10:00:30Z");
      await publishEvents(eventLog, [
        paidEvent("o-1", "129.50", "USD", "2025-03-01T10:00:05Z"),
        repeated,
        repeated,
        canceledEvent("o-1", "2025-03-01T10:02:00Z"),
        canceledEvent("o-3", "2025-03-01T10:02:30Z"),
        paidEvent("o-4", "3.00", "USD", "2025-03-01T09:00:00Z"),
      ]);
      await publishEvents(eventLog, [paidEvent("o-west", "50.00", "USD", "2025-03-01T10:00:00Z")], {
        headers: { [ORIGIN_REGION_HEADER]: "west" },
      });
      await eventLog.publish(REVENUE_TOPICS.canceled, [{ key: "o-x", value: "not json" }]);
      await waitForProcessed(sql, 5);
      const replay = () => replayRevenue({ sql, eventLog, region: "east", quietMs: 300, timeoutMs: 10_000 });

      await t.step("on a consistent state every window is equal and the replay passes", async () => {
        const parity = await replay();
        assert.equal(parity.ok, true, formatParity(parity));
        assert.deepEqual(
          parity.lines.map((l) => [l.windowStart, l.currency, l.live?.revenue, l.replay?.revenue, l.verdict]),
          [
            ["2025-03-01T09:00:00.000Z", "USD", "3.00", "3.00", "equal"],
            ["2025-03-01T10:00:00.000Z", "EUR", "20.25", "20.25", "equal"],
            ["2025-03-01T10:00:00.000Z", "USD", "129.50", "129.50", "equal"],
            ["2025-03-01T10:02:00.000Z", "USD", "-129.50", "-129.50", "equal"],
          ],
        );
        assert.equal(parity.eventsApplied, 5);
        assert.equal(parity.eventsLive, 5);
        assert.equal(parity.mirroredSkipped, 1);
        assert.equal(parity.malformed, 1);
        assert.match(formatParity(parity), /parity: OK — windows 4, equal 4, differs 0/);
      });

      await t.step("a tampered live window is reported as differing and the replay fails", async () => {
        await sql.exec(`
          update revenue_minute set revenue = revenue + 1 where currency = 'EUR';
          delete from revenue_minute where window_start = '2025-03-01T09:00:00Z'`);
        const parity = await replay();
        assert.equal(parity.ok, false);
        assert.equal(parity.differs, 2);
        const report = formatParity(parity);
        assert.match(report, /^2025-03-01T09:00:00.000Z USD live=- replay=3.00\/1 differs$/m);
        assert.match(report, /^2025-03-01T10:00:00.000Z EUR live=21.25\/1 replay=20.25\/1 differs$/m);
        assert.match(report, /parity: MISMATCH — windows 4, equal 2, differs 2/);
      });

      await t.step("a replay that cannot reach what the live projection processed fails within its bound", async () => {
        await sql.exec(
          `insert into processed_events (consumer, event_id) values ('analytics-revenue', '${crypto.randomUUID()}')`,
        );
        await assert.rejects(
          replayRevenue({ sql, eventLog, region: "east", quietMs: 100, timeoutMs: 500 }),
          /applied 5 of the 6 events the live projection processed within 500 ms/,
        );
      });
    } finally {
      await projection.close();
      await eventLog.close();
      await sql.close();
    }
  },
});

/** An event log whose group coordinator never answers: `subscribe` or the member's `ready` never settles. */
function unjoinableEventLog(stuckAt: "subscribe" | "ready") {
  const closed: string[] = [];
  let lateMember: ((subscription: Subscription) => void) | undefined;
  const subscription = (name: string): Subscription => ({
    ready: new Promise<void>(() => {}),
    close: () => Promise.resolve(void closed.push(name)),
  });
  const eventLog: EventLog = {
    ensureTopics: () => Promise.resolve(),
    publish: () => Promise.resolve(),
    subscribe: () =>
      stuckAt === "ready"
        ? Promise.resolve(subscription("member"))
        : new Promise<Subscription>((resolve) => lateMember = resolve),
    ping: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return { eventLog, closed, startLateMember: () => lateMember?.(subscription("late member")) };
}

Deno.test({
  name: "[pglite] the replay gives up within its timeout when the consumer cannot join the group, and leaves it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sql = await createPgliteSql();
    try {
      await migrate(sql, [...outboxMigrations, ...analyticsMigrations]);
      for (const stuckAt of ["ready", "subscribe"] as const) {
        await t.step(`a ${stuckAt} that never settles`, async () => {
          const fake = unjoinableEventLog(stuckAt);
          const startedMs = performance.now();
          await assert.rejects(
            replayRevenue({ sql, eventLog: fake.eventLog, region: "east", quietMs: 50, timeoutMs: 300 }),
            /^Error: The replay's consumer did not join the group within 300 ms; check that the event log and its group coordinator are reachable, or raise the timeout$/,
          );
          const tookMs = performance.now() - startedMs;
          assert.ok(tookMs >= 250 && tookMs < 2_000, `gave up after ${Math.round(tookMs)} ms`);
          if (stuckAt === "ready") assert.deepEqual(fake.closed, ["member"], "the member that did not join is closed");
          fake.startLateMember();
          await new Promise((resolve) => setTimeout(resolve, 0));
          if (stuckAt === "subscribe") {
            assert.deepEqual(fake.closed, ["late member"], "a member that comes late is closed");
          }
        });
      }
    } finally {
      await sql.close();
    }
  },
});
