/**
 * @module
 * Trace propagation for the messaging ports, as decorators so every adapter (real or embedded) carries it
 * the same way: publishing adds `traceparent` and `correlation-id` headers (Kafka headers, AMQP headers,
 * MQTT v5 user properties) from the current context unless the caller set them; consuming runs the handler
 * inside the context those headers describe, so its logs and onward calls continue the trace.
 */
import type { BatchSubscribeOptions, EventLog, MqttBus, WorkQueue } from "../ports/mod.ts";
import { contextFromCarrier, traceHeaders, withTraceContext } from "./trace_context.ts";

function withTrace(headers: Readonly<Record<string, string>> | undefined): Record<string, string> {
  return { ...traceHeaders(), ...headers };
}

export function tracedEventLog(log: EventLog): EventLog {
  return {
    ensureTopics: (topics) => log.ensureTopics(topics),
    publish: (topic, records) => log.publish(topic, records.map((r) => ({ ...r, headers: withTrace(r.headers) }))),
    subscribe: (options) =>
      log.subscribe({
        ...options,
        handler: (record) => withTraceContext(contextFromCarrier(record.headers), () => options.handler(record)),
      }),
    // Kept only where the adapter has it, so callers can still fall back to `subscribe`. A batch spans
    // several requests' traces: it continues the first record's.
    ...(log.subscribeBatches === undefined ? {} : {
      subscribeBatches: (options: BatchSubscribeOptions) =>
        log.subscribeBatches!({
          ...options,
          handler: (records) =>
            withTraceContext(contextFromCarrier(records[0]?.headers ?? {}), () => options.handler(records)),
        }),
    }),
    ping: (timeoutMs) => log.ping(timeoutMs),
    close: () => log.close(),
  };
}

export function tracedWorkQueue(queue: WorkQueue): WorkQueue {
  return {
    declare: (spec) => queue.declare(spec),
    publish: (name, body, options) => queue.publish(name, body, { ...options, headers: withTrace(options?.headers) }),
    consume: (name, handler, options) =>
      queue.consume(
        name,
        (message) => withTraceContext(contextFromCarrier(message.headers), () => handler(message)),
        options,
      ),
    ping: (timeoutMs) => queue.ping(timeoutMs),
    close: () => queue.close(),
  };
}

export function tracedMqttBus(bus: MqttBus): MqttBus {
  return {
    publish: (topic, payload, options) =>
      bus.publish(topic, payload, { ...options, userProperties: withTrace(options?.userProperties) }),
    subscribe: (filter, qos, handler) =>
      bus.subscribe(
        filter,
        qos,
        (message) => withTraceContext(contextFromCarrier(message.userProperties), () => handler(message)),
      ),
    unsubscribe: (filter) => bus.unsubscribe(filter),
    ping: (timeoutMs) => bus.ping(timeoutMs),
    close: () => bus.close(),
  };
}
