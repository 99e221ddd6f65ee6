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
import { stopProcesses } from "../../scripts/platform_processes.ts";

const STOP_TIMEOUT_MS = 15_000;

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
const children = processes.map(([name, script, env]) => {
  const flags = profileDir !== undefined && PROFILED.has(name)
    ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}/${name}`]
    : [];
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...flags, script],
    env,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  process.status.then((status) => {
    if (!stopping) console.error(`lean platform: ${name} exited with code ${status.code}`);
  });
  return { name, process };
});

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    stopping = true;
    await stopProcesses(children.map((child) => child.process), STOP_TIMEOUT_MS);
    Deno.exit(0);
  });
}
console.log(`lean platform: started ${children.map((c) => c.name).join(", ")}`);
// Runs until a signal stops everything; the timer keeps the process alive.
for (;;) await new Promise((resolve) => setTimeout(resolve, 60_000));
