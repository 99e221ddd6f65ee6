/**
 * The revenue projection's sources follow the order-writer role: replicated (an `order_writer` row), a
 * region also reads the other regions' MirrorMaker copies (`<region>.<prefix><topic>`) and counts every
 * order; standalone, it reads its own topics and skips what the embedded mirror copied in. MirrorMaker is
 * played by publishing straight into the copy's physical topic of a namespaced in-memory cluster.
 */
import assert from "node:assert/strict";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { EventLog, Sql, TopicSpec } from "../../../shared/ports/mod.ts";
import { prefixedEventLog } from "../../../shared/ports/prefixed_event_log.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { ORIGIN_REGION_HEADER } from "../../../shared/replication/event_mirror.ts";
import { cartMigrations } from "../cart/mod.ts";
import { catalogMigrations } from "../catalog/mod.ts";
import { inventoryMigrations } from "../inventory/mod.ts";
import { ordersMigrations } from "../orders/mod.ts";
import { orderWriterMigrations } from "../orders/writer/mod.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { canceledEvent, paidEvent, publishEvents, waitForProcessed } from "./_fixtures_for_test.ts";
import { analyticsMigrations, formatParity, replayRevenue, REVENUE_TOPICS, startRevenueProjection } from "./mod.ts";
import { readRevenueWindows } from "./revenue_store.ts";

const DAY = { from: new Date("2025-03-01T00:00:00Z"), to: new Date("2025-03-02T00:00:00Z"), limit: 1_000 };
const PREFIX = "p.";
/** The physical topics of a region's own order events, and MirrorMaker 2's copies of them elsewhere. */
const LOCAL = { paid: `${PREFIX}${REVENUE_TOPICS.paid}`, canceled: `${PREFIX}${REVENUE_TOPICS.canceled}` };
const copiesFrom = (region: string) => ({ paid: `${region}.${LOCAL.paid}`, canceled: `${region}.${LOCAL.canceled}` });

/** A cluster (as MirrorMaker sees it), the namespaced log the projection gets, and what it asked the cluster. */
function namespacedCluster() {
  const cluster = createMemoryEventLog({ handlerRetry: { initialDelayMs: 5, maxDelayMs: 10 } });
  const asked = { ensured: [] as TopicSpec[], subscribed: [] as string[][] };
  const spied: EventLog = {
    ...cluster,
    ensureTopics: (topics) => {
      asked.ensured.push(...topics);
      return cluster.ensureTopics(topics);
    },
    subscribe: (options) => {
      asked.subscribed.push([...options.topics]);
      return cluster.subscribe(options);
    },
  };
  return { cluster, eventLog: prefixedEventLog(spied, PREFIX), asked };
}

/** A region's database; `writer` set: linked (an `order_writer` row), else standalone. */
async function regionDatabase(localRegion: string, writer?: string): Promise<Sql> {
  const sql = await createPgliteSql();
  await migrate(sql, [
    ...outboxMigrations,
    ...catalogMigrations,
    ...cartMigrations,
    ...inventoryMigrations,
    ...ordersMigrations,
    ...orderWriterMigrations,
    ...analyticsMigrations,
  ]);
  if (writer) {
    await sql.query`insert into order_writer (local_region, writer_region) values (${localRegion}, ${writer})`;
  }
  return sql;
}

Deno.test({
  name: "[pglite+memory] a replica's revenue counts the writer's mirrored events with its own, once each",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sql = await regionDatabase("west", "east");
    const { cluster, eventLog, asked } = namespacedCluster();
    const projection = await startRevenueProjection({ sql, eventLog, region: "west" });
    const windows = () => readRevenueWindows(sql, DAY);
    try {
      await projection.ready;

      await t.step("it subscribes to east's MirrorMaker copies, made first with the local partition count", () => {
        const expected = [LOCAL.paid, LOCAL.canceled, copiesFrom("east").paid, copiesFrom("east").canceled];
        assert.deepEqual(asked.subscribed, [expected]);
        assert.deepEqual(asked.ensured, expected.map((name) => ({ name, partitions: 3 })));
      });

      await t.step("an order paid in east (mirrored in) counts in west", async () => {
        await publishEvents(cluster, [paidEvent("o-1", "100.00", "USD", "2025-03-01T10:00:05Z")], {
          topics: copiesFrom("east"),
        });
        await waitForProcessed(sql, 1);
        assert.deepEqual(await windows(), [
          { windowStart: "2025-03-01T10:00:00.000Z", currency: "USD", revenue: "100.00", orders: 1 },
        ]);
      });

      await t.step("one event on both the copy and the local topic counts once; every origin counts", async () => {
        const both = paidEvent("o-2", "20.00", "USD", "2025-03-01T10:01:00Z");
        await publishEvents(eventLog, [both, paidEvent("o-3", "5.00", "USD", "2025-03-01T10:01:30Z")]);
        await publishEvents(eventLog, [paidEvent("o-4", "1.00", "USD", "2025-03-01T10:01:40Z")], {
          headers: { [ORIGIN_REGION_HEADER]: "east" },
        });
        await waitForProcessed(sql, 4);
        // The same envelope on the copy, then another paid event of that order behind it in its partition:
        // once that one is processed, the copy has been handled too.
        await publishEvents(cluster, [both, paidEvent("o-2", "20.00", "USD", "2025-03-01T10:01:10Z")], {
          topics: copiesFrom("east"),
        });
        await waitForProcessed(sql, 5);
        const [{ n }] = await sql.query<{ n: number }>`select count(*)::int as n from processed_events`;
        assert.equal(n, 5, "the copy of an event already processed adds no marker");
        const minute = (await windows()).find((w) => w.windowStart === "2025-03-01T10:01:00.000Z");
        assert.deepEqual(minute, {
          windowStart: "2025-03-01T10:01:00.000Z",
          currency: "USD",
          revenue: "26.00",
          orders: 3,
        });
      });

      await t.step("after a promotion, a cancel in west takes back the payment made in east", async () => {
        await publishEvents(eventLog, [canceledEvent("o-1", "2025-03-01T10:05:00Z")]);
        await waitForProcessed(sql, 6);
        const minute = (await windows()).find((w) => w.windowStart === "2025-03-01T10:05:00.000Z");
        assert.deepEqual(minute, {
          windowStart: "2025-03-01T10:05:00.000Z",
          currency: "USD",
          revenue: "-100.00",
          orders: -1,
        });
      });

      await t.step("the replay reads the same topics, so parity holds", async () => {
        const parity = await replayRevenue({ sql, eventLog, region: "west", quietMs: 200, timeoutMs: 10_000 });
        assert.equal(parity.ok, true, formatParity(parity));
        assert.deepEqual([parity.eventsApplied, parity.eventsLive, parity.mirroredSkipped], [6, 6, 0]);
        assert.deepEqual(parity.topics, [
          REVENUE_TOPICS.paid,
          REVENUE_TOPICS.canceled,
          `east:${REVENUE_TOPICS.paid}`,
          `east:${REVENUE_TOPICS.canceled}`,
        ]);
      });
    } finally {
      await projection.close();
      await cluster.close();
      await sql.close();
    }
  },
});

Deno.test({
  name: "[pglite+memory] the writer reads the other regions' copies too, through the role reader it is given",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // Only the analytics tables: the role comes from the reader, as the deployable passes its own.
    const sql = await createPgliteSql();
    await migrate(sql, [...outboxMigrations, ...analyticsMigrations]);
    const { cluster, eventLog, asked } = namespacedCluster();
    const writerRole = { current: () => Promise.resolve({ localRegion: "east", writerRegion: "east", epoch: 2 }) };
    const projection = await startRevenueProjection({ sql, eventLog, region: "east", writerRole });
    try {
      await projection.ready;
      assert.deepEqual(asked.subscribed, [[
        LOCAL.paid,
        LOCAL.canceled,
        copiesFrom("west").paid,
        copiesFrom("west").canceled,
      ]]);
      await publishEvents(cluster, [paidEvent("o-w", "7.00", "EUR", "2025-03-01T11:00:00Z")], {
        topics: copiesFrom("west"),
      });
      await waitForProcessed(sql, 1);
      assert.deepEqual(await readRevenueWindows(sql, DAY), [
        { windowStart: "2025-03-01T11:00:00.000Z", currency: "EUR", revenue: "7.00", orders: 1 },
      ]);
    } finally {
      await projection.close();
      await cluster.close();
      await sql.close();
    }
  },
});

Deno.test({
  name: "[pglite+memory] a standalone region reads only its own topics and skips records mirrored in",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await regionDatabase("east");
    const { cluster, eventLog, asked } = namespacedCluster();
    const projection = await startRevenueProjection({ sql, eventLog, region: "east" });
    try {
      await projection.ready;
      assert.deepEqual(asked.subscribed, [[LOCAL.paid, LOCAL.canceled]]);
      assert.deepEqual(asked.ensured.map((spec) => spec.name), [LOCAL.paid, LOCAL.canceled]);
      await publishEvents(cluster, [paidEvent("o-copy", "9.00", "USD", "2025-03-01T12:00:00Z")], {
        topics: copiesFrom("west"),
      });
      await publishEvents(eventLog, [paidEvent("o-west", "8.00", "USD", "2025-03-01T12:00:00Z")], {
        headers: { [ORIGIN_REGION_HEADER]: "west" },
      });
      await publishEvents(eventLog, [paidEvent("o-east", "3.00", "USD", "2025-03-01T12:00:00Z")]);
      await waitForProcessed(sql, 1);
      const parity = await replayRevenue({ sql, eventLog, region: "east", quietMs: 200, timeoutMs: 10_000 });
      assert.equal(parity.ok, true, formatParity(parity));
      assert.deepEqual([parity.eventsApplied, parity.mirroredSkipped], [1, 1]);
      assert.deepEqual(parity.topics, [REVENUE_TOPICS.paid, REVENUE_TOPICS.canceled]);
      // Neither the copy (never read) nor the record the embedded mirror copied in (skipped) counted.
      assert.deepEqual(await readRevenueWindows(sql, DAY), [
        { windowStart: "2025-03-01T12:00:00.000Z", currency: "USD", revenue: "3.00", orders: 1 },
      ]);
      const [{ n }] = await sql.query<{ n: number }>`select count(*)::int as n from processed_events`;
      assert.equal(n, 1);
    } finally {
      await projection.close();
      await cluster.close();
      await sql.close();
    }
  },
});
