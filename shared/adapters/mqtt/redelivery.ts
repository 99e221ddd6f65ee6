/**
 * @module
 * When to drop the connection so the broker delivers again the QoS 1 messages whose handler failed. MQTT has no
 * negative acknowledgement: a broker sends an unacknowledged message again only when the session reconnects
 * (MQTT 3.1.1 and 5, section 4.4), and mqtt.js 5 neither acknowledges nor reconnects when `handleMessage` reports
 * an error — it reads the next packet. Left alone, such a message would wait for some unrelated disconnect while
 * holding one slot of the broker's in-flight window (Mosquitto: 20), so enough failures would stop delivery
 * altogether. The bus therefore drops the connection itself after a backoff, and mqtt.js reconnects as after any
 * lost connection. Only a persistent session makes this redeliver anything.
 */

/** What {@linkcode createRedelivery} needs; the I/O is passed in. */
export interface RedeliveryOptions {
  /** Delay between the first failure of a cycle and the forced reconnect, after a success. */
  readonly delayMsMin: number;
  /** The delay doubles with each forced reconnect while handlers keep failing, up to this. */
  readonly delayMsMax: number;
  /** Whether the connection is up; when it is not, mqtt.js is reconnecting already. */
  readonly isConnected: () => boolean;
  /** Ends the connection after what was already written (acknowledgements) got out; mqtt.js then reconnects. */
  readonly dropConnection: () => void;
  /** Called once per cycle, by the failure that scheduled the forced reconnect. */
  readonly onScheduled: (error: Error, delayMs: number) => void;
  /** Called when the connection is dropped (not when the connection was lost before the delay ended). */
  readonly onDropped: () => void;
}

/** The bookkeeping; the bus calls it around every handled message. */
export interface Redelivery {
  /** True from the drop until the connection closed: QoS 1 messages are then left alone (not acknowledged). */
  readonly dropping: boolean;
  /** A message's handlers start; returns the connection it came on (for {@linkcode Redelivery.failed}). */
  began(): number;
  /** Its handlers resolved. */
  succeeded(): void;
  /** A QoS 1 message of a persistent session was left unacknowledged because a handler failed. */
  failed(error: Error, connection: number): void;
  /** After the message's callback ran (its PUBACK, if any, is written): a drop that is due happens now. */
  settled(connection: number): void;
  /** The connection closed, whoever closed it: reconnecting delivers its unacknowledged messages again. */
  disconnected(): void;
  /** No forced reconnect from now on; cancels a pending one. */
  close(): void;
}

/** Makes the bookkeeping of one bus. */
export function createRedelivery(options: RedeliveryOptions): Redelivery {
  const { delayMsMin, delayMsMax } = options;
  let delayMs = delayMsMin;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let connection = 0;
  let running = 0;
  let due = false;
  let dropping = false;
  let closed = false;

  const drop = () => {
    due = false;
    if (closed || !options.isConnected()) return;
    dropping = true;
    delayMs = Math.min(delayMs * 2, delayMsMax);
    options.onDropped();
    options.dropConnection();
  };

  return {
    get dropping() {
      return dropping;
    },
    began() {
      running++;
      return connection;
    },
    succeeded() {
      // Not while a cycle is pending: a message that succeeds beside one that keeps failing says nothing about it.
      if (timer === undefined && !due && !dropping) delayMs = delayMsMin;
    },
    failed(error, failedOn) {
      // One forced reconnect per cycle, however many messages fail in it; and none for a message whose
      // connection is gone already: the reconnect under way delivers it again.
      if (closed || timer !== undefined || due || dropping || failedOn !== connection) return;
      const waitMs = delayMs;
      timer = setTimeout(() => {
        timer = undefined;
        // A handler still running would lose its PUBACK (or send it on the next connection): wait for it.
        if (running > 0) due = true;
        else drop();
      }, waitMs);
      options.onScheduled(error, waitMs);
    },
    settled(settledOn) {
      // A handler of a connection that is gone cannot hold up the drop of the current one.
      if (settledOn !== connection) return;
      running--;
      if (due && running === 0) drop();
    },
    disconnected() {
      connection++;
      running = 0;
      clearTimeout(timer);
      timer = undefined;
      due = false;
      dropping = false;
    },
    close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      due = false;
    },
  };
}
