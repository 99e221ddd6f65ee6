import assert from "node:assert/strict";

/** Only these edge files may use Deno or node APIs: the Deno entry point, tests and test support. */
const EXEMPT = /^(main\.ts|.*_test\.ts|testing\/.*)$/;
const RUNTIME_SPECIFIC = [/\bDeno\./, /["']node:/, /["']npm:/, /from\s+["'](?:hono\/deno|hono\/bun)["']/];

Deno.test("edge code uses web-standard APIs only, so it can run on a Workers runtime", async () => {
  const root = new URL("./", import.meta.url);
  const offenders: string[] = [];
  let scanned = 0;
  async function scan(dir: URL, prefix: string): Promise<void> {
    for await (const item of Deno.readDir(dir)) {
      const relative = `${prefix}${item.name}`;
      if (item.isDirectory) await scan(new URL(`${item.name}/`, dir), `${relative}/`);
      else if (item.name.endsWith(".ts") && !EXEMPT.test(relative)) {
        scanned++;
        const text = await Deno.readTextFile(new URL(item.name, dir));
        for (const pattern of RUNTIME_SPECIFIC) {
          if (pattern.test(text)) offenders.push(`${relative} matches ${pattern}`);
        }
      }
    }
  }
  await scan(root, "");
  assert.ok(scanned >= 8, `expected to scan the edge code, scanned ${scanned} files`);
  assert.deepEqual(offenders, []);
});
