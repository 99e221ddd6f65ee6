/**
 * @module
 * The event envelope of seed 001 section 21, the registry of event types and their payload schemas, and
 * helpers to build and parse envelopes. Every event on Kafka, RabbitMQ or MQTT bridges travels in it; its
 * `eventType` is the topic name.
 */
import { z } from "zod";
import { parseTopicName } from "./topics.ts";

/** The envelope fields; `payload` is validated separately against the registry. */
export const envelopeSchema = z.strictObject({
  eventId: z.uuid(),
  eventType: z.string().refine((t) => parseTopicName(t) !== null, {
    message: "eventType must be <domain>.<context>.<entity>.<eventType>.v<version>",
  }),
  occurredAt: z.iso.datetime({ offset: true }),
  producer: z.string().min(1).max(100),
  traceId: z.string().regex(/^[0-9a-f]{32}$/),
  correlationId: z.string().min(1).max(128),
  schemaVersion: z.string().regex(/^\d+\.\d+$/),
  tenantId: z.string().min(1).max(64),
  partitionKey: z.string().min(1).max(256),
  payload: z.unknown(),
});

export type Envelope<P = unknown> = Omit<z.infer<typeof envelopeSchema>, "payload"> & { readonly payload: P };

/** A registered event type: its topic, payload schema, and how its partition key is chosen. */
export interface EventDefinition<P> {
  readonly eventType: string;
  readonly schemaVersion: string;
  readonly payload: z.ZodType<P>;
  /** The field of the payload whose value is the partition key (ordering unit). */
  readonly partitionKeyOf: (payload: P) => string;
}

const registry = new Map<string, EventDefinition<unknown>>();

/** Registers an event type once; registering the same type twice is a programming error. */
export function defineEvent<P>(definition: EventDefinition<P>): EventDefinition<P> {
  if (parseTopicName(definition.eventType) === null) {
    throw new RangeError(`Event type "${definition.eventType}" does not follow the topic naming rule`);
  }
  if (registry.has(definition.eventType)) {
    throw new RangeError(`Event type "${definition.eventType}" is already registered`);
  }
  registry.set(definition.eventType, definition as EventDefinition<unknown>);
  return definition;
}

/** The definition of an event type, or undefined. */
export function eventDefinition(eventType: string): EventDefinition<unknown> | undefined {
  return registry.get(eventType);
}

export function registeredEventTypes(): string[] {
  return [...registry.keys()].sort();
}

/** Builds a validated envelope for `definition` with `payload`. */
export function createEnvelope<P>(
  definition: EventDefinition<P>,
  payload: P,
  context: {
    readonly producer: string;
    readonly traceId: string;
    readonly correlationId: string;
    readonly tenantId?: string;
    readonly now?: () => Date;
    readonly eventId?: string;
  },
): Envelope<P> {
  const parsed = definition.payload.parse(payload);
  return {
    eventId: context.eventId ?? crypto.randomUUID(),
    eventType: definition.eventType,
    occurredAt: (context.now?.() ?? new Date()).toISOString(),
    producer: context.producer,
    traceId: context.traceId,
    correlationId: context.correlationId,
    schemaVersion: definition.schemaVersion,
    tenantId: context.tenantId ?? "default",
    partitionKey: definition.partitionKeyOf(parsed),
    payload: parsed,
  };
}

/** The result of parsing a received envelope: the event, or the reason it was rejected. */
export type ParsedEnvelope = { ok: true; envelope: Envelope } | { ok: false; reason: string };

/** Parses JSON text into an envelope and validates its payload against the registered schema. */
export function parseEnvelope(text: string): ParsedEnvelope {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { ok: false, reason: `Not JSON: ${(error as Error).message}` };
  }
  const envelope = envelopeSchema.safeParse(raw);
  if (!envelope.success) return { ok: false, reason: `Bad envelope: ${z.prettifyError(envelope.error)}` };
  const definition = registry.get(envelope.data.eventType);
  if (!definition) return { ok: false, reason: `Unknown event type "${envelope.data.eventType}"` };
  const payload = definition.payload.safeParse(envelope.data.payload);
  if (!payload.success) return { ok: false, reason: `Bad payload: ${z.prettifyError(payload.error)}` };
  return { ok: true, envelope: { ...envelope.data, payload: payload.data } };
}
