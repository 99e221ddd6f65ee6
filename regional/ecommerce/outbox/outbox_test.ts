import assert from "node:assert/strict";
import { createMemoryEventLog } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import { createKafkaEventLog } from "../../../shared/adapters/kafka/mod.ts";
import { createEnvelope } from "../../../shared/contracts/envelope.ts";
import { orderFulfilled } from "../../../shared/contracts/events/ecommerce.ts";
import type { EventLog, IncomingRecord, Sql } from "../../../shared/ports/mod.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { realInfra } from "../../../shared/testing/real_infra.ts";
import { uniqueName } from "../../../shared/testing/unique.ts";
import { appendToOutbox, outboxMigrations, processOnce, purgeProcessedEvents, startOutboxRelay } from "./mod.ts";
import { purgePublishedOutbox } from "./relay.ts";

const context = { producer: "order-service", traceId: "0af7651916cd43dd8448eb211c80319c", correlationId: "c-1" };

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function outboxScenario(sql: Sql, eventLog: EventLog, topicOverride?: string): Promise<void> {
  await migrate(sql, [...outboxMigrations]);
  const topic = orderFulfilled.eventType;
  await eventLog.ensureTopics([{ name: topicOverride ?? topic, partitions: 3 }]);
  const received: IncomingRecord[] = [];
  const sub = await eventLog.subscribe({
    groupId: uniqueName("outbox-test"),
    topics: [topic],
    from: "earliest",
    handler: (record) => {
      received.push(record);
      return Promise.resolve();
    },
  });
  await sub.ready;
  const relay = startOutboxRelay({ sql, eventLog, pollIntervalMs: 50 });
  try {
    const committed = createEnvelope(orderFulfilled, { orderId: uniqueName("o"), userId: "u-1" }, context);
    const rolledBack = createEnvelope(orderFulfilled, { orderId: uniqueName("o"), userId: "u-1" }, context);
    await sql.transaction((tx) => appendToOutbox(tx, committed));
    await assert.rejects(
      sql.transaction(async (tx) => {
        await appendToOutbox(tx, rolledBack);
        throw new Error("the state change failed");
      }),
      /state change failed/,
    );
    relay.nudge();
    await waitFor("the committed event on the log", () => received.some((r) => r.value.includes(committed.eventId)));
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!received.some((r) => r.value.includes(rolledBack.eventId)), "a rolled-back event is never published");
    assert.equal(received.filter((r) => r.value.includes(committed.eventId)).length, 1, "published once");
    const record = received.find((r) => r.value.includes(committed.eventId))!;
    assert.equal(record.key, committed.partitionKey);
    assert.deepEqual(JSON.parse(record.value), committed);
    assert.equal(record.headers["event-type"], orderFulfilled.eventType);
    const pending = await sql.query`select count(*)::int as n from outbox where published_at is null`;
    assert.equal(pending[0].n, 0);

    // A redelivered event runs its effect once.
    await sql.exec("create table if not exists effects (event_id uuid primary key)");
    const effect = (tx: Parameters<Parameters<Sql["transaction"]>[0]>[0]) =>
      tx.query`insert into effects (event_id) values (${committed.eventId})`.then(() => {});
    assert.equal(await processOnce(sql, "fulfilment-mailer", committed.eventId, effect), true);
    assert.equal(await processOnce(sql, "fulfilment-mailer", committed.eventId, effect), false);
    assert.equal((await sql.query`select count(*)::int as n from effects`)[0].n, 1);
  } finally {
    await relay.stop();
    await sub.close();
  }
}

Deno.test({
  name: "[pglite+memory] outbox publishes committed events once and never rolled-back ones",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    const eventLog = createMemoryEventLog();
    try {
      await outboxScenario(sql, eventLog);
    } finally {
      await eventLog.close();
      await sql.close();
    }
  },
});

Deno.test({
  name: "[postgres+kafka] outbox publishes committed events once and never rolled-back ones",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const db = await createTestDatabase();
    const sql = createPostgresSql({ url: db.url });
    const eventLog = createKafkaEventLog({ brokers: realInfra.kafkaBrokers, clientId: uniqueName("outbox") });
    try {
      await outboxScenario(sql, eventLog);
    } finally {
      await eventLog.close();
      await sql.close();
      await db.drop();
    }
  },
});

Deno.test("[postgres] outbox relay: a nudge during a drain starts the next drain at once, not after the poll interval", async () => {
  // Postgres, not PGlite: the test commits while the relay's transaction is open, which needs two connections.
  const db = await createTestDatabase();
  const sql = createPostgresSql({ url: db.url });
  const inner = createMemoryEventLog();
  let releaseFirst!: () => void;
  const firstHeld = new Promise<void>((resolve) => releaseFirst = resolve);
  let publishes = 0;
  let enteredFirst!: () => void;
  const firstEntered = new Promise<void>((resolve) => enteredFirst = resolve);
  // The first publish waits until the test has committed a second event and nudged, as a busy relay would.
  const eventLog: EventLog = {
    ...inner,
    publish: async (topic, records) => {
      if (++publishes === 1) {
        enteredFirst();
        await firstHeld;
      }
      await inner.publish(topic, records);
    },
  };
  await migrate(sql, [...outboxMigrations]);
  const relay = startOutboxRelay({ sql, eventLog, pollIntervalMs: 60_000 });
  try {
    const first = createEnvelope(orderFulfilled, { orderId: uniqueName("o"), userId: "u-1" }, context);
    const second = createEnvelope(orderFulfilled, { orderId: uniqueName("o"), userId: "u-1" }, context);
    await sql.transaction((tx) => appendToOutbox(tx, first));
    relay.nudge();
    await firstEntered;
    await sql.transaction((tx) => appendToOutbox(tx, second));
    relay.nudge();
    releaseFirst();
    const unpublished = async () =>
      (await sql.query<{ n: number }>`select count(*)::int as n from outbox where published_at is null`)[0].n;
    const started = Date.now();
    while (await unpublished() > 0) {
      assert.ok(Date.now() - started < 5_000, "the second event waited for the 60 s poll");
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(publishes, 2);
  } finally {
    await relay.stop();
    await inner.close();
    await sql.close();
    await db.drop();
  }
});

Deno.test({
  name: "[pglite+memory] outbox relay publishes in id order past 9 → 10 (numeric, not the text of the id)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    const eventLog = createMemoryEventLog();
    const topic = orderFulfilled.eventType;
    try {
      await migrate(sql, [...outboxMigrations]);
      await eventLog.ensureTopics([{ name: topic, partitions: 1 }]);
      // One order's twelve events under one key: a key's events must reach the log in the order committed.
      const orderId = uniqueName("o");
      const envelopes = Array.from(
        { length: 12 },
        () => createEnvelope(orderFulfilled, { orderId, userId: "u-1" }, context),
      );
      for (const envelope of envelopes) await sql.transaction((tx) => appendToOutbox(tx, envelope));
      const received: string[] = [];
      const sub = await eventLog.subscribe({
        groupId: uniqueName("outbox-order"),
        topics: [topic],
        from: "earliest",
        handler: (record) => Promise.resolve(void received.push(JSON.parse(record.value).eventId)),
      });
      const relay = startOutboxRelay({ sql, eventLog, pollIntervalMs: 60_000 });
      try {
        // The relay drains at start: all twelve go out in its first batch.
        await waitFor("all twelve on the log", () => received.length === 12);
        assert.deepEqual(received, envelopes.map((e) => e.eventId));
      } finally {
        await relay.stop();
        await sub.close();
      }
    } finally {
      await eventLog.close();
      await sql.close();
    }
  },
});

async function purgeScenario(sql: Sql): Promise<void> {
  await migrate(sql, [...outboxMigrations]);
  await outboxPurgeScenario(sql);
  await markerPurgeScenario(sql);
}

async function outboxPurgeScenario(sql: Sql): Promise<void> {
  const add = async (publishedAgo: string | null) => {
    const envelope = createEnvelope(orderFulfilled, { orderId: uniqueName("o"), userId: "u-1" }, context);
    await sql.transaction((tx) => appendToOutbox(tx, envelope));
    if (publishedAgo !== null) {
      await sql.query`update outbox set published_at = now() - ${publishedAgo}::interval
                          where event_id = ${envelope.eventId}::uuid`;
    }
    return envelope.eventId;
  };
  const old = [await add("2 hours"), await add("11 minutes")];
  const unpublished = await add(null);
  const recent = await add("1 minute");
  assert.equal(await purgePublishedOutbox(sql, 10 * 60_000), 2);
  const left = (await sql.query<{ event_id: string }>`select event_id::text as event_id from outbox order by id`)
    .map((row) => row.event_id);
  assert.deepEqual(left, [unpublished, recent]);
  assert.ok(old.every((id) => !left.includes(id)));
  assert.equal(await purgePublishedOutbox(sql, 10 * 60_000), 0);
}

/** Markers older than the retention go (in bounded batches); a recent one stays and still stops a redelivery. */
async function markerPurgeScenario(sql: Sql): Promise<void> {
  const DAY_MS = 24 * 60 * 60_000;
  const marker = async (consumer: string, ageDays: number) => {
    const eventId = crypto.randomUUID();
    await sql.query`insert into processed_events (consumer, event_id, processed_at)
                    values (${consumer}, ${eventId}::uuid, now() - ${ageDays} * interval '1 day')`;
    return eventId;
  };
  const old = [];
  for (let i = 0; i < 7; i++) old.push(await marker(i % 2 === 0 ? "projection-a" : "projection-b", 10 + i));
  const recent = await marker("projection-a", 8);
  const fresh = await marker("projection-b", 0);
  // 7 old markers at 3 a statement: 3 statements (3 + 3 + 1).
  assert.equal(await purgeProcessedEvents(sql, 9 * DAY_MS, { batch: 3, statementsMax: 10 }), 7);
  const left = await sql.query<{ event_id: string }>`select event_id::text as event_id from processed_events`;
  assert.deepEqual(left.map((row) => row.event_id).sort(), [recent, fresh].sort());
  let ran = 0;
  const effect = () => Promise.resolve(void ran++);
  assert.equal(await processOnce(sql, "projection-a", recent, effect), false, "a kept marker still stops a redelivery");
  assert.equal(await processOnce(sql, "projection-a", old[0], effect), true, "a purged marker is gone");
  assert.equal(ran, 1);
  assert.equal(await purgeProcessedEvents(sql, 9 * DAY_MS), 0);
}

Deno.test({
  name:
    "[pglite] purges: published outbox rows and consumer markers past their retention go, unpublished or recent ones stay",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    try {
      await purgeScenario(sql);
    } finally {
      await sql.close();
    }
  },
});

Deno.test("[postgres] purges: published outbox rows and consumer markers past their retention go, unpublished or recent ones stay", async () => {
  const db = await createTestDatabase();
  const sql = createPostgresSql({ url: db.url });
  try {
    await purgeScenario(sql);
  } finally {
    await sql.close();
    await db.drop();
  }
});

Deno.test("[postgres] outbox relay: two relays publish one at a time, so rows go out in id order across them", async () => {
  // Two processes' relays on one database. Relay A's publish of the first event is held; meanwhile a second
  // event of the same order is committed and relay B is nudged. B must not publish it before A's batch.
  const db = await createTestDatabase();
  const sql = createPostgresSql({ url: db.url });
  const inner = createMemoryEventLog();
  const published: string[] = [];
  let releaseFirst!: () => void;
  const firstHeld = new Promise<void>((resolve) => releaseFirst = resolve);
  let enteredFirst!: () => void;
  const firstEntered = new Promise<void>((resolve) => enteredFirst = resolve);
  const logOf = (relay: string, hold: boolean): EventLog => ({
    ...inner,
    publish: async (topic, records) => {
      if (hold && published.length === 0) {
        enteredFirst();
        await firstHeld;
      }
      for (const record of records) published.push(`${relay}:${JSON.parse(record.value).eventId}`);
      await inner.publish(topic, records);
    },
  });
  await migrate(sql, [...outboxMigrations]);
  const relayA = startOutboxRelay({ sql, eventLog: logOf("a", true), pollIntervalMs: 60_000 });
  let relayB: ReturnType<typeof startOutboxRelay> | undefined;
  try {
    const orderId = uniqueName("o");
    const first = createEnvelope(orderFulfilled, { orderId, userId: "u-1" }, context);
    const second = createEnvelope(orderFulfilled, { orderId, userId: "u-1" }, context);
    await sql.transaction((tx) => appendToOutbox(tx, first));
    relayA.nudge();
    await firstEntered;
    await sql.transaction((tx) => appendToOutbox(tx, second));
    relayB = startOutboxRelay({ sql, eventLog: logOf("b", false), pollIntervalMs: 60_000 });
    relayB.nudge();
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(published.length, 0, "B waits while A's batch is in flight");
    releaseFirst();
    const started = Date.now();
    while (published.length < 2) {
      assert.ok(Date.now() - started < 5_000, `both events published, got ${JSON.stringify(published)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(published.map((p) => p.split(":")[1]), [first.eventId, second.eventId], "id order");
  } finally {
    await relayA.stop();
    await relayB?.stop();
    await inner.close();
    await sql.close();
    await db.drop();
  }
});
