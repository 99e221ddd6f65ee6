/**
 * @module
 * Process entry for the e-commerce bench's **lean** platform (`BV_BENCH_PLATFORM=lean`): only what the
 * e-commerce scenarios touch — the payment gateway and east's security, e-commerce and ingress processes —
 * instead of `start:infra`'s 16. It exists to tell "the machine is full" from "our code is slow": on two cores
 * the other 12 deployables and west's broker traffic take CPU the measured path then lacks. The full platform
 * stays the default; report both.
 *
 * `BV_BENCH_PROFILE_DIR`, when set, runs the e-commerce and ingress processes with `--cpu-prof` into
 * `<dir>/<process>/` (written when they exit), so a bench run doubles as a profile under the same load.
 * SIGTERM/SIGINT stop every process (each drains) and exit 0. East's ingress answers `/readyz` only when all
 * six east deployables do, so readiness here is its `/healthz` plus the others' `/readyz`.
 */
import { loadConfigOrExit } from "../../shared/config/config.ts";
import { ensureDatabase } from "../../shared/adapters/postgres/provision.ts";
import { ensureVhost } from "../../shared/adapters/amqp/provision.ts";
import { ensureInternalSigningKey, Supervisor } from "../../scripts/platform_processes.ts";

const STOP_TIMEOUT_MS = 15_000;

// E-commerce needs it; the bench's startPlatform passes one, and a run by hand gets one here.
ensureInternalSigningKey();
const config = loadConfigOrExit();
const east = config.regions.east;
const profileDir = Deno.env.get("BV_BENCH_PROFILE_DIR");
const PROFILED = new Set(["ecommerce-east", "ingress-east"]);

await ensureDatabase(config.BV_PG_URL, east.pgDatabase);
await ensureVhost(east.amqpVhost);

const baseEnv = { ...Deno.env.toObject(), BV_MODE: "infra" };
const processes: [string, string, Record<string, string>][] = [
  ["payment-gateway", "regional/ecommerce/payment/gateway/main.ts", baseEnv],
  ["security-east", "regional/security/main.ts", { ...baseEnv, BV_REGION: "east" }],
  ["ecommerce-east", "regional/ecommerce/main.ts", { ...baseEnv, BV_REGION: "east" }],
  ["ingress-east", "regional/ingress/main.ts", { ...baseEnv, BV_REGION: "east" }],
];
/**
 * Supervised like start:infra, but restarted 1 s after any exit it was not asked for (at most 5 times): the
 * e-commerce process can abort in Deno's `node:http2` when a gRPC client closes its session
 * (docs/ARCHITECTURE.md, "Known crash"), and without a restart every later scenario failed.
 */
const supervisor = new Supervisor({ label: "lean platform", restartsMax: 5, backoffMs: () => 1_000 });
const children = processes.map(([name, script, env]) =>
  supervisor.start(
    name,
    script,
    env,
    profileDir !== undefined && PROFILED.has(name) ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}/${name}`] : [],
  )
);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    await supervisor.stop(STOP_TIMEOUT_MS);
    Deno.exit(0);
  });
}
console.log(`lean platform: started ${children.map((c) => c.name).join(", ")}`);
// Runs until a signal stops everything; the timer keeps the process alive.
for (;;) await new Promise((resolve) => setTimeout(resolve, 60_000));
