/**
 * @module
 * CPU time of the platform's processes, for "CPU ms per operation" next to the latencies: latency on a
 * shared 2-core machine moves with the neighbours, CPU spent per request much less. A process is found by
 * the TCP port it listens on (`ss -ltnp`), its CPU read from `/proc/<pid>/stat` (user + system time of
 * every thread, in clock ticks). Linux only; on anything else the meter reports nothing.
 */

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on every Linux we run on). */
const CLOCK_TICKS_PER_SEC = 100;
const SS_TIMEOUT_MS = 5_000;

/** The pid of the process listening on `port`, or undefined when none is (or `ss` is unavailable). */
export async function pidListeningOn(port: number): Promise<number | undefined> {
  try {
    const { stdout } = await new Deno.Command("ss", {
      args: ["-ltnpH", `sport = :${port}`],
      stdout: "piped",
      stderr: "null",
      signal: AbortSignal.timeout(SS_TIMEOUT_MS),
    }).output();
    const match = /pid=(\d+)/.exec(new TextDecoder().decode(stdout));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** User + system CPU time of `pid` so far, in ms (10 ms resolution). */
export async function cpuMsOf(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) start after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the whole line, i.e. 12 and 13 after the name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SEC;
}

export interface CpuMeter {
  /** CPU ms each named process spent since the meter started (processes not found are left out). */
  read(): Promise<Record<string, number>>;
}

/** Starts metering the processes listening on `ports` (by name). */
export function startCpuMeter(ports: Readonly<Record<string, number>>): Promise<CpuMeter> {
  return startPidMeter(ports, cpuMsOf);
}

/**
 * Reads `measure(pid)` of each process listening on `ports` now, and `read()` answers how much each grew since
 * (processes not found are left out; one gone since keeps a growth of 0).
 */
async function startPidMeter(
  ports: Readonly<Record<string, number>>,
  measure: (pid: number) => Promise<number>,
): Promise<{ read(): Promise<Record<string, number>> }> {
  const started: [string, number, number][] = [];
  for (const [name, port] of Object.entries(ports)) {
    const pid = await pidListeningOn(port);
    const value = pid === undefined ? undefined : await measure(pid).catch(() => undefined);
    if (pid !== undefined && value !== undefined) started.push([name, pid, value]);
  }
  return {
    async read() {
      const grown: Record<string, number> = {};
      for (const [name, pid, before] of started) grown[name] = (await measure(pid).catch(() => before)) - before;
      return grown;
    },
  };
}

/** "ecommerce 12.3 ms, ingress 1.2 ms per op" for a log line. */
export function perOpLine(spent: Readonly<Record<string, number>>, ops: number): string {
  const parts = Object.entries(spent).map(([name, ms]) => `${name} ${(ms / Math.max(1, ops)).toFixed(2)} ms`);
  return parts.length === 0 ? "no process found" : `${parts.join(", ")} CPU per op`;
}

/** What a process is, for grouping machine-wide CPU: a deployable's entry file and region, a JVM's role, else its name. */
async function labelOf(pid: number): Promise<string> {
  const raw = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
  const argv = raw.split("\0").filter((part) => part.length > 0);
  const command = argv[0]?.split("/").pop() ?? "";
  if (command === "deno" || command.startsWith("deno")) {
    const entry = argv.find((part) => part.endsWith(".ts")) ?? "deno";
    const environ = await Deno.readTextFile(`/proc/${pid}/environ`).catch(() => "");
    const region = /(?:^|\0)BV_REGION=([^\0]*)/.exec(environ)?.[1];
    const short = entry.replace(/^.*?\/(regional|edge|bench|scripts|tests)\//, "$1/");
    return region ? `${short} [${region}]` : short;
  }
  if (command === "java") {
    const joined = argv.join(" ");
    if (joined.includes("MirrorMaker")) return "java mirrormaker";
    const port = /(?:9092|9192|9093|9193)/.exec(joined)?.[0];
    return port ? `java kafka ${port}` : "java kafka";
  }
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
  const comm = /\(([^)]*)\)/.exec(stat)?.[1] ?? command;
  return comm.startsWith("postgres") || command.startsWith("postgres") ? "postgres" : comm || `pid ${pid}`;
}

async function allPids(): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (/^\d+$/.test(entry.name)) pids.push(Number(entry.name));
  }
  return pids;
}

export interface MachineCpuMeter {
  /** CPU ms per process group since the meter started, largest first (processes born since count fully). */
  read(): Promise<[string, number][]>;
}

/**
 * Meters every process on the machine (Linux), grouped by {@link labelOf}: where the CPU of an operation
 * goes across the whole platform (consumers, relays, brokers, databases), not only in the process serving it.
 */
export async function startMachineCpuMeter(): Promise<MachineCpuMeter> {
  const before = new Map<number, number>();
  for (const pid of await allPids()) {
    const ms = await cpuMsOf(pid).catch(() => undefined);
    if (ms !== undefined) before.set(pid, ms);
  }
  return {
    async read() {
      const groups = new Map<string, number>();
      for (const pid of await allPids()) {
        const now = await cpuMsOf(pid).catch(() => undefined);
        if (now === undefined) continue;
        const spent = now - (before.get(pid) ?? 0);
        if (spent <= 0) continue;
        const label = await labelOf(pid);
        groups.set(label, (groups.get(label) ?? 0) + spent);
      }
      return [...groups.entries()].sort((a, b) => b[1] - a[1]);
    },
  };
}

/** "total 18.2 ms per op: ecommerce [east] 3.6, postgres 4.1, …" (groups under 0.5 % of the total folded). */
export function machinePerOpLine(groups: readonly [string, number][], ops: number): string {
  const total = groups.reduce((sum, [, ms]) => sum + ms, 0);
  const per = (ms: number) => (ms / Math.max(1, ops)).toFixed(2);
  const shown = groups.filter(([, ms]) => ms >= total * 0.005);
  const rest = total - shown.reduce((sum, [, ms]) => sum + ms, 0);
  return `machine CPU ${per(total)} ms per op: ${shown.map(([label, ms]) => `${label} ${per(ms)}`).join(", ")}` +
    (rest > 0 ? `, other ${per(rest)}` : "");
}

/**
 * How long `pid`'s main thread has waited on a run queue — runnable but not running, because every core was
 * busy — in ms (`/proc/<pid>/task/<pid>/schedstat`, field 2, nanoseconds; needs schedstats, on by default).
 */
export async function runQueueWaitMsOf(pid: number): Promise<number> {
  const fields = (await Deno.readTextFile(`/proc/${pid}/task/${pid}/schedstat`)).trim().split(" ");
  return Number(fields[1]) / 1e6;
}

export interface RunQueueMeter {
  /** Run-queue wait of each named process's main thread since the meter started, in ms. */
  read(): Promise<Record<string, number>>;
}

/**
 * Meters the run-queue wait of the main threads of the processes listening on `ports`: on a machine with
 * fewer cores than busy threads, a request also waits for its thread to be scheduled, and this is that wait.
 */
export function startRunQueueMeter(ports: Readonly<Record<string, number>>): Promise<RunQueueMeter> {
  return startPidMeter(ports, runQueueWaitMsOf);
}
