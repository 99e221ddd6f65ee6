/**
 * @module
 * The e-commerce deployable of a region (catalog, cart, orders, inventory, payment, notifications,
 * partner webhooks, analytics). This is its shell: readiness over every port it uses and the topics of its
 * events; the domain arrives with the e-commerce issues.
 */
import { ecommerceEvents } from "../../shared/contracts/mod.ts";
import { dlqTopicOf } from "../../shared/ports/mod.ts";
import { createServiceApp } from "../../shared/runtime/mod.ts";
import { createHealthService, startGrpcServer } from "../../shared/adapters/grpc/mod.ts";
import { portChecks, type ServiceFactory } from "../wiring/service_context.ts";

/** The topics e-commerce publishes, each with its dead-letter topic. */
export const ECOMMERCE_TOPICS: readonly string[] = Object.values(ecommerceEvents).flatMap((event) => [
  event.eventType,
  dlqTopicOf(event.eventType),
]);

export const createEcommerceService: ServiceFactory = async (context) => {
  const eventLog = await context.ports.eventLog();
  await eventLog.ensureTopics(ECOMMERCE_TOPICS.map((name) => ({ name, partitions: 3 })));
  const checks = portChecks(context.ports, context.name, ["sql", "cache", "eventLog", "workQueue", "mqtt"]);
  // The inventory gRPC port answers grpc.health.v1 over the same checks as /readyz, so gRPC-aware
  // balancers see the same readiness as HTTP ones. InventoryService joins it with the e-commerce core.
  const grpcServer = await startGrpcServer({
    host: context.config.BV_HOST,
    port: context.config.regions[context.region].grpcInventoryPort,
    services: [createHealthService(checks, 1_000)],
  });
  context.lifecycle.onStop(`${context.name} grpc`, () => grpcServer.close(5_000));
  return createServiceApp({ name: context.name, checks });
};
