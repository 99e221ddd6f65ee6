/**
 * @module
 * A script's cleanup, run exactly once whether the script ends or is interrupted. Deno ends a process on
 * SIGINT (Ctrl-C) or SIGTERM (a test's timeout, `kill`) without running `finally` blocks, so a drill stopped
 * that way left east's PostgreSQL and Kafka down and its databases, slots, vhosts and topics behind. Here a
 * signal starts the same cleanup the normal path runs (or joins it, when it is already running), waits for
 * it, then exits with 128 + the signal's number. A second signal exits at once: the cleanup is bounded, but
 * whoever presses Ctrl-C twice has decided not to wait.
 */

export type InterruptSignal = "SIGINT" | "SIGTERM";

const SIGNALS: readonly InterruptSignal[] = ["SIGINT", "SIGTERM"];
/** 128 + signal number, as a shell reports a process ended by that signal. */
const EXIT_CODES: Readonly<Record<InterruptSignal, number>> = { SIGINT: 130, SIGTERM: 143 };

/** What {@linkcode cleanupOnInterrupt} touches of the process; tests pass fakes, the drill its own log. */
export interface InterruptIo {
  addSignalListener(signal: InterruptSignal, handler: () => void): void;
  removeSignalListener(signal: InterruptSignal, handler: () => void): void;
  exit(code: number): void;
  log(line: string): void;
}

const DENO_IO: InterruptIo = {
  addSignalListener: (signal, handler) => Deno.addSignalListener(signal, handler),
  removeSignalListener: (signal, handler) => Deno.removeSignalListener(signal, handler),
  exit: (code) => Deno.exit(code),
  log: (line) => console.error(line),
};

export interface InterruptibleCleanup {
  /** Runs the cleanup the first time; every later call, and every signal, waits for that same run. */
  run(): Promise<void>;
  /** Aborted when a signal arrived: the script checks it before each step that changes anything. */
  readonly signal: AbortSignal;
  /** The exit code a signal asks for (130 for SIGINT, 143 for SIGTERM), or undefined without one. */
  readonly exitCode: number | undefined;
  /** Stops listening for the signals. */
  dispose(): void;
}

/**
 * Listens for SIGINT and SIGTERM until {@linkcode InterruptibleCleanup.dispose}; `cleanup` should not throw
 * (each of its steps logs its own failure), but a rejection is logged rather than lost.
 */
export function cleanupOnInterrupt(
  cleanup: () => Promise<void>,
  ioOverrides: Partial<InterruptIo> = {},
): InterruptibleCleanup {
  const io: InterruptIo = { ...DENO_IO, ...ioOverrides };
  const aborter = new AbortController();
  let running: Promise<void> | undefined;
  let exitCode: number | undefined;
  const run = () =>
    running ??= cleanup().catch((error) => io.log(`cleanup failed: ${(error as Error)?.stack ?? error}`));

  const handlers = SIGNALS.map((signal) => {
    const handler = () => {
      if (exitCode !== undefined) {
        io.log(`${signal} again: exiting without waiting for the cleanup`);
        io.exit(EXIT_CODES[signal]);
        return;
      }
      exitCode = EXIT_CODES[signal];
      io.log(`${signal}: cleaning up before exiting (${signal} again to exit at once)`);
      aborter.abort(new Error(`Interrupted by ${signal}`));
      void run().then(() => io.exit(EXIT_CODES[signal]));
    };
    io.addSignalListener(signal, handler);
    return { signal, handler };
  });

  return {
    run,
    signal: aborter.signal,
    get exitCode() {
      return exitCode;
    },
    dispose() {
      for (const { signal, handler } of handlers) io.removeSignalListener(signal, handler);
    },
  };
}
