/**
 * @module
 * Matches a published message with its consumption in round-trip scenarios: the op registers an id with
 * `expect(id)` before publishing, the consumer calls `arrive(id)`. One watchdog interval (not a timer per
 * message, whose cost would land on both sides of a microsecond-scale comparison) rejects waits that
 * outlive `timeoutMs`, so a lost message fails the scenario instead of hanging it.
 */

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly sinceMs: number;
}

/** Options of {@linkcode createRendezvous}. */
export interface RendezvousOptions {
  /** A wait older than this is rejected. @default 10_000 */
  readonly timeoutMs?: number;
  /** How often the watchdog looks. @default 500 */
  readonly checkEveryMs?: number;
  /** Milliseconds from an arbitrary origin. @default Date.now */
  readonly now?: () => number;
}

export interface Rendezvous {
  /** Resolves when `arrive(id)` is called; register before publishing so an early arrival is not missed. */
  expect(id: string): Promise<void>;
  /** Resolves the wait for `id`; returns false for an id nobody waits for (a redelivery, a stray). */
  arrive(id: string): boolean;
  /** Rejects every wait and stops the watchdog. */
  close(): void;
}

/** Creates a rendezvous with its watchdog running until `close()`. */
export function createRendezvous(options: RendezvousOptions = {}): Rendezvous {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const now = options.now ?? Date.now;
  const waiting = new Map<string, Waiter>();
  const watchdog = setInterval(() => {
    const cutoffMs = now() - timeoutMs;
    for (const [id, waiter] of waiting) {
      if (waiter.sinceMs > cutoffMs) continue;
      waiting.delete(id);
      waiter.reject(new Error(`Message "${id}" was not consumed within ${timeoutMs} ms`));
    }
  }, options.checkEveryMs ?? 500);
  return {
    expect(id) {
      if (waiting.has(id)) {
        return Promise.reject(new Error(`Message id "${id}" is already awaited; ids must be unique`));
      }
      return new Promise<void>((resolve, reject) => waiting.set(id, { resolve, reject, sinceMs: now() }));
    },
    arrive(id) {
      const waiter = waiting.get(id);
      if (waiter === undefined) return false;
      waiting.delete(id);
      waiter.resolve();
      return true;
    },
    close() {
      clearInterval(watchdog);
      for (const [id, waiter] of waiting) waiter.reject(new Error(`Stopped waiting for message "${id}"`));
      waiting.clear();
    },
  };
}
