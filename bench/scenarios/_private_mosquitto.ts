/**
 * @module
 * A Mosquitto of the bench's own (the system binary, a temp dir, a free loopback port), so a scenario that
 * floods `iot/inventory/+/delta` at 20,000 messages/s reaches no other platform subscribed on the shared
 * broker. In-memory only (no persistence file): the bench never restarts it.
 */

export interface PrivateMosquitto {
  readonly url: string;
  /** The broker's process id (to meter its CPU). */
  readonly pid: number;
  stop(): Promise<void>;
}

const LISTEN_TIMEOUT_MS = 5_000;

export async function startPrivateMosquitto(): Promise<PrivateMosquitto> {
  const dir = await Deno.makeTempDir({ prefix: "bvbench-mosquitto-" });
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const config = `${dir}/mosquitto.conf`;
  await Deno.writeTextFile(
    config,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "user root",
      "persistence false",
      // The default (1000) would drop QoS 1 messages queued for a bridge that falls behind, after acking them.
      "max_queued_messages 2000000",
      `log_dest file ${dir}/mosquitto.log`,
    ].join("\n") + "\n",
  );
  const child = new Deno.Command("mosquitto", { args: ["-c", config], stdout: "null", stderr: "null" }).spawn();
  const started = Date.now();
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (Date.now() - started > LISTEN_TIMEOUT_MS) {
        child.kill("SIGKILL");
        await child.status;
        throw new Error(`The bench's Mosquitto did not listen on ${port} within ${LISTEN_TIMEOUT_MS} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
