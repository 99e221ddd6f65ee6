/** @module Bounded calls to collaborators that may hang or fail (inventory, payment gateway). */
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { log } from "../../../shared/observability/mod.ts";
import type { OrderContext } from "./order_deps.ts";

/**
 * Resolves like `work`, or rejects with 504 `COMMON.UPSTREAM_TIMEOUT` after `timeoutMs`. The call itself is
 * not aborted (the ports take no signal); every collaborator used here is idempotent, so a late success is
 * harmless and a retry repeats it safely.
 */
export async function withTimeout<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ProblemError("COMMON.UPSTREAM_TIMEOUT", `${what} did not answer within ${timeoutMs} ms; retry`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Releases a reservation; a failure is logged, not thrown: the reservation lapses after its TTL anyway. */
export async function releaseQuietly(ctx: OrderContext, orderId: string): Promise<void> {
  try {
    await withTimeout(ctx.stock.release(orderId), ctx.stockTimeoutMs, "Inventory");
  } catch (error) {
    log.warn("could not release a stock reservation; it lapses after its TTL", { orderId, error: String(error) });
  }
}
