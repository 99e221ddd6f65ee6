/**
 * @module
 * `deno task start:infra`: every deployable as its own process per region, on the real services. Brings
 * Kafka up first when it is not running (both regions' clusters), creates each region's Postgres database
 * and RabbitMQ vhost when missing, starts the processes, waits for every `/readyz`, and prints the table of
 * endpoints. SIGINT/SIGTERM stop the processes (each drains); Kafka keeps running (`deno task infra:down`).
 */
import { type Config, loadConfigOrExit, REGIONS, SERVICES } from "../shared/config/config.ts";
import { ensureDatabase } from "../shared/adapters/postgres/provision.ts";
import { ensureVhost } from "../shared/adapters/amqp/provision.ts";
import { ensureKafka, ensureMirrorMaker } from "./kafka/mod.ts";
import { ensurePostgres, isProjectCluster, projectClusterEnv } from "./postgres/mod.ts";
import { prepareOrderReplication, setUpOrderReplication } from "./postgres/infra_replication.ts";
import { endpointsTable } from "./endpoints_table.ts";
import {
  ensureDevelopmentWebhookEgress,
  ensureInternalSigningKey,
  type Supervised,
  Supervisor,
} from "./platform_processes.ts";

interface Child {
  readonly deployable: Supervised;
  readonly readyUrl: string;
}

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
/** A process that keeps crashing is given up on after 5 restarts (backoff 1 s doubling to 16 s). */
const supervisor = new Supervisor({
  label: "start:infra",
  restartsMax: 5,
  backoffMs: (restart) => 1_000 * 2 ** Math.min(restart - 1, 4),
});

/** Starts a deployable under the supervisor: a crash (not a stop we asked for) restarts it with backoff. */
function spawn(name: string, script: string, env: Record<string, string>, readyUrl: string): Child {
  return { deployable: supervisor.start(name, script, env), readyUrl };
}

async function waitReady(children: readonly Child[]): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const pending = new Set(children);
  while (pending.size > 0) {
    if (Date.now() > deadline) {
      throw new Error(
        `Not ready after ${READY_TIMEOUT_MS} ms: ${[...pending].map((c) => c.deployable.name).join(", ")}`,
      );
    }
    await Promise.all([...pending].map(async (child) => {
      try {
        const response = await fetch(child.readyUrl, { signal: AbortSignal.timeout(2_000) });
        await response.body?.cancel();
        if (response.ok) pending.delete(child);
      } catch {
        // Not listening yet.
      }
    }));
    if (pending.size > 0) await new Promise((r) => setTimeout(r, 250));
  }
}

async function prepareInfrastructure(config: Config): Promise<void> {
  console.log("start:infra: checking Kafka and each region's PostgreSQL (east and west)…");
  await Promise.all([
    ...REGIONS.map((region) => ensureKafka(region)),
    // A region on its project cluster (the default) gets that cluster started (initdb on first use).
    ...REGIONS.filter((region) => isProjectCluster(region, config.regions[region].pgAdminUrl))
      .map((region) => ensurePostgres(region)),
  ]);
  // Cross-region copies of the selected topics (MirrorMaker 2) start beside the services, not before them: no
  // regional service needs them to be ready, and a start takes 10–20 s.
  ensureMirrorMaker().catch((error) => console.error(`start:infra: MirrorMaker 2 is not running: ${error.message}`));
  for (const region of REGIONS) {
    const endpoints = config.regions[region];
    await ensureDatabase(endpoints.pgAdminUrl, endpoints.pgDatabase);
    await ensureVhost(endpoints.amqpVhost);
  }
}

// Unless a server was chosen (BV_PG_URL or BV_<REGION>_PG_URL), each region runs on its own project
// cluster; set here so the children inherit it.
for (const [name, value] of Object.entries(projectClusterEnv(Deno.env.toObject()))) Deno.env.set(name, value);
// Every e-commerce process signs and verifies forwarded sensor batches with it: one key per start unless one is set.
ensureInternalSigningKey();
// Development tooling: partner receivers on localhost get their webhooks unless BV_WEBHOOK_EGRESS says otherwise.
ensureDevelopmentWebhookEgress();
const config = loadConfigOrExit();
const host = config.connectHost;
const children: Child[] = [];
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    console.log(`start:infra: ${signal}: stopping ${children.length} processes…`);
    await supervisor.stop(STOP_TIMEOUT_MS);
    Deno.exit(0);
  });
}
try {
  await prepareInfrastructure(config);
  await prepareOrderReplication(config);
  const baseEnv = { ...Deno.env.toObject(), BV_MODE: "infra" };
  children.push(
    spawn(
      "payment-gateway",
      "regional/ecommerce/payment/gateway/main.ts",
      baseEnv,
      `http://${host}:${config.BV_PAYMENT_GATEWAY_PORT}/soap/payment?wsdl`,
    ),
  );
  for (const region of REGIONS) {
    const endpoints = config.regions[region];
    for (const service of SERVICES) {
      children.push(
        spawn(
          `${service}-${region}`,
          `regional/${service}/main.ts`,
          { ...baseEnv, BV_REGION: region },
          `http://${host}:${endpoints.servicePorts[service]}/readyz`,
        ),
      );
    }
    children.push(
      spawn(
        `ingress-${region}`,
        "regional/ingress/main.ts",
        { ...baseEnv, BV_REGION: region },
        `http://${host}:${endpoints.ingressPort}/readyz`,
      ),
    );
  }
  children.push(spawn("edge", "edge/main.ts", baseEnv, `http://${host}:${config.BV_EDGE_PORT}/readyz`));
  const started = performance.now();
  await waitReady(children);
  // After the services have migrated both schemas: the writer publishes the order tables, the other subscribes.
  await setUpOrderReplication(config);
  console.log(`\n${endpointsTable(config, "infra")}\n`);
  console.log(`start:infra: all ${children.length} processes ready in ${Math.round(performance.now() - started)} ms`);
  // Runs until a signal stops everything (the handlers above exit the process); the timer keeps it alive.
  for (;;) await new Promise((resolve) => setTimeout(resolve, 60_000));
} catch (error) {
  console.error(`start:infra: ${(error as Error).message}`);
  await supervisor.stop(STOP_TIMEOUT_MS);
  Deno.exit(1);
}
