/**
 * @module
 * Process entry of the simulated legacy payment gateway: `deno run -A regional/ecommerce/payment/gateway/main.ts`.
 * `BV_PAYMENT_GATEWAY_PORT` (default 8089), `BV_PAYMENT_GATEWAY_LATENCY_MS` (default 0),
 * `BV_PAYMENT_GATEWAY_FAILURE_RATE` (0..1, default 0). SIGTERM or SIGINT closes it.
 */
import { z } from "zod";
import { log, setLogService } from "../../../../shared/observability/mod.ts";
import { GATEWAY_LATENCY_MS_MAX, startPaymentGatewaySimulator } from "../adapters/soap_gateway_server.ts";

const variables = {
  BV_PAYMENT_GATEWAY_PORT: z.coerce.number().int().min(1).max(65_535).default(8089),
  BV_PAYMENT_GATEWAY_LATENCY_MS: z.coerce.number().int().min(0).max(GATEWAY_LATENCY_MS_MAX).default(0),
  BV_PAYMENT_GATEWAY_FAILURE_RATE: z.coerce.number().min(0).max(1).default(0),
} as const;

/** Parses this process's variables once; a bad one stops the process with one line naming it (EX_CONFIG). */
function loadGatewayConfig(): { readonly [K in keyof typeof variables]: number } {
  const config: Record<string, number> = {};
  for (const [name, schema] of Object.entries(variables)) {
    const raw = Deno.env.get(name);
    const parsed = schema.safeParse(raw === "" ? undefined : raw);
    if (!parsed.success) {
      console.error(`Configuration error: ${name} is "${raw}": ${parsed.error.issues[0]?.message ?? "invalid"}`);
      Deno.exit(78);
    }
    config[name] = parsed.data;
  }
  return Object.freeze(config) as { readonly [K in keyof typeof variables]: number };
}

setLogService("payment-gateway");
const config = loadGatewayConfig();
const gateway = await startPaymentGatewaySimulator({
  port: config.BV_PAYMENT_GATEWAY_PORT,
  latencyMs: config.BV_PAYMENT_GATEWAY_LATENCY_MS,
  failureRate: config.BV_PAYMENT_GATEWAY_FAILURE_RATE,
});
log.info("payment gateway simulator listening", {
  wsdlUrl: gateway.wsdlUrl,
  restUrl: gateway.restUrl,
  latencyMs: config.BV_PAYMENT_GATEWAY_LATENCY_MS,
  failureRate: config.BV_PAYMENT_GATEWAY_FAILURE_RATE,
});

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info("payment gateway simulator stopping", { signal, charges: gateway.charges() });
  await gateway.close();
  Deno.exit(0);
};
for (const signal of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(signal, () => void stop(signal));
