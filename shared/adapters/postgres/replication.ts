/**
 * @module
 * PostgreSQL logical replication, administered through plain connections: publications, subscriptions,
 * their slots, the state of the initial copy, table shapes (so both sides can be proven identical) and
 * sequence advancing at a promotion. Names are checked, never interpolated unchecked. Generic: which
 * tables and which regions is the caller's business (`scripts/postgres/order_replication.ts`).
 */
import postgres from "postgres";

const SAFE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/** Bound on one administrative statement; CREATE SUBSCRIPTION waits for the publisher to create the slot. */
const STATEMENT_TIMEOUT_MS = 30_000;

/** One publisher → subscriber link. */
export interface SubscriptionSpec {
  /** URL of the database the subscription lives in. */
  readonly subscriberUrl: string;
  /** URL of the published database (the subscriber's server connects to it; loopback here). */
  readonly publisherUrl: string;
  readonly publication: string;
  /** Also the slot name and the `application_name` the publisher sees (`synchronous_standby_names`). */
  readonly subscription: string;
  /** Copy the rows that exist before the first change is streamed. */
  readonly copyData: boolean;
  /** The subscriber's own commit durability; `on` when the publisher waits for it (synchronous). */
  readonly synchronousCommit: "on" | "off";
}

/** Runs `work` on a one-connection client; always closed. */
export async function withPg<T>(url: string, work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, {
    max: 1,
    connect_timeout: 5,
    onnotice: () => {},
    connection: { statement_timeout: STATEMENT_TIMEOUT_MS, application_name: "bitvelocity-admin" },
  });
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The server's `wal_level` (`logical` is needed to publish). */
export function walLevel(url: string): Promise<string> {
  return withPg(url, async (sql) => (await sql`select current_setting('wal_level') as v`)[0].v as string);
}

/** Creates publication `name` for `tables`, or makes an existing one publish exactly those tables. */
export async function ensurePublication(url: string, name: string, tables: readonly string[]): Promise<void> {
  const list = tables.map(checked).join(", ");
  await withPg(url, async (sql) => {
    const found = await sql`select 1 from pg_publication where pubname = ${checked(name)}`;
    if (found.length === 0) {
      await sql.unsafe(`create publication ${name} for table ${list}`).catch((error) => {
        if ((error as { code?: string }).code !== "42710") throw error; // created concurrently
      });
    } else {
      await sql.unsafe(`alter publication ${name} set table ${list}`);
    }
  });
}

export async function dropPublication(url: string, name: string): Promise<void> {
  await withPg(url, (sql) => sql.unsafe(`drop publication if exists ${checked(name)}`));
}

/** State of a subscription in the subscriber's database, or undefined when it does not exist. */
export interface SubscriptionState {
  readonly enabled: boolean;
  /** Its slot on the publisher; undefined once detached (`slot_name = none`). */
  readonly slot: string | undefined;
  /** Tables whose initial copy is done (`r` = ready) out of all subscribed tables. */
  readonly tablesReady: number;
  readonly tablesTotal: number;
  /** The apply worker runs (it does not while disabled or while the publisher is unreachable). */
  readonly applying: boolean;
  /** Errors the apply and table-sync workers hit since the subscription was made (`pg_stat_subscription_stats`). */
  readonly workerErrors: number;
}

export function subscriptionState(subscriberUrl: string, name: string): Promise<SubscriptionState | undefined> {
  return withPg(subscriberUrl, async (sql) => {
    const rows = await sql`
      select s.subenabled as enabled, s.subslotname as slot,
        (select count(*) from pg_subscription_rel r where r.srsubid = s.oid and r.srsubstate = 'r')::int as ready,
        (select count(*) from pg_subscription_rel r where r.srsubid = s.oid)::int as total,
        exists (select 1 from pg_stat_subscription w where w.subid = s.oid and w.relid is null and w.pid is not null)
          as applying,
        coalesce((select e.apply_error_count + e.sync_error_count from pg_stat_subscription_stats e
          where e.subid = s.oid), 0)::int as errors
      from pg_subscription s
      where s.subname = ${
      checked(name)
    } and s.subdbid = (select oid from pg_database where datname = current_database())`;
    if (rows.length === 0) return undefined;
    const row = rows[0];
    return {
      enabled: row.enabled,
      slot: row.slot ?? undefined,
      tablesReady: row.ready,
      tablesTotal: row.total,
      applying: row.applying,
      workerErrors: row.errors,
    };
  });
}

/**
 * A replication slot as its server sees it: `missing` (never made, dropped, or its server's data purged),
 * `lost` (invalidated: WAL it needed was removed past `max_slot_wal_keep_size`), or there and `streaming` to a
 * connected subscriber or `idle`. A subscription whose slot is `missing` or `lost` can never resume: its apply
 * worker fails at every retry, and only dropping and re-creating it (with a fresh copy) repairs it.
 */
export type SlotState = "missing" | "lost" | "idle" | "streaming";

/** What the server of `url` says of slot `slot` (see {@linkcode SlotState}). */
export function replicationSlotState(url: string, slot: string): Promise<SlotState> {
  return withPg(url, async (sql) => {
    const [row] = await sql`select active, wal_status from pg_replication_slots where slot_name = ${checked(slot)}`;
    if (row === undefined) return "missing";
    if (row.wal_status === "lost") return "lost";
    return row.active ? "streaming" : "idle";
  });
}

/** An existing subscription whose slot is gone from its publisher: it must be re-synced, not just enabled. */
export class SubscriptionSlotLostError extends Error {
  constructor(readonly subscription: string, readonly slotState: "missing" | "lost") {
    super(
      `Subscription ${subscription}: its slot is ${slotState} on the publisher, so it can never resume; drop it ` +
        `(dropSubscriptionDetached), empty the subscribed tables and create it again`,
    );
    this.name = "SubscriptionSlotLostError";
  }
}

/**
 * Creates the subscription unless it exists (then it is only enabled). A slot of the same name left on
 * the publisher by an earlier subscription that was dropped without it is dropped first, or CREATE would
 * fail; that is safe because a slot belongs to exactly one subscription by name. An existing subscription
 * whose slot the publisher no longer has is a {@linkcode SubscriptionSlotLostError}: "unchanged" would call a
 * link fine that never carries another row.
 */
export async function ensureSubscription(spec: SubscriptionSpec): Promise<"created" | "enabled" | "unchanged"> {
  const name = checked(spec.subscription);
  const state = await subscriptionState(spec.subscriberUrl, name);
  if (state !== undefined) {
    const slot = state.slot === undefined ? "missing" : await replicationSlotState(spec.publisherUrl, state.slot);
    if (slot === "missing" || slot === "lost") throw new SubscriptionSlotLostError(name, slot);
    if (state.enabled) return "unchanged";
    await withPg(spec.subscriberUrl, (sql) => sql.unsafe(`alter subscription ${name} enable`));
    return "enabled";
  }
  await dropReplicationSlot(spec.publisherUrl, name);
  const conninfo = conninfoOf(spec.publisherUrl, name);
  await withPg(spec.subscriberUrl, (sql) =>
    sql.unsafe(
      `create subscription ${name} connection '${conninfo}' publication ${checked(spec.publication)} ` +
        `with (slot_name = '${name}', copy_data = ${spec.copyData}, synchronous_commit = '${spec.synchronousCommit}')`,
    ));
  return "created";
}

/** The tables a subscription has (any sync state), by name. */
export function subscribedTables(subscriberUrl: string, name: string): Promise<string[]> {
  return withPg(subscriberUrl, async (sql) => {
    const rows = await sql`
      select c.relname as t from pg_subscription s
        join pg_subscription_rel r on r.srsubid = s.oid
        join pg_class c on c.oid = r.srrelid
      where s.subname = ${
      checked(name)
    } and s.subdbid = (select oid from pg_database where datname = current_database())
      order by 1`;
    return rows.map((row) => row.t as string);
  });
}

/**
 * Makes an existing subscription take the tables its publication gained since (their rows are copied);
 * the tables it already has are not copied again. Cannot run in a transaction (PostgreSQL's rule).
 */
export async function refreshSubscription(subscriberUrl: string, name: string): Promise<void> {
  await withPg(subscriberUrl, (sql) => sql.unsafe(`alter subscription ${checked(name)} refresh publication`));
}

/** Disables the subscription: its apply worker stops, its slot on the publisher stays (and keeps WAL). */
export async function disableSubscription(subscriberUrl: string, name: string): Promise<void> {
  await withPg(subscriberUrl, (sql) => sql.unsafe(`alter subscription ${checked(name)} disable`));
}

/**
 * Drops the subscription without touching the publisher (which may be down): disable, detach the slot,
 * drop. The slot is left on the publisher; {@linkcode dropReplicationSlot} removes it once it is back.
 */
export async function dropSubscriptionDetached(subscriberUrl: string, name: string): Promise<boolean> {
  const state = await subscriptionState(subscriberUrl, name);
  if (state === undefined) return false;
  await withPg(subscriberUrl, async (sql) => {
    if (state.enabled) await sql.unsafe(`alter subscription ${checked(name)} disable`);
    await sql.unsafe(`alter subscription ${checked(name)} set (slot_name = none)`);
    await sql.unsafe(`drop subscription ${checked(name)}`);
  });
  return true;
}

/**
 * Drops slot `name` on the server of `url` if it exists, ending the WAL sender holding it first — again
 * while it is held: an enabled subscription's apply worker reconnects within `wal_retrieve_retry_interval`
 * and a new sender takes the slot before the drop.
 */
export async function dropReplicationSlot(url: string, name: string): Promise<boolean> {
  return await withPg(url, async (sql) => {
    for (let attempt = 0;; attempt++) {
      const slots = await sql`select active_pid from pg_replication_slots where slot_name = ${checked(name)}`;
      if (slots.length === 0) return false; // none, or gone meanwhile
      // Waits (up to 5 s) until the sender has exited, so the slot is free before the subscriber reconnects.
      if (slots[0].active_pid !== null) await sql`select pg_terminate_backend(${slots[0].active_pid}, 5000)`;
      try {
        await sql`select pg_drop_replication_slot(${name})`;
        return true;
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code === "42704") return false; // gone meanwhile
        // 55006: still active — a new sender took it between the two statements.
        if (code !== "55006" || attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  });
}

/** Column list (name, type, nullability) and primary key of each table, as comparable text. */
export function tableShapes(url: string, tables: readonly string[]): Promise<Record<string, string>> {
  return withPg(url, async (sql) => {
    const shapes: Record<string, string> = {};
    for (const table of tables) {
      const columns = await sql`
        select a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || (case when a.attnotnull then ' not null' else '' end) as c
        from pg_attribute a
        where a.attrelid = ${checked(table)}::regclass and a.attnum > 0 and not a.attisdropped
        order by a.attnum`;
      const [pk] = await sql`
        select coalesce(pg_get_constraintdef(oid), '') as pk from pg_constraint
        where conrelid = ${table}::regclass and contype = 'p'`;
      shapes[table] = `${columns.map((c) => c.c).join(", ")}; ${pk?.pk ?? "no primary key"}`;
    }
    return shapes;
  });
}

/**
 * Moves every sequence owned by a column of `tables` past the largest value present, so rows written
 * after a promotion do not collide with replicated ones (logical replication does not carry sequences).
 */
export function advanceSequences(url: string, tables: readonly string[]): Promise<Record<string, number>> {
  return withPg(url, async (sql) => {
    const advanced: Record<string, number> = {};
    for (const table of tables) {
      const owned = await sql`
        select a.attname as column, pg_get_serial_sequence(${checked(table)}, a.attname) as seq
        from pg_attribute a where a.attrelid = ${table}::regclass and a.attnum > 0 and not a.attisdropped
          and pg_get_serial_sequence(${table}, a.attname) is not null`;
      for (const { column, seq } of owned) {
        const [row] = await sql.unsafe(
          `select setval('${seq}', greatest((select coalesce(max(${checked(column)}), 0) from ${table}), ` +
            `(select last_value from ${seq}), 1)) as v`,
        );
        advanced[seq] = Number(row.v);
      }
    }
    return advanced;
  });
}

/** `host=… port=… dbname=… user=… application_name=…` for a subscription's connection to `url`. */
function conninfoOf(url: string, applicationName: string): string {
  const parsed = new URL(url);
  const parts = {
    host: parsed.hostname,
    port: parsed.port || "5432",
    dbname: decodeURIComponent(parsed.pathname.slice(1)) || "postgres",
    user: decodeURIComponent(parsed.username) || "postgres",
    application_name: applicationName,
  };
  for (const value of Object.values(parts)) {
    if (!/^[A-Za-z0-9_.\-]+$/.test(value)) throw new TypeError(`Cannot use "${value}" in a subscription connection`);
  }
  return Object.entries(parts).map(([key, value]) => `${key}=${value}`).join(" ");
}

function checked(name: string): string {
  if (!SAFE_NAME.test(name)) {
    throw new TypeError(`Cannot use "${name}" as a SQL name: use lower-case letters, digits and "_" (63 at most)`);
  }
  return name;
}
