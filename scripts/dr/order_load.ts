/**
 * @module
 * The DR drill's customer: places orders through the edge at a steady rate (open loop: a slow answer does
 * not slow the next send, up to `maxInFlight`), each with its own Idempotency-Key, and records what every
 * attempt got. Acknowledged orders (201) are what RPO is measured against.
 */

/** One `POST /api/v1/orders` and its outcome. */
export interface OrderAttempt {
  readonly sentMs: number;
  doneMs: number;
  /** HTTP status, or 0 when no answer came (connection error, timeout). */
  status: number;
  orderId?: string;
  /** The problem code of a failed attempt. */
  code?: string;
  /** The region that wrote the order (`x-bv-order-writer` when forwarded, else the serving region). */
  writer?: string;
}

export interface OrderLoadOptions {
  readonly edgeUrl: string;
  readonly token: string;
  readonly productId: string;
  readonly ratePerSec: number;
  /** Attempts in flight at most; a send that would exceed it is skipped (and counted). */
  readonly maxInFlight: number;
  /** Bound on one attempt. */
  readonly timeoutMs: number;
}

export interface OrderLoad {
  readonly attempts: readonly OrderAttempt[];
  /** Sends skipped because `maxInFlight` attempts were already waiting. */
  skipped(): number;
  /** Stops sending and waits for the attempts in flight. */
  stop(): Promise<OrderAttempt[]>;
}

export function startOrderLoad(options: OrderLoadOptions): OrderLoad {
  if (!(options.ratePerSec > 0 && options.ratePerSec <= 1_000)) {
    throw new RangeError(`ratePerSec must be in (0, 1000], got ${options.ratePerSec}`);
  }
  const attempts: OrderAttempt[] = [];
  const inFlight = new Set<Promise<void>>();
  let skipped = 0;
  const send = () => {
    if (inFlight.size >= options.maxInFlight) {
      skipped++;
      return;
    }
    const attempt: OrderAttempt = { sentMs: performance.now(), doneMs: 0, status: 0 };
    attempts.push(attempt);
    const done = placeOnce(options, attempt).finally(() => inFlight.delete(done));
    inFlight.add(done);
  };
  const timer = setInterval(send, 1_000 / options.ratePerSec);
  return {
    attempts,
    skipped: () => skipped,
    async stop() {
      clearInterval(timer);
      await Promise.allSettled([...inFlight]);
      return attempts;
    },
  };
}

async function placeOnce(options: OrderLoadOptions, attempt: OrderAttempt): Promise<void> {
  try {
    const response = await fetch(`${options.edgeUrl}/api/v1/orders`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${options.token}`,
        "idempotency-key": crypto.randomUUID(),
      },
      body: JSON.stringify({ items: [{ productId: options.productId, qty: 1 }] }),
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    const body = await response.json().catch(() => ({}));
    attempt.status = response.status;
    if (response.status === 201) attempt.orderId = body.id;
    else attempt.code = body.code;
    attempt.writer = response.headers.get("x-bv-order-writer") ?? response.headers.get("x-bv-region") ?? undefined;
  } catch (error) {
    attempt.code = (error as Error).name;
  } finally {
    attempt.doneMs = performance.now();
  }
}
