/**
 * @module
 * Arrival times by id for the push scenarios: whichever comes first, the arrival (a WebSocket or SSE frame)
 * or the wait (the request that caused it), the other finds it. A wait older than its timeout fails.
 */

export interface Arrivals {
  arrive(id: string, atMs: number): void;
  wait(id: string): Promise<number>;
  close(): void;
}

/** `what` names where arrivals are expected, for the timeout's message. */
export function createArrivals(timeoutMs: number, what: string): Arrivals {
  const arrived = new Map<string, number>();
  const waiting = new Map<string, { resolve: (atMs: number) => void; timer: ReturnType<typeof setTimeout> }>();
  return {
    arrive(id, atMs) {
      const waiter = waiting.get(id);
      if (waiter === undefined) {
        arrived.set(id, atMs);
        return;
      }
      waiting.delete(id);
      clearTimeout(waiter.timer);
      waiter.resolve(atMs);
    },
    wait(id) {
      const atMs = arrived.get(id);
      if (atMs !== undefined) {
        arrived.delete(id);
        return Promise.resolve(atMs);
      }
      return new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`"${id}" did not reach ${what} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(id, { resolve, timer });
      });
    },
    close() {
      for (const waiter of waiting.values()) clearTimeout(waiter.timer);
      waiting.clear();
      arrived.clear();
    },
  };
}
