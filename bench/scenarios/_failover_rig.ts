/**
 * @module
 * The rig of `edge_failover`: two fake regions, east and west, each its own process
 * (`_failover_region.ts`, so a kill is a real SIGKILL: sockets reset by the kernel, nothing flushed), and
 * the edge (`_failover_edge.ts`) in a worker thread in front of both. A killed region restarts on the same
 * port, as a restarted ingress would, so the edge's configuration never changes.
 */
import { nextMessage } from "./_worker.ts";

export type RegionName = "east" | "west";
export const REGION_NAMES: readonly RegionName[] = ["east", "west"];

const REGION_SCRIPT = new URL("./_failover_region.ts", import.meta.url).pathname;
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const EXIT_TIMEOUT_MS = 5_000;
const HEALTH_TIMEOUT_MS = 1_000;

interface RegionProcess {
  readonly child: Deno.ChildProcess;
  readonly port: number;
}

export interface FailoverRig {
  readonly edgeUrl: string;
  readonly regionUrls: Readonly<Record<RegionName, string>>;
  /** SIGKILLs the region's process and waits until it is reaped. */
  kill(name: RegionName): Promise<void>;
  /** Starts the region again on its port; resolves (with `performance.now()`) once it listens. */
  restart(name: RegionName): Promise<number>;
  /** The edge's view of each region, from its `/readyz` (false on any error). */
  edgeHealthy(): Promise<Record<string, boolean>>;
  stop(): Promise<void>;
}

/** Spawns one region process; resolves once it printed its port (so it accepts connections). */
async function spawnRegion(name: RegionName, port: number): Promise<RegionProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    // No config: the script imports nothing, and skipping the project's config keeps a restart short.
    args: ["run", "--no-config", "--allow-net=127.0.0.1", REGION_SCRIPT, name, String(port)],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const first = await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`region ${name} did not listen within ${START_TIMEOUT_MS} ms`)),
          START_TIMEOUT_MS,
        );
      }),
    ]);
    const line = first.value?.trim() ?? "";
    if (!line.startsWith("{")) throw new Error(`region ${name} printed "${line}" instead of its port`);
    // Keep draining stdout so the child never blocks on a full pipe.
    void (async () => {
      while (!(await reader.read().catch(() => ({ done: true }))).done) { /* drain */ }
    })();
    return { child, port: JSON.parse(line).port as number };
  } catch (error) {
    await killAndReap(child).catch(() => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

async function killAndReap(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already exited.
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    child.status,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`process ${child.pid} not reaped after SIGKILL`)), EXIT_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Both regions, then the edge in front of them (east first: the preference order of production). */
export async function startFailoverRig(): Promise<FailoverRig> {
  const processes = new Map<RegionName, RegionProcess>();
  const edge = new Worker(new URL("./_failover_edge.ts", import.meta.url), { type: "module" });
  const stop = async () => {
    try {
      edge.postMessage("stop");
      await nextMessage(edge, STOP_TIMEOUT_MS);
    } finally {
      edge.terminate();
      await Promise.allSettled([...processes.values()].map((p) => killAndReap(p.child)));
    }
  };
  try {
    for (const name of REGION_NAMES) processes.set(name, await spawnRegion(name, 0));
    const url = (name: RegionName) => `http://127.0.0.1:${processes.get(name)!.port}`;
    const regionUrls = { east: url("east"), west: url("west") };
    edge.postMessage({ regions: REGION_NAMES.map((name) => ({ name, url: regionUrls[name] })) });
    const { edgePort } = await nextMessage<{ edgePort: number }>(edge, START_TIMEOUT_MS);
    const edgeUrl = `http://127.0.0.1:${edgePort}`;
    return {
      edgeUrl,
      regionUrls,
      kill: (name) => killAndReap(processes.get(name)!.child),
      restart: async (name) => {
        processes.set(name, await spawnRegion(name, processes.get(name)!.port));
        return performance.now();
      },
      edgeHealthy: async () => {
        try {
          const response = await fetch(`${edgeUrl}/readyz`, { signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
          const body = await response.json() as { regions?: { name: string; healthy: boolean }[] };
          return Object.fromEntries((body.regions ?? []).map((r) => [r.name, r.healthy]));
        } catch {
          return {};
        }
      },
      stop,
    };
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
}
