/**
 * Journey: `deno task start:infra` runs every deployable as its own process per region on the real
 * services. All `/readyz` turn green; killing the east Kafka broker turns the dependent `/readyz` red
 * within 5 s and green again within 15 s after it restarts, with no Deno process restarted and no
 * acknowledged record lost.
 */
import assert from "node:assert/strict";
import { SERVICES } from "../shared/config/config.ts";
import { createKafkaEventLog } from "../shared/adapters/kafka/mod.ts";
import { uniqueName } from "../shared/testing/unique.ts";
import { realInfra } from "../shared/testing/real_infra.ts";
import { ensureKafka } from "../scripts/kafka/mod.ts";
import { killKafka } from "./support/kafka_chaos.ts";
import { call, dropIsolatedInfra, isolatedInfraEnv, startPlatform } from "./support/platform.ts";

/** Deployables whose readiness includes the region's Kafka. */
const KAFKA_DEPENDENT = ["ecommerce", "chat", "iot", "social", "ops"] as const;

// deno-lint-ignore no-explicit-any -- the /readyz body is asserted field by field.
async function readyz(url: string): Promise<{ status: number; body: any }> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3_000) });
    return { status: response.status, body: await response.json() };
  } catch (error) {
    return { status: 0, body: { error: String(error) } };
  }
}

async function pollUntil(what: string, predicate: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (!(await predicate())) {
    if (performance.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return performance.now() - started;
}

Deno.test({
  name:
    "deno task start:infra: all /readyz green; Kafka broker kill turns /readyz red ≤5 s, green ≤15 s, loses nothing",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const id = uniqueName("bvj");
    const env = isolatedInfraEnv(id, 2);
    const platform = await startPlatform("scripts/start_infra.ts", env);
    const topic = `${id}.acked`;
    const log = createKafkaEventLog({ brokers: realInfra.kafkaBrokers, clientId: `${id}-journey` });
    try {
      const readyMs = await platform.waitReady(120_000);
      console.log(`start:infra ready in ${Math.round(readyMs)} ms`);

      const email = `grace-${id}@journey.test`;
      const signup = await call(`${platform.edgeUrl}/api/v1/auth/signup`, {
        body: { email, password: "correct horse battery" },
      });
      assert.equal(signup.status, 201, JSON.stringify(signup.body));
      const jwks = await call(`${platform.edgeUrl}/.well-known/jwks.json`);
      assert.equal(jwks.status, 200);
      assert.ok(jwks.body.keys.length >= 1 && jwks.body.keys.every((k: { d?: string }) => k.d === undefined));

      // Acknowledged records before the broker dies.
      await log.ensureTopics([{ name: topic, partitions: 3 }]);
      const acked = Array.from({ length: 50 }, (_, i) => ({ key: `k${i % 7}`, value: `v${i}` }));
      await log.publish(topic, acked);

      const eastPorts = (await import("../shared/config/config.ts")).loadConfig(env).regions.east.servicePorts;
      const urls = KAFKA_DEPENDENT.map((s) => `http://127.0.0.1:${eastPorts[s]}/readyz`);
      const pids = await Promise.all(
        SERVICES.map(async (s) => (await call(`http://127.0.0.1:${eastPorts[s]}/healthz`)).status),
      );
      assert.ok(pids.every((status) => status === 200));

      await killKafka("east");
      const redMs = await pollUntil("dependent /readyz red", async () => {
        const all = await Promise.all(urls.map(readyz));
        return all.every((r) => r.status === 503 && r.body.checks?.kafka?.ok === false);
      }, 5_000);
      console.log(`kafka down → dependent /readyz red in ${Math.round(redMs)} ms`);
      // Security does not use Kafka and stays ready.
      assert.equal((await readyz(`http://127.0.0.1:${eastPorts.security}/readyz`)).status, 200);

      await ensureKafka("east");
      const greenMs = await pollUntil("dependent /readyz green", async () => {
        const all = await Promise.all(urls.map(readyz));
        return all.every((r) => r.status === 200);
      }, 15_000);
      console.log(`kafka back → dependent /readyz green in ${Math.round(greenMs)} ms`);

      // Nothing acknowledged was lost.
      const seen: string[] = [];
      const sub = await log.subscribe({
        groupId: `${id}-verify`,
        topics: [topic],
        from: "earliest",
        handler: (record) => {
          seen.push(record.value);
          return Promise.resolve();
        },
      });
      await pollUntil("acknowledged records consumed", () => Promise.resolve(seen.length >= acked.length), 30_000);
      await sub.close();
      assert.deepEqual([...new Set(seen)].sort(), acked.map((r) => r.value).sort());
    } finally {
      await log.close().catch(() => {});
      await ensureKafka("east").catch(() => {});
      assert.equal(await platform.stop(), 0, await platform.tail());
      await dropIsolatedInfra(id);
    }
  },
});
