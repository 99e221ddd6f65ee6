/** @module Failure injection for journeys: kill a regional Kafka broker the way a crash would. */
import { brokerLayout, type KafkaRegion } from "../../scripts/kafka/mod.ts";

/** SIGKILLs the broker of `region` (no clean shutdown) and waits until the process is gone. */
export async function killKafka(region: KafkaRegion): Promise<void> {
  const layout = brokerLayout(region);
  const pid = Number((await Deno.readTextFile(layout.pidFile)).trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`No broker pid in ${layout.pidFile}`);
  Deno.kill(pid, "SIGKILL");
  for (let i = 0; i < 100; i++) {
    // Gone, or a zombie (state Z: exited, not yet reaped by its parent).
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
    if (stat === "" || /^\d+ \(.*\) Z/.test(stat)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Broker ${pid} of ${region} did not die`);
}
