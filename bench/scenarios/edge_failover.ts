/**
 * @module
 * Failover time through the edge (issue 5 item 4; target RTO < 10 s). Two fake regions, each its own
 * process, behind `createEdge` with the production routing defaults; two clients each send a steady 200
 * requests/s all along: one through the edge (subject), one straight to the regions that tries east and, on
 * a connection error, west (baseline: client-side failover, no health checks). Each round SIGKILLs the
 * region the edge is serving from and records, per client, the time from the kill to its first success
 * answered by the other region, and the requests that failed meanwhile; then restarts the region on its
 * port and records **failback**: from the moment it listens again to the edge's first answer from it (the
 * edge's probes must pass first; under client affinity a reading client may never move back, counted as
 * "not back"). The baseline has a sample only in rounds that kill east, its primary.
 */
import { createLatencyHistogram, resultOf, type Scenario, statsFromHistogram } from "../harness.ts";
import { type Load, type Outcome, startLoad } from "./_failover_load.ts";
import { type FailoverRig, type RegionName, startFailoverRig } from "./_failover_rig.ts";

const PRODUCT_PATH = "/api/v1/products/p1";
const RATE_PER_SEC = 200;
const REQUEST_TIMEOUT_MS = 2_000;
/** Rounds at most (`BV_BENCH_FAILOVER_ROUNDS`, 1–100); the wall cap below usually ends the run first. */
const ROUNDS_MAX = roundsOf(Deno.env.get("BV_BENCH_FAILOVER_ROUNDS") ?? "10");
/** No round starts after this (setup excluded), so the scenario stays near a minute. */
const ROUNDS_WALL_MS = 50_000;
/** The issue's RTO target: a failover not seen by then is recorded at this value and flagged. */
const FAILOVER_WAIT_MS = 10_000;
/**
 * After the failover, before the restart: lets requests in flight at the kill finish and be counted, then a
 * spread over one probe interval (golden-ratio steps: even for few rounds). Without it every round lasts two
 * probe intervals and restarts at the same phase of the edge's probe cycle, so failback would read the
 * same 3.1 s every round instead of its real 2–4 s spread.
 */
const HOLD_MS = 300;
const PROBE_INTERVAL_MS = 2_000;
const holdOf = (round: number) => HOLD_MS + Math.round(((round * 0.618034) % 1) * PROBE_INTERVAL_MS);
/** From listening again: the edge needs 2 good probes 2 s apart, so 2–4 s plus a busy machine's lag. */
const FAILBACK_WAIT_MS = 8_000;
/** Once the edge reports the region healthy, how long traffic gets to move back before "not back". */
const FAILBACK_GRACE_MS = 500;
const READY_WAIT_MS = 10_000;

function roundsOf(text: string): number {
  const rounds = Number(text);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) {
    throw new RangeError(`BV_BENCH_FAILOVER_ROUNDS is "${text}"; use a whole number from 1 to 100`);
  }
  return rounds;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function edgeSend(rig: FailoverRig, signal: AbortSignal): Promise<string> {
  const response = await fetch(`${rig.edgeUrl}${PRODUCT_PATH}`, { signal });
  await response.arrayBuffer();
  const region = response.headers.get("x-bv-region");
  if (response.status !== 200 || region === null) throw new Error(`edge answered ${response.status}`);
  return region;
}

/** The baseline client: east, and west when east cannot be reached (a timeout is not retried: same budget). */
async function directSend(rig: FailoverRig, signal: AbortSignal): Promise<string> {
  const get = async (name: RegionName) => {
    const response = await fetch(`${rig.regionUrls[name]}${PRODUCT_PATH}`, { signal });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`${name} answered ${response.status}`);
    return response.headers.get("x-bench-region") ?? name;
  };
  try {
    return await get("east");
  } catch (error) {
    if (signal.aborted) throw error;
    return await get("west");
  }
}

/** Waits until the edge reports both regions healthy and has just served a request; the serving region. */
async function steadyRegion(rig: FailoverRig, edge: Load): Promise<RegionName> {
  const deadline = performance.now() + READY_WAIT_MS;
  while (performance.now() < deadline) {
    const healthy = await rig.edgeHealthy();
    const last = edge.outcomes.at(-1);
    if (healthy.east && healthy.west && last?.region !== undefined && performance.now() - last.doneMs < 200) {
      return last.region as RegionName;
    }
    await sleep(50);
  }
  throw new Error(`the edge did not see both regions healthy and serving within ${READY_WAIT_MS} ms`);
}

async function healthyAgain(rig: FailoverRig, name: RegionName, deadline: number): Promise<number | undefined> {
  while (performance.now() < deadline) {
    if ((await rig.edgeHealthy())[name]) return performance.now();
    await sleep(20);
  }
  return undefined;
}

const quantile = (values: readonly number[], q: number) => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
};
const ms = (value: number) => Number.isNaN(value) ? "—" : value >= 100 ? value.toFixed(0) : value.toFixed(1);

export const edgeFailover: Scenario = {
  name: "edge_failover",
  description: "SIGKILL the serving region under 200 req/s: kill → first answer from the other region, " +
    "via the edge (probes + retry) vs a client retrying west itself",
  async run(ctx) {
    const rig = await startFailoverRig();
    const edge = startLoad((signal) => edgeSend(rig, signal), {
      ratePerSec: RATE_PER_SEC,
      timeoutMs: REQUEST_TIMEOUT_MS,
      maxInFlight: 400,
    });
    const direct = startLoad((signal) => directSend(rig, signal), {
      ratePerSec: RATE_PER_SEC,
      timeoutMs: REQUEST_TIMEOUT_MS,
      maxInFlight: 400,
    });
    const subject = createLatencyHistogram();
    const baseline = createLatencyHistogram();
    const edgeFailback: number[] = [];
    const edgeHealthyAfter: number[] = [];
    const directFailback: number[] = [];
    const failed = { edge: [] as number[], direct: [] as number[], edgeBack: 0, directBack: 0 };
    let notBack = 0;
    let overTarget = 0;
    const memoryBefore = Deno.memoryUsage();
    const started = performance.now();
    let rounds = 0;
    try {
      ctx.log(`edge ${rig.edgeUrl} → east ${rig.regionUrls.east}, west ${rig.regionUrls.west}; ${RATE_PER_SEC}/s each`);
      while (rounds < ROUNDS_MAX && performance.now() - started < ROUNDS_WALL_MS) {
        const target = await steadyRegion(rig, edge);
        const other = (region: string) => region !== target;
        const killedMs = performance.now();
        await rig.kill(target);
        const [edgeOver, directOver] = await Promise.all([
          edge.firstSuccess(killedMs, other, FAILOVER_WAIT_MS),
          target === "east" ? direct.firstSuccess(killedMs, other, FAILOVER_WAIT_MS) : undefined,
        ]);
        const failoverMs = (o: Outcome | undefined) => o === undefined ? FAILOVER_WAIT_MS : o.doneMs - killedMs;
        subject.recordValue(Math.round(failoverMs(edgeOver) * 1000));
        if (edgeOver === undefined) overTarget++;
        if (target === "east") baseline.recordValue(Math.round(failoverMs(directOver) * 1000));
        await sleep(holdOf(rounds));
        const upMs = await rig.restart(target);
        failed.edge.push(edge.failedBetween(killedMs, upMs));
        if (target === "east") failed.direct.push(direct.failedBetween(killedMs, upMs));
        // Failback: the edge once its probes pass (then a grace for traffic to move); the client at once.
        const healthyMs = await healthyAgain(rig, target, upMs + FAILBACK_WAIT_MS);
        const [edgeBack, directBack] = await Promise.all([
          healthyMs === undefined ? undefined : edge.firstSuccess(upMs, (r) => r === target, FAILBACK_GRACE_MS),
          target === "east" ? direct.firstSuccess(upMs, (r) => r === "east", FAILBACK_GRACE_MS) : undefined,
        ]);
        const endMs = performance.now();
        failed.edgeBack += edge.failedBetween(upMs, endMs);
        failed.directBack += direct.failedBetween(upMs, endMs);
        if (healthyMs !== undefined) edgeHealthyAfter.push(healthyMs - upMs);
        if (edgeBack === undefined) notBack++;
        else edgeFailback.push(edgeBack.doneMs - upMs);
        if (directBack !== undefined) directFailback.push(directBack.doneMs - upMs);
        rounds++;
        ctx.log(
          `round ${rounds}: killed ${target}; failover edge ${ms(failoverMs(edgeOver))} ms` +
            (target === "east" ? `, client ${ms(failoverMs(directOver))} ms` : ", client not affected") +
            `; failed edge ${failed.edge.at(-1)}, client ${target === "east" ? failed.direct.at(-1) : "—"}; ` +
            `edge sees ${target} healthy ${healthyMs === undefined ? "never" : `${ms(healthyMs - upMs)} ms`} ` +
            `after it listens, serves from it ${edgeBack === undefined ? "not" : `${ms(edgeBack.doneMs - upMs)} ms`}`,
        );
      }
    } finally {
      await Promise.allSettled([edge.stop(), direct.stop()]);
      await rig.stop();
    }
    ctx.log(`${rounds} rounds in ${ms((performance.now() - started) / 1000)} s`);
    const memoryAfter = Deno.memoryUsage();
    const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);
    // Failovers per second mean nothing: elapsed 0 makes ops/s 0 and its ratio n/a.
    const context = {
      elapsedMs: 0,
      rounds,
      cappedRounds: overTarget,
      memory: {
        rssBeforeBytes: memoryBefore.rss,
        rssAfterBytes: memoryAfter.rss,
        heapUsedBeforeBytes: memoryBefore.heapUsed,
        heapUsedAfterBytes: memoryAfter.heapUsed,
        heapUsedDeltaBytes: memoryAfter.heapUsed - memoryBefore.heapUsed,
      },
    };
    const failback = `failback p50 ${ms(quantile(edgeFailback, 0.5))} / p99 ${ms(quantile(edgeFailback, 0.99))} ms`;
    const subjectLabel = `edge: kill → answer from other region; ${failback} after listening ` +
      `(healthy p50 ${ms(quantile(edgeHealthyAfter, 0.5))} / p99 ${
        ms(quantile(edgeHealthyAfter, 0.99))
      } ms, ${notBack}/${rounds} not back within ` +
      `${FAILBACK_GRACE_MS} ms of healthy); failed ${sum(failed.edge)} in gaps (max ${Math.max(0, ...failed.edge)}` +
      `/round), ${failed.edgeBack} after restart; ${overTarget} over ${FAILOVER_WAIT_MS / 1000} s; ` +
      `${edge.dropped()} dropped`;
    const baselineLabel =
      `client east→west on connect error; back on east p50 ${ms(quantile(directFailback, 0.5))} ms;` +
      ` failed ${sum(failed.direct)} in gaps, ${failed.directBack} after restart; ${direct.dropped()} dropped`;
    ctx.log(subjectLabel);
    ctx.log(baselineLabel);
    return resultOf("edge_failover", {
      subject: statsFromHistogram(subjectLabel, subject, context),
      baseline: statsFromHistogram(baselineLabel, baseline, { ...context, rounds: baseline.totalCount }),
    });
  },
};
