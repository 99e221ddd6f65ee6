/**
 * @module
 * The gRPC kit (grpc-js): proto loading, a server that maps trace context, deadlines, undecodable requests
 * and problem errors on every unary call, a client with deadlines, bounded retries on UNAVAILABLE and channel
 * recreation, and the standard health service over the readiness checks. See README.md for semantics and
 * failure modes.
 */
export { GRPC_MESSAGE_BYTES_MAX, loadProto, PROTO_ROOT, serviceClientOf } from "./_proto.ts";
export {
  GRPC_CONCURRENT_STREAMS_MAX,
  type GrpcCallBound,
  type GrpcServer,
  type GrpcServerOptions,
  type GrpcServiceBinding,
  startGrpcServer,
  type UnaryHandler,
} from "./server.ts";
export {
  backoffMs,
  createGrpcClient,
  GRPC_ATTEMPTS_MAX,
  type GrpcClient,
  type GrpcClientOptions,
  type GrpcRetryEvent,
  type GrpcRetryOptions,
} from "./client.ts";
export { createHealthService, HEALTH_SERVICE_NAME, healthClientConstructor } from "./health.ts";
