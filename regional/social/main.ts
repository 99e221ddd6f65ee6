/** @module Process entry point: `BV_REGION=east deno run -A regional/social/main.ts`. */
import { runServiceProcess } from "../wiring/run_service.ts";
import { createSocialService } from "./mod.ts";

await runServiceProcess("social", createSocialService);
