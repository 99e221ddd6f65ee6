/**
 * @module
 * One flash-sale event fanned out to 10,000 clients of east's e-commerce deployable — 5,000 on
 * `/sse/flash-sales` and 5,000 on `/ws/flash-sales` — timed per client from the moment the ADMIN's
 * `POST /api/v1/flash-sales` is sent to that client's receipt of `flash_sale.started` (the whole path:
 * sale transaction and outbox → relay → Kafka → the region's projection → Redis pub/sub → the hub → every
 * socket). Baseline: a raw `Deno.serve` server in a worker (`_broadcast_worker.ts`) that answers
 * `POST /publish` and broadcasts to the same number of raw SSE and WebSocket clients.
 *
 * Clients live in 2 subprocesses per side (`_fanout_clients.ts`, 2,500 SSE + 2,500 WS each), so the
 * 10,000 sockets of a side are read outside the bench's event loop and each process stays under its
 * file-descriptor limit (raised with `ulimit -n` in the launching shell when allowed). Receipt and start
 * are epoch times with sub-millisecond resolution (`performance.timeOrigin + now()`) on the same machine.
 * 3 rounds per side, interleaved (S B, B S, S B); one event per round, each client timed once per round.
 */
import { createLatencyHistogram, resultOf, type Scenario, statsFromHistogram } from "../harness.ts";
import { acquirePlatform, ADMIN, releasePlatform, STOCKED_FOR_ORDERS } from "./_ecommerce_platform.ts";
import { nextMessage } from "./_worker.ts";
import { type ClientProcess, spawnClients } from "./_fanout_process.ts";
import type { Histogram } from "hdr-histogram-js";

const NAME = "flash_sale_fanout";
const SSE_CLIENTS = 5_000;
const WS_CLIENTS = 5_000;
const PROCESSES_PER_SIDE = 2;
const ROUNDS = 3;
/** Products the order scenarios never touch, one per round, so no sale is still running (409). */
const FIRST_SALE_PRODUCT = STOCKED_FOR_ORDERS + 50;

interface Side {
  readonly label: string;
  readonly clients: readonly ClientProcess[];
  /** Arms the clients with `match` and resolves with the start time; the trigger runs right after. */
  readonly trigger: (round: number) => Promise<{ startedAtMs: number; match: string[] }>;
  readonly histogram: Histogram;
  elapsedMs: number;
  missing: number;
}

export const flashSaleFanout: Scenario = {
  name: NAME,
  description: `ADMIN starts a flash sale → flash_sale.started at ${SSE_CLIENTS} SSE + ${WS_CLIENTS} WebSocket ` +
    "clients vs raw Deno.serve broadcast to as many",
  async run(ctx) {
    let worker: Worker | undefined;
    const processes: ClientProcess[] = [];
    try {
      const platform = await acquirePlatform(ctx);
      worker = new Worker(new URL("./_broadcast_worker.ts", import.meta.url), { type: "module" });
      const { port } = await nextMessage<{ port: number }>(worker, 10_000);
      const login = await fetch(`${platform.ingressUrl}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(ADMIN),
        signal: AbortSignal.timeout(10_000),
      });
      if (login.status !== 200) throw new Error(`Admin login answered ${login.status}: ${await login.text()}`);
      const adminToken: string = (await login.json()).accessToken;

      const perProcess = { sse: SSE_CLIENTS / PROCESSES_PER_SIDE, ws: WS_CLIENTS / PROCESSES_PER_SIDE };
      const ecommerce = new URL(platform.ecommerceUrl);
      const subjectClients = await spawnClients(ctx, PROCESSES_PER_SIDE, {
        sseUrl: `${platform.ecommerceUrl}/sse/flash-sales`,
        wsUrl: `ws://${ecommerce.host}/ws/flash-sales`,
        ...perProcess,
      });
      processes.push(...subjectClients);
      const baselineClients = await spawnClients(ctx, PROCESSES_PER_SIDE, {
        sseUrl: `http://127.0.0.1:${port}/sse`,
        wsUrl: `ws://127.0.0.1:${port}/ws`,
        ...perProcess,
      });
      processes.push(...baselineClients);

      const subject: Side = {
        label: `POST /flash-sales sent → ${SSE_CLIENTS} SSE + ${WS_CLIENTS} WS clients`,
        clients: subjectClients,
        histogram: createLatencyHistogram(),
        elapsedMs: 0,
        missing: 0,
        async trigger(round) {
          const product = platform.products[FIRST_SALE_PRODUCT + round];
          const match = [product.id, "flash_sale.started"];
          await Promise.all(subjectClients.map((client) => client.arm(round, match)));
          const startedAtMs = epochMs();
          const response = await fetch(`${platform.ecommerceUrl}/api/v1/flash-sales`, {
            method: "POST",
            headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
            body: JSON.stringify({ productId: product.id, price: "1.00", durationSec: 2 }),
            signal: AbortSignal.timeout(10_000),
          });
          const text = await response.text();
          if (response.status !== 201) throw new Error(`POST /api/v1/flash-sales answered ${response.status}: ${text}`);
          return { startedAtMs, match };
        },
      };
      const baseline: Side = {
        label: `raw POST → Deno.serve broadcast to ${SSE_CLIENTS} SSE + ${WS_CLIENTS} WS clients`,
        clients: baselineClients,
        histogram: createLatencyHistogram(),
        elapsedMs: 0,
        missing: 0,
        async trigger(round) {
          const id = `fanout-${round}`;
          const match = [`"id":"${id}"`];
          await Promise.all(baselineClients.map((client) => client.arm(round, match)));
          const startedAtMs = epochMs();
          const response = await fetch(`http://127.0.0.1:${port}/publish?id=${id}`, {
            method: "POST",
            signal: AbortSignal.timeout(10_000),
          });
          await response.body?.cancel();
          if (response.status !== 201) throw new Error(`The raw server answered ${response.status}`);
          return { startedAtMs, match };
        },
      };
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? [subject, baseline] : [baseline, subject];
        for (const side of order) await runRound(ctx, side, round);
      }
      return resultOf(NAME, { subject: statsOf(subject), baseline: statsOf(baseline) });
    } finally {
      await Promise.allSettled(processes.map((client) => client.close()));
      if (worker !== undefined) {
        const stopped = nextMessage(worker, 10_000).catch(() => {});
        worker.postMessage("stop");
        await stopped;
        worker.terminate();
      }
      await releasePlatform(ctx, NAME);
    }
  },
};

const epochMs = () => performance.timeOrigin + performance.now();

async function runRound(ctx: { log(message: string): void }, side: Side, round: number): Promise<void> {
  const { startedAtMs } = await side.trigger(round);
  const results = await Promise.all(side.clients.map((client) => client.result(round)));
  let lastMs = startedAtMs;
  let missing = 0;
  for (const result of results) {
    missing += result.missing;
    for (const atMs of result.times) {
      side.histogram.recordValue(Math.max(0, Math.round((atMs - startedAtMs) * 1000)));
      lastMs = Math.max(lastMs, atMs);
    }
  }
  side.elapsedMs += lastMs - startedAtMs;
  side.missing += missing;
  ctx.log(
    `${side.label}, round ${round + 1}: last client after ${(lastMs - startedAtMs).toFixed(1)} ms` +
      (missing > 0 ? `, ${missing} clients got nothing within 10 s` : ""),
  );
}

function statsOf(side: Side) {
  const memory = Deno.memoryUsage();
  return statsFromHistogram(
    `${side.label}${side.missing > 0 ? `, ${side.missing} missed` : ""}`,
    side.histogram,
    {
      elapsedMs: side.elapsedMs,
      rounds: ROUNDS,
      cappedRounds: 0,
      memory: {
        rssBeforeBytes: memory.rss,
        rssAfterBytes: memory.rss,
        heapUsedBeforeBytes: memory.heapUsed,
        heapUsedAfterBytes: memory.heapUsed,
        heapUsedDeltaBytes: 0,
      },
    },
  );
}
