/** @module Security (auth) event types. */
import { z } from "zod";
import { defineEvent } from "../envelope.ts";

export const userRegistered = defineEvent({
  eventType: "security.auth.user.registered.v1",
  schemaVersion: "1.0",
  payload: z.object({ userId: z.string().min(1).max(64), roles: z.array(z.string()).min(1) }),
  partitionKeyOf: (p) => p.userId,
});
