/**
 * @module
 * How long after `POST /api/v1/orders` is SENT the order's `order.created` event (status PENDING) arrives
 * at a WebSocket client subscribed to its own channel (`/ws/orders`, `{"type":"subscribe","channel":"mine"}`)
 * — the whole push path: order transaction and outbox → relay → Kafka → notifications consumer (stored once,
 * `order_status` written) → hub → socket. Orders at 50/s open loop to east's e-commerce deployable; the span
 * starts at the request, so it is never negative (unlike `order_to_kafka`, which starts at the 201). Every
 * event frame is acknowledged, so the 256-event ack window never pauses delivery.
 *
 * Baseline: a raw `Deno.serve` server in a worker (`_broadcast_worker.ts`): `POST /publish` answers 201 and
 * broadcasts the id to its WebSocket clients; the same client layout, span from the request to the frame.
 */
import { resultOf, type Scenario } from "../harness.ts";
import { interleaveRounds, measureAtRate, type RateMeasurement } from "../open_loop.ts";
import { createLatencyHistogram } from "../harness.ts";
import { createArrivals } from "./_arrivals.ts";
import { acquirePlatform, type EcommercePlatform, releasePlatform, STOCKED_FOR_ORDERS } from "./_ecommerce_platform.ts";
import { postOrder, warmUpOrders } from "./_orders.ts";
import { nextMessage } from "./_worker.ts";
import { machinePerOpLine, startMachineCpuMeter, startRunQueueMeter } from "./_process_cpu.ts";
import { type KafkaArrivals, watchOrderCreated } from "./_kafka_arrivals.ts";

const NAME = "order_to_websocket";
/** Orders tried (each waited for up to the arrivals bound) before the scenario gives up on a backlog. */
const SETTLE_ATTEMPTS_MAX = 6;
/** Orders whose stage times are logged, slowest first. */
const SLOWEST_SHOWN = 8;
/** The issue gives no rate; 50/s like `order_to_kafka` (`BV_BENCH_ORDER_WS_RATE` overrides it for diagnosis). */
const RATE_PER_SEC = Number(Deno.env.get("BV_BENCH_ORDER_WS_RATE") ?? 50);
const DURATION_MS_PER_ROUND = 3_300;
const WARMUP_MS = 500;
const MAX_IN_FLIGHT = 256;
const ROUNDS = 3;
const ARRIVAL_TIMEOUT_MS = 10_000;
const OPEN_TIMEOUT_MS = 10_000;

export const orderToWebsocket: Scenario = {
  name: NAME,
  description:
    `POST /api/v1/orders sent → order.created frame at a /ws/orders client (own channel; ${RATE_PER_SEC}/s) ` +
    "vs raw Deno.serve POST → WebSocket broadcast",
  async run(ctx) {
    let worker: Worker | undefined;
    const arrivals = createArrivals(ARRIVAL_TIMEOUT_MS, "the WebSocket client");
    const sockets: WebSocket[] = [];
    let stages: KafkaArrivals | undefined;
    try {
      const platform = await acquirePlatform(ctx);
      // Started once the platform is up: a worker's message with no listener yet would be lost.
      worker = new Worker(new URL("./_broadcast_worker.ts", import.meta.url), { type: "module" });
      const { port } = await nextMessage<{ port: number }>(worker, 10_000);
      const wsBase = platform.ecommerceUrl.replace(/^http/, "ws");
      const subject = await openSocket(`${wsBase}/ws/orders?access_token=${platform.customerToken}`, (socket) => {
        socket.send(JSON.stringify({ type: "subscribe", channel: "mine" }));
      }, (socket, frame) => {
        // Logged, not thrown: a throw in a WebSocket listener would end the bench process.
        if (frame.type === "error") ctx.log(`/ws/orders answered ${JSON.stringify(frame)}`);
        if (frame.type !== "event") return;
        socket.send(JSON.stringify({ type: "ack", id: frame.id }));
        if (frame.eventType === "ecommerce.order.order.created.v1") arrivals.arrive(`o:${frame.orderId}`, now());
      }, "subscribed");
      sockets.push(subject);
      const frameCounts = new Map<string, number>();
      subject.addEventListener("message", (event) => {
        const type = String(JSON.parse(String(event.data))?.type);
        frameCounts.set(type, (frameCounts.get(type) ?? 0) + 1);
      });
      let closedEarly = "";
      subject.addEventListener("close", (event) => {
        closedEarly = `closed with ${event.code} "${event.reason}"`;
        ctx.log(`/ws/orders ${closedEarly}`);
      });
      const raw = await openSocket(`ws://127.0.0.1:${port}/ws`, () => {}, (_socket, frame) => {
        arrivals.arrive(`r:${frame.id}`, now());
      });
      sockets.push(raw);

      // Scenarios before this one (order_create at 200/s) can leave the notification consumer a backlog of
      // this customer's events, each pushed to this socket before any new one: wait until an order goes
      // through end to end before timing anything (bounded; the wait is logged).
      const settleStarted = now();
      for (let attempt = 1;; attempt++) {
        const product = platform.products[attempt % STOCKED_FOR_ORDERS];
        const response = await postOrder(platform, product.id);
        const body = await response.json();
        if (response.status !== 201) throw new Error(`POST /api/v1/orders answered ${response.status}`);
        try {
          await arrivals.wait(`o:${body.id}`);
          break;
        } catch (error) {
          ctx.log(
            `settling: no frame for order ${attempt} yet; frames so far ${
              JSON.stringify([...frameCounts])
            } ${closedEarly}`,
          );
          if (attempt >= SETTLE_ATTEMPTS_MAX) throw error;
        }
      }
      ctx.log(
        `notifications settled: an order reached the socket ${
          ((now() - settleStarted) / 1000).toFixed(1)
        } s after the first try`,
      );

      stages = await watchOrderCreated(
        platform.kafkaBrokers,
        `${platform.runId}.ecommerce.order.order.created.v1`,
        `${platform.runId}.bench.order-stages`,
      );
      const toKafka = createLatencyHistogram();
      const kafkaToSocket = createLatencyHistogram();
      const products = platform.products.slice(0, STOCKED_FOR_ORDERS);
      let n = 0;
      const slowest: {
        round: number;
        intoRound: number;
        wallClock: string;
        answered: number;
        kafka: number;
        socket: number;
      }[] = [];
      const order = async (): Promise<number> => {
        const product = products[n++ % products.length];
        const sentAt = now();
        const response = await postOrder(platform, product.id);
        const body = await response.json();
        const answeredAt = now();
        if (response.status !== 201) {
          throw new Error(`POST /api/v1/orders answered ${response.status}: ${JSON.stringify(body)}`);
        }
        const atSocket = await arrivals.wait(`o:${body.id}`);
        const atKafka = stages?.at(body.id);
        if (atKafka !== undefined) {
          toKafka.recordValue(Math.max(0, Math.round((atKafka - sentAt) * 1000)));
          kafkaToSocket.recordValue(Math.max(0, Math.round((atSocket - atKafka) * 1000)));
        }
        // Warm-up orders (sent before the measured phase) are not in the histogram: not here either.
        if (sentAt >= measuredSince) {
          slowest.push({
            round: roundsStarted,
            intoRound: sentAt - measuredSince,
            wallClock: new Date(performance.timeOrigin + sentAt).toISOString().slice(11, 23),
            answered: answeredAt - sentAt,
            kafka: (atKafka ?? NaN) - sentAt,
            socket: atSocket - sentAt,
          });
        }
        slowest.sort((a, b) => b.socket - a.socket).splice(SLOWEST_SHOWN);
        return atSocket - sentAt;
      };
      let next = 0;
      const publish = async (): Promise<number> => {
        const id = String(next++);
        const sentAt = now();
        const response = await fetch(`http://127.0.0.1:${port}/publish?id=${id}`, {
          method: "POST",
          signal: AbortSignal.timeout(10_000),
        });
        await response.body?.cancel();
        if (response.status !== 201) throw new Error(`The raw server answered ${response.status}`);
        return (await arrivals.wait(`r:${id}`)) - sentAt;
      };
      await warmUpOrders(ctx.log, order, {
        ratePerSec: RATE_PER_SEC,
        maxInFlight: MAX_IN_FLIGHT,
        pgUrl: platform.pgUrl,
      });
      const serverBefore = await serverOrderTimes(platform);
      const east = platform.config.regions.east;
      const runQueue = await startRunQueueMeter({ ecommerce: east.servicePorts.ecommerce, ingress: east.ingressPort });
      const machine = await startMachineCpuMeter();
      let subjectOrders = 0;
      const sides = await interleaveRounds(
        ROUNDS,
        () => spanRound("POST /orders sent → /ws/orders frame", () => (subjectOrders++, order())),
        () => spanRound("raw POST → Deno.serve WebSocket broadcast", publish),
      );
      const serverAfter = await serverOrderTimes(platform);
      const waited = await runQueue.read();
      // The raw rounds run in between (bench process and its worker only), so bench/ is both sides together.
      ctx.log(`${machinePerOpLine(await machine.read(), subjectOrders)} (both sides' rounds, per subject order)`);
      ctx.log(
        `run-queue wait of the main threads (runnable, no free core), per order: ${
          Object.entries(waited).map(([name, ms]) => `${name} ${(ms / Math.max(1, subjectOrders)).toFixed(2)} ms`)
            .join(", ")
        } (${subjectOrders} orders; the raw rounds in between add little: these processes idle then)`,
      );
      // The e-commerce process's own timing of the same requests (its HTTP histogram), to tell a slow handler
      // from time lost before or after it (ingress, sockets, the bench's own event loop).
      ctx.log(
        `e-commerce's own POST /api/v1/orders timing (warm-up included): ${serverAfter.count - serverBefore.count} ` +
          `answered, over 25 ms: ${serverAfter.over25 - serverBefore.over25}, over 50 ms: ${
            serverAfter.over50 - serverBefore.over50
          }, over 100 ms: ${serverAfter.over100 - serverBefore.over100}`,
      );
      const ms = (h: typeof toKafka, p: number) => (h.getValueAtPercentile(p) / 1000).toFixed(1);
      // Where the slowest measured orders spent their time (ms after the request was sent), to tell a slow
      // request, a late relay and a late consumer apart; "at" is seconds into their round's measured phase
      // (rounds counted over both sides: subject rounds are 1, 4 and 5).
      ctx.log(
        `slowest orders: ${
          slowest.map((o) =>
            `round ${o.round} at ${(o.intoRound / 1000).toFixed(1)} s (${o.wallClock} UTC): 201 ${
              o.answered.toFixed(0)
            }, Kafka ${o.kafka.toFixed(0)}, socket ${o.socket.toFixed(0)}`
          ).join("; ")
        }`,
      );
      ctx.log(
        `stages (warm-up included, ${toKafka.totalCount} orders): request sent → envelope at a Kafka consumer ` +
          `p50 ${ms(toKafka, 50)} / p99 ${ms(toKafka, 99)} ms; Kafka consumer → /ws/orders frame ` +
          `p50 ${ms(kafkaToSocket, 50)} / p99 ${ms(kafkaToSocket, 99)} ms`,
      );
      return resultOf(NAME, sides);
    } finally {
      arrivals.close();
      for (const socket of sockets) socket.close();
      await stages?.close();
      if (worker !== undefined) {
        const stopped = nextMessage(worker, 5_000).catch(() => {});
        worker.postMessage("stop");
        await stopped;
        worker.terminate();
      }
      await releasePlatform(ctx, NAME);
    }
  },
};

const now = () => performance.now();

// deno-lint-ignore no-explicit-any
type Frame = any;

/**
 * Opens a WebSocket, calls `onOpen`, and resolves once a frame of type `readyType` came (or at once when
 * none is named); every frame after that goes to `onFrame`.
 */
function openSocket(
  url: string,
  onOpen: (socket: WebSocket) => void,
  onFrame: (socket: WebSocket, frame: Frame) => void,
  readyType?: string,
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    const timer = setTimeout(
      () => fail(new Error(`${url.split("?")[0]} did not open within ${OPEN_TIMEOUT_MS} ms`)),
      OPEN_TIMEOUT_MS,
    );
    let ready = readyType === undefined;
    const fail = (error: Error) => {
      clearTimeout(timer);
      socket.close();
      reject(error);
    };
    socket.onerror = () => fail(new Error(`WebSocket ${url.split("?")[0]} failed`));
    socket.onopen = () => {
      onOpen(socket);
      if (ready) {
        clearTimeout(timer);
        resolve(socket);
      }
    };
    socket.onmessage = (event) => {
      const frame = JSON.parse(String(event.data));
      if (!ready) {
        if (frame.type === "error") fail(new Error(`${url.split("?")[0]} answered ${String(event.data)}`));
        if (frame.type !== readyType) return;
        ready = true;
        clearTimeout(timer);
        resolve(socket);
        return;
      }
      onFrame(socket, frame);
    };
  });
}

/** How many order POSTs the e-commerce process answered so far, and how many took longer than 25/50/100 ms. */
async function serverOrderTimes(platform: EcommercePlatform) {
  const series = 'method="POST",route="/api/v1/orders"';
  const [count, le25, le50, le100] = await Promise.all([
    platform.counter("bv_http_request_duration_seconds_count", series),
    platform.counter("bv_http_request_duration_seconds_bucket", `le="0.025",${series}`),
    platform.counter("bv_http_request_duration_seconds_bucket", `le="0.05",${series}`),
    platform.counter("bv_http_request_duration_seconds_bucket", `le="0.1",${series}`),
  ]);
  return { count, over25: count - le25, over50: count - le50, over100: count - le100 };
}

/** When the current round's measured phase started (`now()` ms); orders sent before it are warm-up. */
let measuredSince = Infinity;
/** Rounds started so far, both sides (the slowest orders name theirs). */
let roundsStarted = 0;

/** One open-loop round whose histogram holds the span each op returns (ms → µs); warm-up unrecorded. */
async function spanRound(label: string, op: () => Promise<number>): Promise<RateMeasurement> {
  const options = { ratePerSec: RATE_PER_SEC, maxInFlight: MAX_IN_FLIGHT };
  measuredSince = Infinity;
  roundsStarted++;
  await measureAtRate(label, op, { ...options, durationMs: WARMUP_MS });
  measuredSince = now();
  const spans = createLatencyHistogram();
  const measured = await measureAtRate(label, async () => {
    spans.recordValue(Math.max(0, Math.round((await op()) * 1000)));
  }, { ...options, durationMs: DURATION_MS_PER_ROUND });
  return { ...measured, histogram: spans };
}
