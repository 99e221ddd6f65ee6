/**
 * @module
 * The e-commerce deployable of a region (seed 003): catalog, cart, inventory (REST + gRPC), orders with
 * Idempotency-Key and a transactional outbox, payment through the legacy SOAP gateway, GraphQL reads and
 * the OpenAPI document. This file is the one place its parts are wired together.
 */
import { ecommerceEvents } from "../../shared/contracts/mod.ts";
import { dlqTopicOf } from "../../shared/ports/mod.ts";
import { migrate } from "../../shared/ports/sql_migrate.ts";
import { createServiceApp } from "../../shared/runtime/mod.ts";
import { log } from "../../shared/observability/mod.ts";
import { createHealthService, startGrpcServer } from "../../shared/adapters/grpc/mod.ts";
import { portChecks, type ServiceFactory } from "../wiring/service_context.ts";
import { regionalVerifier } from "../wiring/verifier.ts";
import { withVerifiedTokenCache } from "../../shared/auth/mod.ts";
import { outboxMigrations } from "./outbox/mod.ts";
import { catalogMigrations, createCatalogRoutes } from "./catalog/mod.ts";
import { cartMigrations, createCartRoutes } from "./cart/mod.ts";
import {
  createInventoryClient,
  createInventoryGrpcService,
  createInventoryRoutes,
  inventoryMigrations,
} from "./inventory/mod.ts";
import { createOrderRoutes, ordersMigrations } from "./orders/mod.ts";
import {
  bypassedWhileReplica,
  createWriterRoleReader,
  forwardOrderWrites,
  orderWriterMigrations,
  sqlReplicationPositions,
} from "./orders/writer/mod.ts";
import { createSoapPaymentGateway } from "./payment/mod.ts";
import { createGraphqlRoutes } from "./graphql/mod.ts";
import { createOpenApiRoutes } from "./openapi/mod.ts";
import { notificationsMigrations, startOrderNotifications } from "./notifications/mod.ts";
import { createSalePrices, flashSalesMigrations, startFlashSales } from "./flash_sales/mod.ts";
import { startInvalidations } from "./invalidations/mod.ts";
import { createSensorBatchRoutes, internalSigningKeyOf } from "./sensors/mod.ts";
import { startWebhooks, webhooksMigrations } from "./webhooks/mod.ts";
import { analyticsMigrations, createAnalyticsRoutes } from "./analytics/mod.ts";
import { startEcommerceBackgroundOn } from "./background.ts";
import { startBackgroundThread } from "./background_thread.ts";

/** The topics e-commerce publishes, each with its dead-letter topic. */
export const ECOMMERCE_TOPICS: readonly string[] = Object.values(ecommerceEvents).flatMap((event) => [
  event.eventType,
  dlqTopicOf(event.eventType),
]);

/** Every e-commerce migration, in dependency order. */
export const ECOMMERCE_MIGRATIONS = [
  ...outboxMigrations,
  ...catalogMigrations,
  ...cartMigrations,
  ...inventoryMigrations,
  ...ordersMigrations,
  ...orderWriterMigrations,
  ...analyticsMigrations,
  ...notificationsMigrations,
  ...flashSalesMigrations,
  ...webhooksMigrations,
];

export const createEcommerceService: ServiceFactory = async (context) => {
  const { config, region, ports, lifecycle, name } = context;
  // Before anything starts: without the shared key this process could neither forward nor accept sensor batches,
  // nor sign or trust the hop claim of a forwarded write.
  const signingKey = internalSigningKeyOf(config);
  const [sql, cache, eventLog] = await Promise.all([ports.sql(), ports.cache(), ports.eventLog()]);
  const applied = await migrate(sql, ECOMMERCE_MIGRATIONS);
  if (applied.length > 0) log.info("migrations applied", { applied });
  await eventLog.ensureTopics(ECOMMERCE_TOPICS.map((topic) => ({ name: topic, partitions: 3 })));

  // Relay, projections, sensors and purges: a thread of their own on the real services (background.ts).
  const background = ports.mode === "infra"
    ? await startBackgroundThread({ config, region, name, lifecycle })
    : await startEcommerceBackgroundOn(ports, { config, region, name, lifecycle });
  const nudgeOutbox = background.nudgeOutbox;

  const checks = portChecks(ports, name, ["sql", "cache", "eventLog", "workQueue", "mqtt"]);
  // The inventory gRPC port serves Inventory and grpc.health.v1 (over the same checks as /readyz). It has no
  // authentication, so it binds to BV_GRPC_HOST (loopback unless set), not to the public listeners' BV_HOST.
  const grpcPort = config.regions[region].grpcInventoryPort;
  const grpcServer = await startGrpcServer({
    host: config.BV_GRPC_HOST,
    port: grpcPort,
    services: [createHealthService(checks, 1_000), createInventoryGrpcService({ sql, nudgeOutbox })],
  });
  lifecycle.onStop(`${name} grpc`, () => grpcServer.close(5_000));
  // Orders reach inventory over gRPC like any other client would, even in the same process.
  const stock = createInventoryClient(`${config.grpcConnectHost}:${grpcPort}`);
  lifecycle.onStop(`${name} inventory client`, () => Promise.resolve(stock.close()));

  // Single writer (orders/writer): a replica region forwards writes of the replicated tables to the writer.
  const role = createWriterRoleReader(sql);
  const writerElsewhere = async () => {
    const current = await role.current();
    return current && current.writerRegion !== current.localRegion ? current.writerRegion : undefined;
  };
  const isReplica = async () => (await writerElsewhere()) !== undefined;

  // The legacy gateway is external: the adapter loads its WSDL lazily, so it may start after us.
  const gatewayUrl = `http://${config.connectHost}:${config.BV_PAYMENT_GATEWAY_PORT}`;
  const payments = await createSoapPaymentGateway({
    wsdlUrl: `${gatewayUrl}/soap/payment?wsdl`,
    fallbackUrl: `${gatewayUrl}/rest/payments`,
  });
  lifecycle.onStop(`${name} payment gateway`, () => Promise.resolve(payments.close()));
  // A session sends the same token with every request: verify it once per minute, not per request.
  const verifier = withVerifiedTokenCache(regionalVerifier(config, region));
  // These consumers leave their groups at the same time on stop (one after another overran the grace period).
  const consumers: { close(): Promise<void> }[] = [];
  lifecycle.onStop(`${name} consumers`, async () => {
    await Promise.allSettled(consumers.map((consumer) => consumer.close()));
  });
  const notifications = await startOrderNotifications({ sql, cache, eventLog, verifier, region });
  consumers.push(notifications);

  const flashSales = await startFlashSales({ sql, cache, eventLog, verifier, nudgeOutbox, region }, {
    subscribersMax: config.BV_FLASH_SALE_STREAMS_MAX,
  });
  consumers.push(flashSales);
  // The edge's purge feed; not awaited: the route answers 503 until its consumer has joined.
  const invalidations = await startInvalidations({ eventLog, cache, region });
  consumers.push(invalidations);

  const webhooks = await startWebhooks({
    sql,
    eventLog,
    queue: await ports.workQueue(),
    verifier,
    nudgeOutbox,
    region,
    secretsKey: config.BV_WEBHOOK_SECRETS_KEY,
    previousSecretsKey: config.BV_WEBHOOK_SECRETS_KEY_PREVIOUS,
    secretUnreadableGraceMs: config.BV_WEBHOOK_SECRET_UNREADABLE_GRACE_MS,
    retryDelaysMs: config.BV_WEBHOOK_RETRY_DELAYS_MS,
    deliveryTimeoutMs: config.BV_WEBHOOK_DELIVERY_TIMEOUT_MS,
    breaker: {
      consecutiveFailures: config.BV_WEBHOOK_BREAKER_FAILURES,
      halfOpenAfterMs: config.BV_WEBHOOK_BREAKER_HALF_OPEN_MS,
    },
    endpointConcurrency: config.BV_WEBHOOK_ENDPOINT_CONCURRENCY,
    secretOverlapMs: config.BV_WEBHOOK_SECRET_OVERLAP_MS,
    // `public` unless set: `./bv start` and `start:infra` choose `any` for their partner receivers on localhost.
    egress: config.BV_WEBHOOK_EGRESS,
  });
  consumers.push(webhooks);

  const app = createServiceApp({ name, checks });
  // While this region is a replica, writes of the replicated tables (orders, catalog, inventory, carts) go to
  // the writer region's ingress (orders/writer); reads stay here.
  app.use(
    "/api/v1/*",
    forwardOrderWrites({
      role,
      positions: sqlReplicationPositions(sql),
      ingressUrlOf: (r) =>
        r === "east" || r === "west" ? `http://${config.connectHost}:${config.regions[r].ingressPort}` : undefined,
      timeoutMs: config.BV_CALL_TIMEOUT_MS,
      // The hop claim (x-bv-forwarded-from-region) is signed with it and trusted only when it verifies.
      signingKey,
    }),
  );
  app.route("/", createSensorBatchRoutes({ sql, writerElsewhere, nudgeOutbox, signingKey }));
  app.route("/", webhooks.routes);
  app.route("/", notifications.routes);
  app.route("/", flashSales.routes);
  app.route("/", invalidations.routes);
  // A replica's product caches would go stale (their invalidations are the writer's events): bypassed there.
  const readCache = bypassedWhileReplica(cache, isReplica);
  app.route("/", createCatalogRoutes({ sql, cache: readCache, verifier, nudgeOutbox }));
  app.route("/", createCartRoutes({ sql, verifier }));
  app.route("/", createInventoryRoutes({ sql, verifier, nudgeOutbox }));
  app.route(
    "/",
    createOrderRoutes({
      sql,
      verifier,
      stock,
      payments,
      nudgeOutbox,
      // The writer's own cache and table (orders are placed in the writer region): never the replica bypass.
      salePrices: createSalePrices(cache, sql),
      reservationTtlSec: config.BV_RESERVATION_TTL_SEC,
    }),
  );
  app.route("/", createGraphqlRoutes({ sql, cache: readCache }));
  app.route("/", createAnalyticsRoutes({ sql, verifier }));
  app.route("/", createOpenApiRoutes());
  return app;
};
