/**
 * @module
 * The bench's side of `_fanout_clients.ts`: spawns the client processes (through `bash` so `ulimit -n` can
 * be raised first: each process holds thousands of sockets), sends them commands and reads their JSON
 * replies line by line.
 */

export interface ClientProcess {
  /** Tells the process which event to time in `round`; resolves once it is armed. */
  arm(round: number, match: readonly string[]): Promise<void>;
  /** The receipt times (epoch ms) of `round` and how many connections saw nothing. */
  result(round: number): Promise<{ times: number[]; missing: number }>;
  close(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;
const REPLY_TIMEOUT_MS = 20_000;
/** Asked of the shell; the hard limit may cap it, which the client reports. */
const FD_LIMIT = 40_000;

/** Spawns `count` client processes, each opening `sse` + `ws` connections; resolves when all are ready. */
export async function spawnClients(
  ctx: { log(message: string): void },
  count: number,
  connect: { sseUrl: string; wsUrl: string; sse: number; ws: number },
): Promise<ClientProcess[]> {
  const script = new URL("./_fanout_clients.ts", import.meta.url).pathname;
  const clients = Array.from({ length: count }, () => spawnOne(script));
  const ready = await Promise.all(clients.map(async (client) => {
    client.send({ cmd: "connect", ...connect });
    return (await client.next(READY_TIMEOUT_MS)).ready as { connections: number; failed: number; fdLimit: string };
  }));
  const failed = ready.reduce((sum, r) => sum + r.failed, 0);
  ctx.log(
    `${ready.reduce((sum, r) => sum + r.connections, 0)} clients connected to ${connect.sseUrl} and ` +
      `${connect.wsUrl} in ${count} processes (${failed} failed; ${ready[0].fdLimit})`,
  );
  if (failed > 0) throw new Error(`${failed} client connections failed to open`);
  return clients.map((client) => ({
    async arm(round, match) {
      client.send({ cmd: "expect", round, match });
      const reply = await client.next(REPLY_TIMEOUT_MS);
      if (reply.armed !== round) throw new Error(`Client process answered ${JSON.stringify(reply)} to arming`);
    },
    async result(round) {
      const reply = await client.next(REPLY_TIMEOUT_MS);
      if (reply.round !== round) throw new Error(`Client process answered ${JSON.stringify(reply).slice(0, 200)}`);
      return { times: reply.times as number[], missing: reply.missing as number };
    },
    close: () => client.close(),
  }));
}

// deno-lint-ignore no-explicit-any
type Reply = Record<string, any>;

function spawnOne(script: string) {
  const child = new Deno.Command("bash", {
    args: ["-c", `ulimit -n ${FD_LIMIT} 2>/dev/null; exec "$0" run -A "$1"`, Deno.execPath(), script],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  const replies: Reply[] = [];
  const waiters: ((reply: Reply) => void)[] = [];
  void (async () => {
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let end: number;
      while ((end = rest.indexOf("\n")) >= 0) {
        const reply = JSON.parse(rest.slice(0, end)) as Reply;
        rest = rest.slice(end + 1);
        const waiter = waiters.shift();
        if (waiter) waiter(reply);
        else replies.push(reply);
      }
    }
  })();
  return {
    send(command: unknown): void {
      void writer.write(encoder.encode(JSON.stringify(command) + "\n"));
    },
    next(timeoutMs: number): Promise<Reply> {
      const queued = replies.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise<Reply>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`A fan-out client process was silent for ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter = (reply: Reply) => {
          clearTimeout(timer);
          resolve(reply);
        };
        waiters.push(waiter);
      });
    },
    async close(): Promise<void> {
      await writer.write(encoder.encode(JSON.stringify({ cmd: "close" }) + "\n")).catch(() => {});
      await writer.close().catch(() => {});
      const exited = await Promise.race([
        child.status.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000)),
      ]);
      if (!exited) {
        child.kill("SIGKILL");
        await child.status;
      }
    },
  };
}
