/**
 * @module
 * Flash-sale fan-out: one event sent by a fake region's `/sse/flash-sales` travels over the edge's single
 * upstream subscription and out to N edge SSE clients; the baseline is a raw `Deno.serve` SSE broadcaster
 * sending the same frame to N clients of its own. Region, raw server and edge run in worker threads; the N
 * clients (fetch streams) run here and time each delivery from the moment the event was posted to the
 * region's thread. Each sample is one client's delivery, so p50/p99 are over N deliveries per event;
 * events go one at a time (the next after every client got the last).
 */
import type { Histogram } from "hdr-histogram-js";
import { createLatencyHistogram, type Measurement, mergeRounds, resultOf, type Scenario } from "../harness.ts";
import { type EdgeRig, startEdgeRig } from "./_edge_rig.ts";

const CLIENTS = 1_000;
const EVENTS_PER_ROUND = 30;
const WARMUP_EVENTS = 5;
const ROUNDS = 3;
/** One event must reach every client within this, or the scenario fails (a lost delivery is a bug). */
const DELIVERY_TIMEOUT_MS = 10_000;
const SEQ = /"seq":(\d+)/g;

interface Fleet {
  /** Resolves when all N clients got `seq`, recording each delivery's latency from `t0`. */
  expect(seq: number, t0: number, histogram: Histogram | undefined): Promise<void>;
  close(): void;
}

/** N SSE clients of `url`; resolves once every one is connected. */
async function openFleet(url: string, n: number): Promise<Fleet> {
  const abort = new AbortController();
  let waiting: { seq: number; t0: number; left: number; histogram?: Histogram; done: () => void } | undefined;
  const onSeq = (seq: number) => {
    if (waiting === undefined || seq !== waiting.seq) return;
    waiting.histogram?.recordValue(Math.max(0, Math.round((performance.now() - waiting.t0) * 1000)));
    if (--waiting.left === 0) waiting.done();
  };
  const connect = async () => {
    const response = await fetch(`${url}/sse/flash-sales`, { signal: abort.signal });
    if (!response.ok || response.body === null) throw new Error(`SSE ${url} answered ${response.status}`);
    void (async () => {
      try {
        for await (const text of response.body!.pipeThrough(new TextDecoderStream())) {
          for (const match of text.matchAll(SEQ)) onSeq(Number(match[1]));
        }
      } catch {
        // Aborted at the end of the scenario.
      }
    })();
  };
  for (let i = 0; i < n; i += 100) await Promise.all(Array.from({ length: Math.min(100, n - i) }, connect));
  return {
    expect: (seq, t0, histogram) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`event ${seq} reached ${n - (waiting?.left ?? 0)} of ${n} clients in time`));
        }, DELIVERY_TIMEOUT_MS);
        waiting = { seq, t0, left: n, histogram, done: () => (clearTimeout(timer), resolve()) };
      }),
    close: () => abort.abort(),
  };
}

export const edgeSseFanout: Scenario = {
  name: "edge_sse_fanout",
  description: `one event: fake region SSE → edge (1 upstream) → ${CLIENTS} clients vs raw Deno.serve SSE → ${CLIENTS}`,
  async run(ctx) {
    const rig = await startEdgeRig({ cache: false, flashSales: true });
    const fleets: Fleet[] = [];
    try {
      const subject = await openFleet(rig.edgeUrl, CLIENTS);
      fleets.push(subject);
      const baseline = await openFleet(rig.rawUrl, CLIENTS);
      fleets.push(baseline);
      ctx.log(`${CLIENTS} clients on the edge and ${CLIENTS} on the raw broadcaster`);
      let seq = 0;
      const round = async (label: string, target: "region" | "raw", fleet: Fleet): Promise<Measurement> => {
        for (let i = 0; i < WARMUP_EVENTS; i++) await send(rig, target, fleet, ++seq, undefined);
        const histogram = createLatencyHistogram();
        const memoryBefore = Deno.memoryUsage();
        const started = performance.now();
        for (let i = 0; i < EVENTS_PER_ROUND; i++) await send(rig, target, fleet, ++seq, histogram);
        const elapsedMs = performance.now() - started;
        return { label, histogram, elapsedMs, capped: false, memoryBefore, memoryAfter: Deno.memoryUsage() };
      };
      const subjectRounds: Measurement[] = [];
      const baselineRounds: Measurement[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        // Alternating order, like compare(): machine noise hits both sides alike.
        const pair = [
          async () => subjectRounds.push(await round("edge fan-out", "region", subject)),
          async () => baselineRounds.push(await round("raw SSE broadcast", "raw", baseline)),
        ];
        if (r % 2 === 1) pair.reverse();
        for (const run of pair) await run();
      }
      return resultOf("edge_sse_fanout", {
        subject: mergeRounds(subjectRounds),
        baseline: mergeRounds(baselineRounds),
      });
    } finally {
      for (const fleet of fleets) fleet.close();
      await rig.stop();
    }
  },
};

async function send(rig: EdgeRig, target: "region" | "raw", fleet: Fleet, seq: number, histogram?: Histogram) {
  const t0 = performance.now();
  const delivered = fleet.expect(seq, t0, histogram);
  rig.broadcast(target, seq);
  await delivered;
}
