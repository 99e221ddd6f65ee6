/**
 * @module
 * Every deployable of a region, by name. The embedded process starts them all; `start:infra` starts each
 * one's `main.ts` as its own process.
 */
import type { ServiceName } from "../../shared/config/config.ts";
import { createChatService } from "../chat/mod.ts";
import { createEcommerceService } from "../ecommerce/mod.ts";
import { createIotService } from "../iot/mod.ts";
import { createOpsService } from "../ops/mod.ts";
import { createSecurityService } from "../security/mod.ts";
import { createSocialService } from "../social/mod.ts";
import type { ServiceFactory } from "./service_context.ts";

export const serviceFactories: Readonly<Record<ServiceName, ServiceFactory>> = Object.freeze({
  security: createSecurityService,
  ecommerce: createEcommerceService,
  chat: createChatService,
  iot: createIotService,
  social: createSocialService,
  ops: createOpsService,
});
