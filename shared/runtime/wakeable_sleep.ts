/**
 * @module
 * The pause of a background loop (outbox relay, sweepers, reconcilers): a timer that `wake()` cuts short, so a
 * nudge or a stop does not wait out the interval.
 */

/** A sleep that {@linkcode WakeableSleep.wake} ends early. */
export interface WakeableSleep {
  /** Resolves after `ms`, or at the next `wake()`, whichever comes first. */
  sleep(ms: number): Promise<void>;
  /** Ends the sleep under way, if any; a wake with no sleep under way is not remembered. */
  wake(): void;
}

/** Creates a {@linkcode WakeableSleep}: one sleep at a time (a loop's). */
export function wakeableSleep(): WakeableSleep {
  let wake: (() => void) | undefined;
  return {
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        const end = () => {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        };
        const timer = setTimeout(end, ms);
        wake = end;
      }),
    wake: () => wake?.(),
  };
}
