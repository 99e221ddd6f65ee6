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
export async function startCpuMeter(ports: Readonly<Record<string, number>>): Promise<CpuMeter> {
  const started: [string, number, number][] = [];
  for (const [name, port] of Object.entries(ports)) {
    const pid = await pidListeningOn(port);
    if (pid !== undefined) started.push([name, pid, await cpuMsOf(pid)]);
  }
  return {
    async read() {
      const spent: Record<string, number> = {};
      for (const [name, pid, before] of started) spent[name] = (await cpuMsOf(pid).catch(() => before)) - before;
      return spent;
    },
  };
}

/** "ecommerce 12.3 ms, ingress 1.2 ms per op" for a log line. */
export function perOpLine(spent: Readonly<Record<string, number>>, ops: number): string {
  const parts = Object.entries(spent).map(([name, ms]) => `${name} ${(ms / Math.max(1, ops)).toFixed(2)} ms`);
  return parts.length === 0 ? "no process found" : `${parts.join(", ")} CPU per op`;
}
