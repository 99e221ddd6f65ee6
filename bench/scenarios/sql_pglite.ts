/**
 * @module
 * One `select $1::int` through the SQL port on PGlite (createPgliteSql: a FIFO lock, row normalisation)
 * against raw `PGlite.query` on a second in-memory instance. PGlite has a single connection, so one query
 * at a time on both sides.
 */
import { PGlite } from "@electric-sql/pglite";
import { createPgliteSql } from "../../shared/adapters/pglite/mod.ts";
import { compare, resultOf, type Scenario } from "../harness.ts";

export const sqlPglite: Scenario = {
  name: "sql_pglite",
  description: "select $1::int, one at a time: createPgliteSql().query vs raw PGlite.query (in-memory instances)",
  async run(ctx) {
    const started = performance.now();
    // Booted one after the other: each boot compiles WASM and takes a core for a few seconds.
    const port = await createPgliteSql();
    const raw = await PGlite.create();
    ctx.log(`two PGlite instances booted in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    let n = 0;
    try {
      const sides = await compare(
        {
          label: "createPgliteSql",
          op: async () => {
            const i = n++ % 1_000_000;
            const rows = await port.query<{ n: number }>`select ${i}::int as n`;
            if (rows[0]?.n !== i) throw new Error(`Port answered ${JSON.stringify(rows)} to ${i}`);
          },
        },
        {
          label: "PGlite",
          op: async () => {
            const i = n++ % 1_000_000;
            const { rows } = await raw.query<{ n: number }>("select $1::int as n", [i]);
            if (rows[0]?.n !== i) throw new Error(`PGlite answered ${JSON.stringify(rows)} to ${i}`);
          },
        },
        { iterationsPerRound: 2_000, warmupPerRound: 200, concurrency: 1, timeCapMsPerRound: 3_000 },
      );
      return resultOf("sql_pglite", sides);
    } finally {
      await Promise.allSettled([port.close(), raw.close()]);
    }
  },
};
