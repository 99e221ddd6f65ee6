/** @module Failure injection for journeys: kill a regional Kafka broker the way a crash would. */
import { brokerLayout, type KafkaRegion } from "../../scripts/kafka/mod.ts";
import { listenerPid } from "../../scripts/kafka/_process.ts";

/** SIGKILLs the broker of `region` (no clean shutdown) and waits until the process is gone. */
export async function killKafka(region: KafkaRegion): Promise<void> {
  // By port, not pid file: whoever started the broker, this is the process clients talk to.
  const port = brokerLayout(region).port;
  const pid = await listenerPid(port);
  if (pid === undefined) throw new Error(`No broker listens on port ${port}`);
  Deno.kill(pid, "SIGKILL");
  for (let i = 0; i < 100; i++) {
    // Gone, or a zombie (state Z: exited, not yet reaped by its parent).
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
    if (stat === "" || /^\d+ \(.*\) Z/.test(stat)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Broker ${pid} of ${region} did not die`);
}
