/**
 * @module
 * Where integration tests find the real servers. Defaults match the machines of this project
 * (DEVELOPERS.md); each can be overridden by an environment variable.
 */

function env(name: string, fallback: string): string {
  return Deno.env.get(name) ?? fallback;
}

/** Connection settings for the real services used by integration and contract tests. */
export const realInfra = Object.freeze({
  /** A database the tests may connect to in order to create and drop their own databases. */
  postgresAdminUrl: env("BV_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
  redisUrl: env("BV_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
  /** Without a vhost; tests add their own (see `createTestVhost`). */
  amqpUrl: env("BV_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672"),
  mqttUrl: env("BV_TEST_MQTT_URL", "mqtt://127.0.0.1:1883"),
  /** The east Kafka cluster started by `deno task infra:up`. */
  kafkaBrokers: env("BV_TEST_KAFKA_BROKERS", "127.0.0.1:9092").split(","),
});
