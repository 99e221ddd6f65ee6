/**
 * @module
 * One `select $1::int` through the SQL port on PostgreSQL (createPostgresSql) against raw postgres.js with
 * the same pool size. The raw client keeps postgres.js's own defaults otherwise (named prepared statements
 * for tagged templates); the port sends `unsafe(text, params)`, so any cost of that choice shows here.
 */
import postgres from "postgres";
import { createPostgresSql } from "../../shared/adapters/postgres/mod.ts";
import { realInfra } from "../../shared/testing/real_infra.ts";
import { compare, resultOf, type Scenario } from "../harness.ts";
import { hostPortOf } from "./_endpoints.ts";

/** Connections per pool and queries in flight: one per core and a little more to overlap the round trips. */
const POOL_SIZE = 4;

export const sqlPostgres: Scenario = {
  name: "sql_postgres",
  description:
    `select $1::int, ${POOL_SIZE} in flight: createPostgresSql().query vs raw postgres.js (pool of ${POOL_SIZE} each)`,
  async run(ctx) {
    // The query touches no table, so the admin database is enough and nothing needs cleaning up.
    const url = realInfra.postgresAdminUrl;
    await ctx.requireTcp(hostPortOf(url, 5432), "PostgreSQL");
    const port = createPostgresSql({ url, maxConnections: POOL_SIZE, connectTimeoutSec: 5 });
    const raw = postgres(url, { max: POOL_SIZE, connect_timeout: 5, idle_timeout: 30, onnotice: () => {} });
    let n = 0;
    try {
      const sides = await compare(
        {
          label: "createPostgresSql",
          op: async () => {
            const i = n++ % 1_000_000;
            const rows = await port.query<{ n: number }>`select ${i}::int as n`;
            if (rows[0]?.n !== i) throw new Error(`Port answered ${JSON.stringify(rows)} to ${i}`);
          },
        },
        {
          label: "postgres.js",
          op: async () => {
            const i = n++ % 1_000_000;
            const rows = await raw<{ n: number }[]>`select ${i}::int as n`;
            if (rows[0]?.n !== i) throw new Error(`postgres.js answered ${JSON.stringify(rows)} to ${i}`);
          },
        },
        { iterationsPerRound: 3_000, warmupPerRound: 300, concurrency: POOL_SIZE, timeCapMsPerRound: 3_000 },
      );
      return resultOf("sql_postgres", sides);
    } finally {
      await Promise.allSettled([port.close(), raw.end({ timeout: 5 })]);
    }
  },
};
