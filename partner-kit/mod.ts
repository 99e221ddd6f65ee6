/**
 * @module
 * The BitVelocity partner kit: verify the signatures on our webhook deliveries. Web-standard APIs only;
 * it imports nothing from the platform.
 */
export {
  type BvVerifyResult,
  DEFAULT_TOLERANCE_SEC,
  type HeadersLike,
  secretBytes,
  timingSafeEqual,
  verifyBvSignature,
  type VerifyFailure,
  type VerifyFailureCode,
  type VerifyOptions,
  type VerifyResult,
  verifyWebhook,
} from "./verify_webhook.ts";
