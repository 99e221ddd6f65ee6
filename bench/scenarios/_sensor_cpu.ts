/**
 * @module
 * Where the CPU of one `mqtt_sensor_ingest` round went, machine-wide (Linux `/proc`): this process split by
 * thread (the main thread, each worker, the runtime's helper threads), the private Mosquitto, the Kafka and
 * PostgreSQL servers and everything else, plus how busy the machine's cores were. Latency on the shared
 * 2-core machine moves with the neighbours; CPU per delta much less, so this is what tells two runs apart.
 * On anything but Linux the meter reports nothing.
 */

/** Clock ticks per second of `/proc` times (`getconf CLK_TCK`; 100 on every Linux we run on). */
const CLOCK_TICKS_PER_SEC = 100;

/** CPU ms by group since the meter started, largest first, and the machine's busy share of its cores. */
export interface SensorCpuReading {
  readonly groups: readonly (readonly [string, number])[];
  /** Busy time of all cores ÷ (wall time × cores), 0..1. */
  readonly machineBusy: number;
  readonly wallMs: number;
}

export interface SensorCpuMeter {
  read(): Promise<SensorCpuReading>;
}

/** What the meter names apart from the rest. */
export interface SensorCpuTargets {
  /** Processes by pid (the private Mosquitto, say). */
  readonly labels?: ReadonlyMap<number, string>;
  /** The bench's database: its backends are told apart from other databases' and the server's own. */
  readonly database?: string;
}

/** Starts metering every thread of this process and every process of the machine. */
export async function startSensorCpuMeter(targets: SensorCpuTargets = {}): Promise<SensorCpuMeter> {
  if (Deno.build.os !== "linux") {
    return { read: () => Promise.resolve({ groups: [], machineBusy: 0, wallMs: 0 }) };
  }
  const before = await snapshot(targets);
  const machineBefore = await machineTicks();
  const startedMs = performance.now();
  return {
    async read() {
      const after = await snapshot(targets);
      const machineAfter = await machineTicks();
      const wallMs = performance.now() - startedMs;
      const groups = new Map<string, number>();
      for (const [key, { label, ms }] of after) {
        const spent = ms - (before.get(key)?.ms ?? 0);
        if (spent > 0) groups.set(label, (groups.get(label) ?? 0) + spent);
      }
      const busy = machineAfter.busy - machineBefore.busy;
      const total = machineAfter.total - machineBefore.total;
      return {
        groups: [...groups.entries()].sort((a, b) => b[1] - a[1]),
        machineBusy: total > 0 ? busy / total : 0,
        wallMs,
      };
    },
  };
}

/** "machine 87 % busy; CPU µs per delta: total 412 = bench main 150, kafka 9092 80, …" (groups < 2 % folded). */
export function cpuPerDeltaLine(reading: SensorCpuReading, deltas: number): string {
  const total = reading.groups.reduce((sum, [, ms]) => sum + ms, 0);
  const per = (ms: number) => ((ms * 1000) / Math.max(1, deltas)).toFixed(0);
  const shown = reading.groups.filter(([, ms]) => ms >= total * 0.02);
  const rest = total - shown.reduce((sum, [, ms]) => sum + ms, 0);
  return `machine ${(reading.machineBusy * 100).toFixed(0)} % busy over ${(reading.wallMs / 1000).toFixed(1)} s; ` +
    `CPU µs per delta: total ${per(total)} = ${shown.map(([label, ms]) => `${label} ${per(ms)}`).join(", ")}` +
    (rest > 0 ? `, other ${per(rest)}` : "");
}

/**
 * CPU ms of every thread of this process and every other process, keyed by `tid:` / `pid:`; threads that
 * ended (a finished worker) are kept as the process total minus its live threads.
 */
async function snapshot(targets: SensorCpuTargets): Promise<Map<string, { label: string; ms: number }>> {
  const taken = new Map<string, { label: string; ms: number }>();
  let threadsMs = 0;
  for await (const entry of Deno.readDir("/proc/self/task")) {
    const stat = await Deno.readTextFile(`/proc/self/task/${entry.name}/stat`).catch(() => "");
    if (stat === "") continue;
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const ms = ticksMsOf(stat);
    threadsMs += ms;
    taken.set(`tid:${entry.name}`, { label: threadLabelOf(comm), ms });
  }
  const processMs = ticksMsOf(await Deno.readTextFile("/proc/self/stat"));
  taken.set("ended", { label: "bench ended threads", ms: Math.max(0, processMs - threadsMs) });
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    const pid = Number(entry.name);
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
    if (stat === "") continue;
    const label = targets.labels?.get(pid) ?? await processLabelOf(pid, stat, targets.database);
    taken.set(`pid:${pid}`, { label, ms: ticksMsOf(stat) });
  }
  return taken;
}

function threadLabelOf(comm: string): string {
  if (comm === "deno") return "bench main thread";
  if (comm.startsWith("worker-")) return `bench ${comm}`;
  return "bench runtime threads";
}

async function processLabelOf(pid: number, stat: string, database: string | undefined): Promise<string> {
  const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
  if (comm.startsWith("postgres")) {
    // A backend's title is "postgres: 15/main: <user> <database> <client>(<port>) <state>"; the server's
    // own processes (checkpointer, walwriter…) have no client.
    if (database !== undefined && cmdline.includes(` ${database} `)) return "postgres (bench db)";
    return / (?:[\d.]+|\[local\])\(\d+\) /.test(cmdline) ? "postgres (other dbs)" : "postgres (server)";
  }
  if (comm === "java") {
    if (cmdline.includes("MirrorMaker")) return "kafka mirrormaker";
    if (cmdline.includes("/east/")) return "kafka east";
    if (cmdline.includes("/west/")) return "kafka west";
    return "java";
  }
  if (comm === "mosquitto") return "mosquitto (shared)";
  if (comm === "deno") return "other deno processes";
  return "other processes";
}

/** utime + stime of a `stat` line, in ms. */
function ticksMsOf(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SEC;
}

/** Busy and total ticks of all cores (`/proc/stat`'s first line; idle and iowait count as not busy). */
async function machineTicks(): Promise<{ busy: number; total: number }> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0];
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.slice(0, 8).reduce((sum, v) => sum + v, 0);
  const idle = values[3] + (values[4] ?? 0);
  return { busy: total - idle, total };
}
