/**
 * @module
 * Orders are single-writer (seed 000 section 5), and so is what an order reads, and auth: the writer region
 * publishes `SINGLE_WRITER_TABLES` (e-commerce's `REPLICATED_TABLES` — orders, payments, catalog, inventory, carts,
 * idempotency keys, partner webhook subscriptions and their delivery attempts — and auth's `REPLICATED_AUTH_TABLES`
 * — accounts, roles, refresh tokens, login counters), the other region subscribes. This module sets that up
 * (idempotently, after both schemas are migrated), promotes a replica to writer, re-syncs a former writer as the new
 * replica, and checks parity. The writer is data: the `order_writer` row in each region's database
 * (`regional/ecommerce/orders/writer`).
 */
import {
  advanceSequences,
  dropPublication,
  dropReplicationSlot,
  dropSubscriptionDetached,
  ensurePublication,
  ensureSubscription,
  refreshSubscription,
  replicationSlotState,
  subscribedTables,
  subscriptionState,
  tableShapes,
  walLevel,
  withPg,
} from "../../shared/adapters/postgres/replication.ts";
import { REPLICATED_TABLES } from "../../regional/ecommerce/orders/writer/mod.ts";
import { REPLICATED_AUTH_TABLES } from "../../regional/security/auth/mod.ts";
import { REPLICATED_WEBHOOK_TABLES } from "../../regional/ecommerce/webhooks/migrations.ts";
import { mergeReplicaAccounts } from "./_merge_replica_accounts.ts";
import { mergeReplicaWebhookSubscriptions } from "./_merge_replica_webhooks.ts";

export type OrderRegion = "east" | "west";
/** The URL of each region's database (not the admin database). */
export type OrderDatabases = Readonly<Record<OrderRegion, string>>;
export type ProgressLog = (line: string) => void;

/** The publication's name in the writer's database (publications are per database). */
export const ORDER_PUBLICATION = "bv_orders";
const INITIAL_SYNC_TIMEOUT_MS_DEFAULT = 60_000;

/**
 * Every table the writer region authors, parents first: auth's (accounts follow the order writer, so a logout or
 * a failover holds in both regions; signing keys stay per region) and e-commerce's.
 */
export const SINGLE_WRITER_TABLES: readonly string[] = Object.freeze([...REPLICATED_AUTH_TABLES, ...REPLICATED_TABLES]);

export function otherRegion(region: OrderRegion): OrderRegion {
  return region === "east" ? "west" : "east";
}

/**
 * Subscription, slot and `application_name` of the link from `writer` to its replica: named after the
 * region pair and the writer's database, so platforms sharing a cluster (journeys) never share a slot.
 */
export function orderSubscriptionName(dbs: OrderDatabases, writer: OrderRegion): string {
  const name = `${databaseOf(dbs[writer])}_orders_${writer}_to_${otherRegion(writer)}`;
  if (name.length > 63) throw new RangeError(`Subscription name "${name}" is longer than 63 characters`);
  return name;
}

/** Each region's `order_writer` row (undefined where there is none yet). */
export async function readWriterRoles(
  dbs: OrderDatabases,
): Promise<Record<OrderRegion, { writer: OrderRegion; epoch: number } | undefined>> {
  const read = (url: string) =>
    withPg(url, async (sql) => {
      const [row] = await sql`select writer_region, epoch from order_writer`;
      return row ? { writer: row.writer_region as OrderRegion, epoch: Number(row.epoch) } : undefined;
    });
  const [east, west] = await Promise.all([read(dbs.east), read(dbs.west)]);
  return { east, west };
}

/** Writes `region`'s row: `writer` writes orders from `epoch` on. */
export async function writeWriterRole(
  dbs: OrderDatabases,
  region: OrderRegion,
  writer: OrderRegion,
  epoch: number,
): Promise<void> {
  await withPg(dbs[region], (sql) =>
    sql`
    insert into order_writer (singleton, local_region, writer_region, epoch, changed_at)
    values (true, ${region}, ${writer}, ${epoch}, now())
    on conflict (singleton) do update
      set local_region = excluded.local_region, writer_region = excluded.writer_region, epoch = excluded.epoch,
        changed_at = now()`);
}

export interface EnsureOrderReplicationOptions {
  /** Make the writer's commits wait until the replica has applied them (RPO 0; see docs). @default false */
  readonly synchronous?: boolean;
  /** Bound on the initial copy. @default 60000 */
  readonly initialSyncTimeoutMs?: number;
  readonly log?: ProgressLog;
}

/**
 * Makes the recorded writer (east when none is recorded) publish the order tables and the other region
 * subscribe. Both schemas must be migrated (the services do that); their order tables must be identical.
 * Idempotent: an existing link is left as it is (enabled if it was disabled) unless the writer lost its slot,
 * which re-syncs the replica (outcome `re-synced`); resolves only once the link streams.
 */
export async function ensureOrderReplication(
  dbs: OrderDatabases,
  options: EnsureOrderReplicationOptions = {},
): Promise<{ writer: OrderRegion; subscription: string; outcome: string }> {
  const say = options.log ?? console.log;
  const roles = await readWriterRoles(dbs);
  const recorded = [roles.east, roles.west].filter((r) => r !== undefined).sort((a, b) => b.epoch - a.epoch)[0];
  const writer: OrderRegion = recorded?.writer ?? "east";
  const epoch = recorded?.epoch ?? 1;
  const replica = otherRegion(writer);
  const level = await walLevel(dbs[writer]);
  if (level !== "logical") {
    throw new Error(
      `Cannot publish orders from ${writer}: its server runs with wal_level=${level}; use the project clusters ` +
        `(scripts/postgres) or a server with wal_level=logical`,
    );
  }
  await assertSameShapes(dbs);
  await writeWriterRole(dbs, writer, writer, epoch);
  await writeWriterRole(dbs, replica, writer, epoch);
  await ensurePublication(dbs[writer], ORDER_PUBLICATION, SINGLE_WRITER_TABLES);
  const subscription = orderSubscriptionName(dbs, writer);
  const existing = await subscriptionState(dbs[replica], subscription);
  const slot = existing?.slot === undefined ? "missing" : await replicationSlotState(dbs[writer], existing.slot);
  const resync = existing !== undefined && (slot === "missing" || slot === "lost");
  if (resync) {
    await discardLostLink(dbs, writer, subscription, slot, say);
  } else if (existing !== undefined) {
    await addNewTables(dbs, writer, subscription, say);
  } else {
    // Each region's security made its own admin account at its first start, before any link, and people may have
    // signed up in the replica: its accounts are merged into the writer (the writer's win an e-mail both hold) and
    // copied back, rather than refused as a collision; so are partners' webhook subscriptions made there.
    await handOverOwnRows(dbs, writer, say);
    const rows = await orderRowCount(dbs[replica]);
    if (rows > 0) {
      throw new Error(
        `Cannot subscribe ${replica} to ${writer}'s tables: ${replica} already holds ${rows} rows of them that ` +
          `the initial copy would collide with; re-sync it (scripts/dr_drill.ts resyncAsReplica) or empty it`,
      );
    }
  }
  const created = await ensureSubscription({
    subscriberUrl: dbs[replica],
    publisherUrl: dbs[writer],
    publication: ORDER_PUBLICATION,
    subscription,
    copyData: true,
    synchronousCommit: options.synchronous ? "on" : "off",
  });
  const outcome = resync ? "re-synced" : created;
  await waitForInitialSync(
    { subscriberUrl: dbs[replica], publisherUrl: dbs[writer], subscription },
    options.initialSyncTimeoutMs ?? INITIAL_SYNC_TIMEOUT_MS_DEFAULT,
  );
  if (options.synchronous) await setSynchronousStandby(dbs[writer], subscription);
  say(
    `[orders] ${writer} → ${replica}: subscription ${subscription} ${outcome}${
      options.synchronous ? " (synchronous)" : ""
    }`,
  );
  return { writer, subscription, outcome };
}

/**
 * Commits in the writer's database wait until `standby` (a subscription's application_name) has applied
 * and flushed them; undefined turns that off. The database's `synchronous_commit` is `on`, the server's
 * default `local` (scripts/postgres/_config.ts), so other databases on the same cluster never wait.
 */
export async function setSynchronousStandby(writerDbUrl: string, standby: string): Promise<void> {
  const database = databaseOf(writerDbUrl);
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(standby)) throw new TypeError(`Bad standby name "${standby}"`);
  await withPg(writerDbUrl, async (sql) => {
    await sql.unsafe(`alter database "${database}" set synchronous_commit = on`);
    await sql.unsafe(`alter system set synchronous_standby_names = '"${standby}"'`);
    await sql`select pg_reload_conf()`;
  });
}

/**
 * Clears the server's `synchronous_standby_names` when it names `standby` (a setting of the whole cluster:
 * another platform's standby is left alone). Resolves true when it was cleared.
 */
export async function clearSynchronousStandby(dbUrl: string, standby: string): Promise<boolean> {
  return await withPg(dbUrl, async (sql) => {
    const [row] = await sql`select current_setting('synchronous_standby_names') as v`;
    if (String(row.v).replaceAll('"', "") !== standby) return false;
    await sql.unsafe(`alter system reset synchronous_standby_names`);
    await sql`select pg_reload_conf()`;
    return true;
  });
}

/**
 * Before the writer's services connect: their sessions take the database's `synchronous_commit = on`
 * (a setting read at connect time). It waits for nothing until a standby is named.
 */
export async function prepareSynchronousWriter(writerDbUrl: string): Promise<void> {
  const database = databaseOf(writerDbUrl);
  await withPg(writerDbUrl, (sql) => sql.unsafe(`alter database "${database}" set synchronous_commit = on`));
}

/**
 * Promotes `region` to order writer while the old writer may be dead: its subscription is dropped without
 * contacting the publisher, sequences move past the replicated rows, and the role row flips (epoch + 1).
 * The old writer's row is flipped too when it answers; otherwise {@linkcode resyncAsReplica} does it.
 */
export async function promoteOrderWriter(
  dbs: OrderDatabases,
  region: OrderRegion,
  log: ProgressLog = console.log,
): Promise<{ epoch: number; sequences: Record<string, number> }> {
  const old = otherRegion(region);
  const subscription = orderSubscriptionName(dbs, old);
  const dropped = await dropSubscriptionDetached(dbs[region], subscription);
  const sequences = await advanceSequences(dbs[region], SINGLE_WRITER_TABLES);
  const [own] = await withPg(dbs[region], (sql) => sql`select epoch from order_writer`);
  const epoch = (own ? Number(own.epoch) : 1) + 1;
  await writeWriterRole(dbs, region, region, epoch);
  await writeWriterRole(dbs, old, region, epoch).catch(() =>
    log(`[orders] ${old} unreachable; its role row flips at re-sync`)
  );
  log(`[orders] ${region} promoted to order writer (epoch ${epoch}; subscription ${dropped ? "dropped" : "absent"})`);
  return { epoch, sequences };
}

/**
 * Makes the former writer `region` a replica of the current writer: its role row flips first (its own
 * services stop writing orders), its synchronous-standby setting is cleared (its commits would otherwise
 * wait for a standby that no longer exists), the orders only it has are reported, its order tables are
 * emptied and copied from the writer (truncate-and-copy: simpler and safer than merging rows whose
 * history diverged), and it subscribes to the writer.
 */
export async function resyncAsReplica(
  dbs: OrderDatabases,
  region: OrderRegion,
  options: { readonly log?: ProgressLog; readonly initialSyncTimeoutMs?: number } = {},
): Promise<{ discardedOrderIds: string[]; subscription: string }> {
  const say = options.log ?? console.log;
  const writer = otherRegion(region);
  const roles = await readWriterRoles(dbs);
  const epoch = Math.max(roles.east?.epoch ?? 1, roles.west?.epoch ?? 1);
  // First: with its standby still named, every commit in this database would wait for a replica that is gone.
  await clearSynchronousStandby(dbs[region], orderSubscriptionName(dbs, region));
  await writeWriterRole(dbs, region, writer, epoch);
  // Its old publication and the slot its replica used are of no use any more; the slot would hold WAL.
  await dropPublication(dbs[region], ORDER_PUBLICATION);
  await dropReplicationSlot(dbs[region], orderSubscriptionName(dbs, region));
  const discardedOrderIds = await orderIdsMissingIn(dbs[region], dbs[writer]);
  if (discardedOrderIds.length > 0) {
    say(`[orders] ${region} holds ${discardedOrderIds.length} orders ${writer} never received; they are discarded`);
  }
  await withPg(dbs[region], (sql) => sql.unsafe(`truncate ${SINGLE_WRITER_TABLES.join(", ")}`));
  await ensurePublication(dbs[writer], ORDER_PUBLICATION, SINGLE_WRITER_TABLES);
  const subscription = orderSubscriptionName(dbs, writer);
  await dropSubscriptionDetached(dbs[region], subscription);
  await ensureSubscription({
    subscriberUrl: dbs[region],
    publisherUrl: dbs[writer],
    publication: ORDER_PUBLICATION,
    subscription,
    copyData: true,
    synchronousCommit: "off",
  });
  await waitForInitialSync(
    { subscriberUrl: dbs[region], publisherUrl: dbs[writer], subscription },
    options.initialSyncTimeoutMs ?? INITIAL_SYNC_TIMEOUT_MS_DEFAULT,
  );
  say(`[orders] ${region} re-synced as replica of ${writer} (subscription ${subscription})`);
  return { discardedOrderIds, subscription };
}

/** Order counts per region and the ids each lacks that the other has. */
export async function orderParity(
  dbs: OrderDatabases,
): Promise<{ east: number; west: number; missingInEast: string[]; missingInWest: string[] }> {
  const [east, west] = await Promise.all([orderIds(dbs.east), orderIds(dbs.west)]);
  return {
    east: east.size,
    west: west.size,
    missingInEast: [...west].filter((id) => !east.has(id)),
    missingInWest: [...east].filter((id) => !west.has(id)),
  };
}

/**
 * Removes every link between the two databases (subscriptions on both sides, their slots, publications),
 * so the databases can be dropped; a database with a subscription or a slot cannot be. Best effort.
 */
export async function teardownOrderReplication(dbs: OrderDatabases): Promise<void> {
  for (const writer of ["east", "west"] as const) {
    const name = orderSubscriptionName(dbs, writer);
    await dropSubscriptionDetached(dbs[otherRegion(writer)], name).catch(() => {});
    await dropReplicationSlot(dbs[writer], name).catch(() => {});
    await clearSynchronousStandby(dbs[writer], name).catch(() => {});
  }
}

async function assertSameShapes(dbs: OrderDatabases): Promise<void> {
  const [east, west] = await Promise.all([
    tableShapes(dbs.east, SINGLE_WRITER_TABLES),
    tableShapes(dbs.west, SINGLE_WRITER_TABLES),
  ]);
  for (const table of SINGLE_WRITER_TABLES) {
    if (east[table] !== west[table]) {
      throw new Error(`Table ${table} differs between east (${east[table]}) and west (${west[table]}); migrate both`);
    }
  }
}

/**
 * A link made when fewer tables were replicated (orders only, before catalog, inventory and carts joined, or
 * before the auth tables did): the replica's own rows of the new tables are discarded (the writer authors them now;
 * their ids would collide with the copy), then the subscription takes the new tables with their rows. Accounts and
 * webhook subscriptions are the exception: the replica's own are merged into the writer first, so the copy brings
 * them back.
 */
async function addNewTables(
  dbs: OrderDatabases,
  writer: OrderRegion,
  subscription: string,
  say: ProgressLog,
): Promise<void> {
  const replicaUrl = dbs[otherRegion(writer)];
  const have = new Set(await subscribedTables(replicaUrl, subscription));
  const missing = SINGLE_WRITER_TABLES.filter((table) => !have.has(table));
  if (missing.length === 0) return;
  await mergeOwnRows(dbs, writer, [...have], say);
  const rows = await withPg(replicaUrl, async (sql) => {
    const counts = missing.map((t) => `(select count(*) from ${t})`).join(" + ");
    const [row] = await sql.unsafe(`select ${counts} as n`);
    await sql.unsafe(`truncate ${missing.join(", ")}`);
    return Number(row.n);
  });
  await refreshSubscription(replicaUrl, subscription);
  say(`[orders] subscription ${subscription} now also replicates ${missing.join(", ")} (${rows} local rows discarded)`);
}

/**
 * Resolves once every table's initial copy is done and the apply worker streams: it runs in the replica and
 * holds its slot in the writer. Tables marked ready prove nothing on their own — a subscription whose apply
 * worker fails at every retry (its slot gone, a row conflict) keeps them ready forever.
 */
async function waitForInitialSync(
  link: { readonly subscriberUrl: string; readonly publisherUrl: string; readonly subscription: string },
  timeoutMs: number,
): Promise<void> {
  const started = Date.now();
  for (;;) {
    const state = await subscriptionState(link.subscriberUrl, link.subscription);
    const copied = state !== undefined && state.tablesTotal > 0 && state.tablesReady === state.tablesTotal;
    const slot = state?.slot === undefined ? "missing" : await replicationSlotState(link.publisherUrl, state.slot);
    if (copied && state.applying && slot === "streaming") return;
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `Subscription ${link.subscription}: not copied and streaming within ${timeoutMs} ms (${
          JSON.stringify({ ...state, slot })
        }); its workers' errors are in the replica's server log`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * The writer no longer has the replica's slot (its data was purged — `infra:down <writer> --purge` — or the
 * slot was dropped, or invalidated past `max_slot_wal_keep_size`): the subscription can never resume, and the
 * replica's rows are a copy of a history the writer may not hold any more. Drops the subscription without
 * touching the writer (its slot is gone) and empties the replica's replicated tables, reporting what the
 * writer lacks, so the subscription made next copies them afresh — the initial setup's rule (a replica holds
 * nothing the copy would collide with), and the same truncate-and-copy as {@linkcode resyncAsReplica}. The
 * replica's own writes are refused by the guard triggers, so the writer holds everything it authored — except the
 * accounts of a link made before auth replicated and the webhook subscriptions of one made before webhooks did, which
 * are merged into the writer first (as {@linkcode addNewTables}).
 */
async function discardLostLink(
  dbs: OrderDatabases,
  writer: OrderRegion,
  subscription: string,
  slot: "missing" | "lost",
  say: ProgressLog,
): Promise<void> {
  const replica = otherRegion(writer);
  const subscribed = await subscribedTables(dbs[replica], subscription);
  await mergeOwnRows(dbs, writer, subscribed, say);
  await dropSubscriptionDetached(dbs[replica], subscription);
  const [rows, lacking] = await Promise.all([
    orderRowCount(dbs[replica]),
    orderIdsMissingIn(dbs[replica], dbs[writer]),
  ]);
  await withPg(dbs[replica], (sql) => sql.unsafe(`truncate ${SINGLE_WRITER_TABLES.join(", ")}`));
  say(
    `[orders] ${writer}'s slot ${subscription} is ${slot} (purged, dropped or invalidated): ${replica} re-syncs; ` +
      `its ${rows} copied rows are discarded, ${lacking.length} orders the writer ${writer} lacks among them`,
  );
}

/**
 * Empties the auth and webhook tables of a region about to subscribe for the first time (the writer authors accounts
 * and partner subscriptions), once its own accounts and subscriptions are merged into the writer: the initial copy
 * brings them back. Its delivery attempts (history) are discarded with them.
 */
async function handOverOwnRows(dbs: OrderDatabases, writer: OrderRegion, say: ProgressLog): Promise<void> {
  await mergeOwnRows(dbs, writer, [], say);
  // Table names come from the frozen lists, never from input; truncate skips the guard triggers.
  const tables = [...REPLICATED_AUTH_TABLES, ...REPLICATED_WEBHOOK_TABLES];
  await withPg(dbs[otherRegion(writer)], (sql) => sql.unsafe(`truncate ${tables.join(", ")}`));
}

/**
 * Merges into the writer the rows the replica made on its own, of every table it does not yet get from the writer
 * (`subscribed`: the tables its subscription already carries). Not subscribed yet, so each account and partner
 * subscription in the replica is one it made itself (the guard let it write then); delivery attempts are history and
 * are discarded with the truncate that follows.
 */
async function mergeOwnRows(
  dbs: OrderDatabases,
  writer: OrderRegion,
  subscribed: readonly string[],
  say: ProgressLog,
): Promise<void> {
  if (!subscribed.includes("auth_users")) await mergeReplicaAccounts({ dbs, writer }, say);
  if (!subscribed.includes("webhook_subscriptions")) await mergeReplicaWebhookSubscriptions({ dbs, writer }, say);
}

function orderRowCount(url: string): Promise<number> {
  return withPg(url, async (sql) => {
    const counts = SINGLE_WRITER_TABLES.map((t) => `(select count(*) from ${t})`).join(" + ");
    return Number((await sql.unsafe(`select ${counts} as n`))[0].n);
  });
}

function orderIds(url: string): Promise<Set<string>> {
  return withPg(url, async (sql) => new Set((await sql`select id::text as id from orders`).map((r) => r.id as string)));
}

async function orderIdsMissingIn(from: string, to: string): Promise<string[]> {
  const [have, other] = await Promise.all([orderIds(from), orderIds(to)]);
  return [...have].filter((id) => !other.has(id));
}

function databaseOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}
