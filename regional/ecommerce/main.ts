/** @module Process entry point: `BV_REGION=east deno run -A regional/ecommerce/main.ts`. */
import { runServiceProcess } from "../wiring/run_service.ts";
import { createEcommerceService } from "./mod.ts";

await runServiceProcess("ecommerce", createEcommerceService);
