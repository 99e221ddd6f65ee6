/**
 * @module
 * A bounded batcher: callers `add` an item and wait until the batch holding it has been flushed, so a
 * caller that acknowledges something after `add` resolves acknowledges only what was flushed. One flush runs
 * at a time (batches leave in arrival order). A batch leaves when it is full, when every feeder is waiting
 * in it (nobody else can add, so lingering would only add latency), or when its first item has lingered.
 */

/** Options of {@linkcode createBatcher}. */
export interface BatcherOptions<T> {
  /** Most items in one flush. */
  readonly batchMax: number;
  /** Longest wait of a batch's first item for company. */
  readonly lingerMs: number;
  /**
   * How many callers can be waiting at once (for the MQTT bridge: connections, each of which hands over one
   * message at a time). When that many items are pending the batch leaves at once. @default 1
   */
  readonly feeders?: number;
  /** Most items waiting (not yet in a flush); past it `add` rejects. @default 4 × batchMax */
  readonly pendingMax?: number;
  /**
   * Writes one batch; the batch's callers see its outcome. It may resolve with one entry per item (in the
   * batch's order): `undefined` for an item written, the error for one that was not, so a batch whose
   * items went to several places fails only the items that did not get there.
   */
  readonly flush: (items: readonly T[]) => Promise<void | readonly unknown[]>;
}

export interface Batcher<T> {
  /** Resolves once the batch holding `item` was flushed; rejects with the flush's error. */
  add(item: T): Promise<void>;
  /** Resolves once nothing is pending or flushing. */
  drain(): Promise<void>;
}

interface Entry<T> {
  readonly item: T;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** Creates a batcher; it owns no resources beyond a linger timer that runs only while items wait. */
export function createBatcher<T>(options: BatcherOptions<T>): Batcher<T> {
  const { batchMax, lingerMs, feeders = 1, flush } = options;
  const pendingMax = options.pendingMax ?? 4 * batchMax;
  assertPositiveInteger("batchMax", batchMax);
  assertPositiveInteger("feeders", feeders);
  assertPositiveInteger("pendingMax", pendingMax);
  if (!Number.isFinite(lingerMs) || lingerMs < 0) throw new RangeError(`lingerMs must be ≥ 0, got ${lingerMs}`);

  const pending: Entry<T>[] = [];
  let flushing: Promise<void> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lingered = false;
  const idleWaiters: (() => void)[] = [];

  function pump(): void {
    if (pending.length === 0) {
      if (!flushing) { for (const wake of idleWaiters.splice(0)) wake(); }
      return;
    }
    const ready = pending.length >= batchMax || pending.length >= feeders || lingered;
    if (!ready) {
      timer ??= setTimeout(() => {
        timer = undefined;
        lingered = true;
        pump();
      }, lingerMs);
      return;
    }
    if (flushing) return;
    clearTimeout(timer);
    timer = undefined;
    lingered = false;
    const batch = pending.splice(0, batchMax);
    flushing = flushBatch(batch).finally(() => {
      flushing = undefined;
      pump();
    });
  }

  async function flushBatch(batch: readonly Entry<T>[]): Promise<void> {
    try {
      const failures = await flush(batch.map((entry) => entry.item));
      for (const [index, entry] of batch.entries()) {
        const failure = failures?.[index];
        if (failure === undefined) entry.resolve();
        else entry.reject(failure);
      }
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    }
  }

  return {
    add(item: T): Promise<void> {
      if (pending.length >= pendingMax) {
        return Promise.reject(new RangeError(`Cannot batch more than ${pendingMax} waiting items; slow down`));
      }
      return new Promise<void>((resolve, reject) => {
        pending.push({ item, resolve, reject });
        pump();
      });
    },
    drain(): Promise<void> {
      if (pending.length === 0 && !flushing) return Promise.resolve();
      return new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}

function assertPositiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a whole number ≥ 1, got ${value}`);
}
