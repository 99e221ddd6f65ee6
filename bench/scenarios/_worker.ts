/** @module A worker's next message with a timeout, for scenarios that serve their baseline off the main thread. */

/** The worker's next message, or an error (its own, or a timeout). */
export function nextMessage<T>(worker: Worker, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => settle(() => reject(new Error(`Worker silent for ${timeoutMs} ms`))),
      timeoutMs,
    );
    const settle = (finish: () => void) => {
      clearTimeout(timer);
      worker.onmessage = null;
      worker.onerror = null;
      finish();
    };
    worker.onmessage = (event) => settle(() => resolve(event.data as T));
    worker.onerror = (event) => {
      event.preventDefault();
      settle(() => reject(new Error(`Worker failed: ${event.message}`)));
    };
  });
}
