/**
 * Domain code talks to ports; only adapter folders import drivers (STYLE.md habit 3). Test support,
 * scripts and benchmarks may use drivers directly (benchmarks measure raw baselines).
 */
import assert from "node:assert/strict";
import { walk } from "./support/walk.ts";

const DRIVERS = [
  "kafkajs",
  "ioredis",
  "amqplib",
  "postgres",
  "mqtt",
  "aedes",
  "@electric-sql/pglite",
  "@grpc/grpc-js",
  "soap",
  "@platformatic/kafka",
];
const ALLOWED = /(^|\/)(adapters|testing|scripts|bench|tests|infra|tools|node_modules)\/|_test\.ts$/;
const IMPORT = /(?:from|import)\s*\(?\s*["'](?:npm:)?([^"']+)["']/g;

function driverOf(specifier: string): string | undefined {
  return DRIVERS.find((d) => specifier === d || specifier.startsWith(`${d}/`) || specifier.startsWith(`${d}@`));
}

Deno.test("no domain file imports a driver package", async () => {
  const root = new URL("../", import.meta.url).pathname;
  const offenders: string[] = [];
  let scanned = 0;
  for await (const path of walk(root, (p) => p.endsWith(".ts"))) {
    const relative = path.slice(root.length);
    if (ALLOWED.test(relative) || relative.startsWith(".")) continue;
    scanned++;
    const text = await Deno.readTextFile(path);
    for (const match of text.matchAll(IMPORT)) {
      const driver = driverOf(match[1]);
      if (driver) offenders.push(`${relative} imports ${driver}`);
    }
  }
  assert.ok(scanned > 20, `expected to scan the domain code, scanned ${scanned} files`);
  assert.deepEqual(offenders, []);
});

Deno.test("the driver-import rule catches a driver import (self-check)", () => {
  const sample =
    `import { Kafka } from "kafkajs";\nimport postgres from "npm:postgres@3";\nimport x from "./postgres_store.ts";`;
  const found = [...sample.matchAll(IMPORT)].map((m) => driverOf(m[1])).filter(Boolean);
  assert.deepEqual(found, ["kafkajs", "postgres"]);
});
