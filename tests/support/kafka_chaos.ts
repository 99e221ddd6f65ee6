/** @module Failure injection for journeys: kill a regional Kafka broker the way a crash would. */
import { brokerLayout, type KafkaRegion } from "../../scripts/kafka/mod.ts";
import { isPortOpen, listenerPid } from "../../scripts/kafka/_process.ts";

/** SIGKILLs the broker of `region` (no clean shutdown) and waits until the process is gone. */
export async function killKafka(region: KafkaRegion): Promise<void> {
  // By port, not pid file: whoever started the broker, this is the process clients talk to.
  const port = brokerLayout(region).port;
  const pid = await listenerPid(port);
  if (pid === undefined) throw new Error(`No broker listens on port ${port}`);
  Deno.kill(pid, "SIGKILL");
  const { controllerPort } = brokerLayout(region);
  for (let i = 0; i < 100; i++) {
    // Gone, or a zombie (state Z: exited, not yet reaped by its parent) whose listeners are closed too: a JVM's
    // main thread can show Z while its other threads still exit and hold the sockets, and a restart that finds
    // the controller port open refuses to start (seen once in CI).
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
    if (stat === "" || /^\d+ \(.*\) Z/.test(stat)) {
      if (!(await isPortOpen(port, 200)) && !(await isPortOpen(controllerPort, 200))) return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Broker ${pid} of ${region} did not die (or its ports stayed open)`);
}
