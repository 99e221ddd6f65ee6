/** The hub's tail on a stand-in database whose queries can be held: one tail query at a time. */
import assert from "node:assert/strict";
import type { Sql } from "../../../shared/ports/mod.ts";
import { createNotificationHub } from "./hub.ts";

Deno.test("the hub's tail runs one query at a time: ticks while the database is slow are skipped, not piled up", async () => {
  let tailQueries = 0;
  const held: ((rows: unknown[]) => void)[] = [];
  const sql = {
    query: (strings: TemplateStringsArray) => {
      const text = strings.join("?");
      if (text.includes("max(id)")) return Promise.resolve([{ id: "0" }]);
      tailQueries++;
      // The database is slow: the tail query is answered only when the test says so.
      return new Promise((resolve) => held.push(resolve));
    },
  } as unknown as Sql;
  const hub = await createNotificationHub({ sql, tailIntervalMs: 10 });
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(tailQueries, 1, "about 20 ticks, one query in flight");
    held.shift()!([]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(tailQueries, 2, "the next tick after the answer runs the next query");
  } finally {
    for (const resolve of held) resolve([]);
    await hub.close();
  }
});
