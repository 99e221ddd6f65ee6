/**
 * @module
 * Routes kafkajs's log lines and the adapter's own through one function, so a process decides where
 * Kafka logs go (JSON lines on stderr by default). Private to the Kafka adapter.
 */
import { type logCreator, logLevel as KafkaLogLevel } from "kafkajs";

/** One log line from the adapter or from kafkajs. */
export interface KafkaLogEntry {
  readonly level: "error" | "warn" | "info" | "debug";
  readonly message: string;
  /** "kafkajs" for the library's lines, "event-log" for the adapter's. */
  readonly source: string;
  readonly [field: string]: unknown;
}

export type KafkaLogSink = (entry: KafkaLogEntry) => void;

/** The levels a caller may choose for kafkajs's own chatter; the adapter's warnings always pass. */
export type KafkaLogLevelName = "nothing" | "error" | "warn" | "info" | "debug";

/** JSON lines on stderr: machine-readable and out of stdout, which some processes use for output. */
export const stderrJsonSink: KafkaLogSink = (entry) => {
  console.error(JSON.stringify({ time: new Date().toISOString(), ...entry }));
};

export function kafkajsLevelOf(name: KafkaLogLevelName): KafkaLogLevel {
  const levels: Record<KafkaLogLevelName, KafkaLogLevel> = {
    nothing: KafkaLogLevel.NOTHING,
    error: KafkaLogLevel.ERROR,
    warn: KafkaLogLevel.WARN,
    info: KafkaLogLevel.INFO,
    debug: KafkaLogLevel.DEBUG,
  };
  return levels[name];
}

const SEVERITY: Record<KafkaLogEntry["level"], number> = { error: 1, warn: 2, info: 4, debug: 5 };

/** A kafkajs `logCreator` that hands every line at or above `level` to `sink` as a flat entry. */
export function logCreatorFor(sink: KafkaLogSink, level: KafkaLogLevelName): logCreator {
  const threshold = kafkajsLevelOf(level);
  return () => ({ namespace, label, log }) => {
    const { message, timestamp: _timestamp, logger: _logger, ...fields } = log;
    const entryLevel = levelOf(namespace, label, String(message));
    if (SEVERITY[entryLevel] > threshold) return;
    sink({ ...plainFields(fields), level: entryLevel, source: "kafkajs", namespace, message: String(message) });
  };
}

/**
 * kafkajs logs every error response at ERROR in its Connection namespace, including the expected ones
 * ("The group is rebalancing", "Topic already exists"). The same error reaches the caller or kafkajs's
 * retry logic, which report it if it matters, so these lines are debug detail.
 */
function levelOf(namespace: string, label: string, message: string): KafkaLogEntry["level"] {
  if (namespace === "Connection" && message.startsWith("Response ")) return "debug";
  return levelOfLabel(label);
}

function levelOfLabel(label: string): KafkaLogEntry["level"] {
  const lower = label.toLowerCase();
  return lower === "error" || lower === "warn" || lower === "info" ? lower : "debug";
}

/** Errors do not survive JSON.stringify; keep their message. */
function plainFields(fields: Record<string, unknown>): Record<string, unknown> {
  const plain: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) {
    plain[name] = value instanceof Error ? value.message : value;
  }
  return plain;
}
