/**
 * @module
 * Payment through the legacy SOAP gateway (seed 003): the resilient {@linkcode PaymentGateway} adapter the
 * order context charges through, and the simulated gateway it talks to in development, tests and drills.
 */
export {
  CHARGES_CONCURRENT_MAX,
  CHARGES_QUEUED_MAX,
  createSoapPaymentGateway,
  type PaymentGatewayEvent,
  type SoapPaymentGateway,
  type SoapPaymentGatewayOptions,
} from "./adapters/soap_payment_gateway.ts";
export {
  type PaymentGatewayBehaviour,
  type PaymentGatewaySimulator,
  type PaymentGatewaySimulatorOptions,
  startPaymentGatewaySimulator,
} from "./adapters/soap_gateway_server.ts";
export type { AttemptOutcome, CircuitStateName, PaymentVia } from "./payment_metrics.ts";
export type { PaymentGateway, PaymentRequest, PaymentResult } from "../contracts.ts";
export { CHARGE_AMOUNT_MAX, declineReasonOf } from "./gateway/charge_ledger.ts";
