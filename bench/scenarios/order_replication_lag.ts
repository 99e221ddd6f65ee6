/**
 * @module
 * Order replication east → west on the project clusters (scripts/postgres), on databases unique to the run.
 *
 * `order_replication_lag`: an order transaction (orders + order_items + order_status_history, as placing an
 * order writes them) commits in east; the span is commit acknowledged → row visible to a `select` in west
 * (polled on its own connection, ~0.2 ms resolution). Baseline: the same through a raw publication of a
 * one-table plain insert on the same clusters (no triggers, one row).
 *
 * `order_commit_sync`: the cost of RPO 0 — the same order transaction's commit latency when east waits for
 * west to apply it (synchronous logical replication: `synchronous_standby_names` = the subscription) vs the
 * asynchronous link. Both sides run on the same clusters in the same run.
 */
import { createPostgresSql } from "../../shared/adapters/postgres/mod.ts";
import { dropDatabase, ensureDatabase } from "../../shared/adapters/postgres/provision.ts";
import {
  dropReplicationSlot,
  dropSubscriptionDetached,
  ensurePublication,
  ensureSubscription,
  withPg,
} from "../../shared/adapters/postgres/replication.ts";
import type { Sql } from "../../shared/ports/mod.ts";
import { migrate } from "../../shared/ports/sql_migrate.ts";
import { uniqueName } from "../../shared/testing/unique.ts";
import { ECOMMERCE_MIGRATIONS } from "../../regional/ecommerce/mod.ts";
import { clusterUrl, ensurePostgres } from "../../scripts/postgres/mod.ts";
import {
  ensureOrderReplication,
  type OrderDatabases,
  teardownOrderReplication,
} from "../../scripts/postgres/order_replication.ts";
import { createLatencyHistogram, type Measurement, mergeRounds, resultOf, type Scenario } from "../harness.ts";

const ROUNDS = 3;
const ITERATIONS_PER_ROUND = 300;
const WARMUP_PER_ROUND = 30;
const VISIBLE_TIMEOUT_MS = 5_000;
const PLAIN_SUBSCRIPTION_SUFFIX = "_plain";

/** One pair of databases (east, west) linked by the order subscription and a plain-table one. */
interface Pair {
  readonly dbs: OrderDatabases;
  readonly east: Sql;
  readonly west: Sql;
  readonly plainSubscription: string;
  close(): Promise<void>;
}

async function openPair(synchronous: boolean): Promise<Pair> {
  await Promise.all([ensurePostgres("east", { log: () => {} }), ensurePostgres("west", { log: () => {} })]);
  const id = uniqueName(synchronous ? "bvbsync" : "bvblag");
  const dbs: OrderDatabases = { east: clusterUrl("east", `${id}_east`), west: clusterUrl("west", `${id}_west`) };
  await ensureDatabase(clusterUrl("east"), `${id}_east`);
  await ensureDatabase(clusterUrl("west"), `${id}_west`);
  const plainSubscription = `${id}${PLAIN_SUBSCRIPTION_SUFFIX}`;
  if (synchronous) {
    await withPg(dbs.east, (sql) => sql.unsafe(`alter database "${id}_east" set synchronous_commit = on`));
  }
  const east = createPostgresSql({ url: dbs.east, maxConnections: 2 });
  const west = createPostgresSql({ url: dbs.west, maxConnections: 2 });
  const close = async () => {
    await Promise.allSettled([east.close(), west.close()]);
    await teardownOrderReplication(dbs);
    await dropSubscriptionDetached(dbs.west, plainSubscription).catch(() => {});
    await dropReplicationSlot(dbs.east, plainSubscription).catch(() => {});
    await dropDatabase(clusterUrl("west"), `${id}_west`);
    await dropDatabase(clusterUrl("east"), `${id}_east`);
  };
  try {
    const plain = "create table if not exists bench_plain (id uuid primary key, v int not null)";
    for (const sql of [east, west]) {
      await migrate(sql, ECOMMERCE_MIGRATIONS);
      await sql.exec(plain);
    }
    await ensureOrderReplication(dbs, { synchronous, log: () => {} });
    await ensurePublication(dbs.east, "bench_plain_pub", ["bench_plain"]);
    await ensureSubscription({
      subscriberUrl: dbs.west,
      publisherUrl: dbs.east,
      publication: "bench_plain_pub",
      subscription: plainSubscription,
      copyData: false,
      synchronousCommit: "off",
    });
    return { dbs, east, west, plainSubscription, close };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}

/** The writes of placing an order, in one transaction; resolves once the commit is acknowledged. */
async function commitOrder(east: Sql): Promise<string> {
  const id = crypto.randomUUID();
  const at = new Date();
  await east.transaction(async (tx) => {
    await tx.query`insert into orders (id, user_id, status, total_amount, currency, created_at, updated_at)
      values (${id}, 'bench-user', 'PENDING', '10.00', 'USD', ${at}, ${at})`;
    await tx.query`insert into order_items (order_id, line_no, product_id, qty, price)
      values (${id}, 1, ${crypto.randomUUID()}, 1, '10.00')`;
    await tx.query`insert into order_status_history (order_id, from_status, to_status, reason, actor, at)
      values (${id}, null, 'PENDING', 'placed', 'bench-user', ${at})`;
  });
  return id;
}

async function commitPlain(east: Sql): Promise<string> {
  const id = crypto.randomUUID();
  await east.query`insert into bench_plain (id, v) values (${id}, 1)`;
  return id;
}

async function waitVisible(west: Sql, table: "orders" | "bench_plain", id: string): Promise<void> {
  const started = performance.now();
  for (;;) {
    const rows = table === "orders"
      ? await west.query`select 1 from orders where id = ${id}`
      : await west.query`select 1 from bench_plain where id = ${id}`;
    if (rows.length > 0) return;
    if (performance.now() - started > VISIBLE_TIMEOUT_MS) throw new Error(`${table} ${id} not visible in west`);
  }
}

/** One round of `span()` samples into a histogram of µs, in the shape `mergeRounds` takes. */
async function round(label: string, span: () => Promise<number>): Promise<Measurement> {
  for (let i = 0; i < WARMUP_PER_ROUND; i++) await span();
  const histogram = createLatencyHistogram();
  const memoryBefore = Deno.memoryUsage();
  const started = performance.now();
  for (let i = 0; i < ITERATIONS_PER_ROUND; i++) histogram.recordValue(Math.max(0, Math.round((await span()) * 1000)));
  return {
    label,
    histogram,
    elapsedMs: performance.now() - started,
    capped: false,
    memoryBefore,
    memoryAfter: Deno.memoryUsage(),
  };
}

/** Subject and baseline in interleaved rounds (S B, B S, S B), merged per side. */
async function interleave(subject: [string, () => Promise<number>], baseline: [string, () => Promise<number>]) {
  const rounds: { s: Measurement[]; b: Measurement[] } = { s: [], b: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ["s", "b"] as const : ["b", "s"] as const;
    for (const side of order) {
      rounds[side].push(await round(...(side === "s" ? subject : baseline)));
    }
  }
  return { subject: mergeRounds(rounds.s), baseline: mergeRounds(rounds.b) };
}

export const orderReplicationLag: Scenario = {
  name: "order_replication_lag",
  description: "order committed in east → row visible in west (logical replication, async) vs a raw " +
    "one-table insert through its own publication on the same clusters",
  async run(ctx) {
    ctx.log("ensuring the east and west clusters and linking two fresh databases");
    const pair = await openPair(false);
    try {
      const lag = (commit: (sql: Sql) => Promise<string>, table: "orders" | "bench_plain") => async () => {
        const id = await commit(pair.east);
        const committed = performance.now();
        await waitVisible(pair.west, table, id);
        return performance.now() - committed;
      };
      const sides = await interleave(
        ["order commit → visible in west", lag(commitOrder, "orders")],
        ["plain insert → visible in west", lag(commitPlain, "bench_plain")],
      );
      return resultOf("order_replication_lag", sides);
    } finally {
      await pair.close();
    }
  },
};

export const orderCommitSync: Scenario = {
  name: "order_commit_sync",
  description: "order transaction commit latency in east waiting for west's apply (synchronous logical " +
    "replication, RPO 0) vs the asynchronous link, same clusters",
  async run(ctx) {
    ctx.log("linking a synchronous and an asynchronous pair of databases");
    const sync = await openPair(true);
    try {
      const async = await openPair(false);
      try {
        const commit = (sql: Sql) => async () => {
          const started = performance.now();
          await commitOrder(sql);
          return performance.now() - started;
        };
        const sides = await interleave(["commit, synchronous", commit(sync.east)], [
          "commit, asynchronous",
          commit(async.east),
        ]);
        return resultOf("order_commit_sync", sides);
      } finally {
        await async.close();
      }
    } finally {
      await sync.close();
    }
  },
};
