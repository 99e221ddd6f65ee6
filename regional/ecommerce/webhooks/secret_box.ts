/**
 * @module
 * Webhook secrets at rest. They must stay usable for signing (a hash would not do), so with a configured
 * key they are sealed with AES-256-GCM, bound to their subscription id as associated data (a sealed
 * secret copied onto another row does not open). Without a key they are stored as `plain:…` and a warning
 * is logged once at start: the deployment should set one (see README). A previous key opens what it sealed, so the
 * key can be changed without losing the secrets sealed before (new secrets are sealed with the current key).
 */
import { toBase64 } from "./signing.ts";

const SEALED = "aesgcm:v1:";
const PLAIN = "plain:";

export interface SecretBox {
  readonly encrypted: boolean;
  seal(secret: string, subscriptionId: string): Promise<string>;
  open(stored: string, subscriptionId: string): Promise<string>;
}

/**
 * `keyBase64`: 32 random bytes, base64 (`openssl rand -base64 32`); undefined stores secrets in the clear.
 * `previousKeyBase64`: the key used before it, tried when the current one does not open a secret (a key rotation).
 */
export async function createSecretBox(
  keyBase64: string | undefined,
  previousKeyBase64?: string,
): Promise<SecretBox> {
  const key = keyBase64 === undefined ? undefined : await importKey(keyBase64);
  const previousKey = previousKeyBase64 === undefined ? undefined : await importKey(previousKeyBase64);
  const encoder = new TextEncoder();
  return {
    encrypted: key !== undefined,
    async seal(secret, subscriptionId) {
      if (!key) return `${PLAIN}${secret}`;
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const sealed = await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: encoder.encode(subscriptionId) },
        key,
        encoder.encode(secret),
      );
      return `${SEALED}${toBase64(iv)}:${toBase64(new Uint8Array(sealed))}`;
    },
    async open(stored, subscriptionId) {
      if (stored.startsWith(PLAIN)) return stored.slice(PLAIN.length);
      if (!stored.startsWith(SEALED)) throw new Error(`Webhook secret of "${subscriptionId}" has an unknown format`);
      if (!key) {
        throw new Error(
          `Webhook secret of "${subscriptionId}" is encrypted but no secrets key is configured: set the key it was sealed with`,
        );
      }
      const [iv, data] = stored.slice(SEALED.length).split(":").map(fromBase64);
      const decrypt = (candidate: CryptoKey) =>
        crypto.subtle.decrypt(
          { name: "AES-GCM", iv: iv as Uint8Array<ArrayBuffer>, additionalData: encoder.encode(subscriptionId) },
          candidate,
          data as Uint8Array<ArrayBuffer>,
        );
      let opened: ArrayBuffer;
      try {
        opened = await decrypt(key);
      } catch (error) {
        // GCM authenticates: a wrong key fails here (never a garbled secret), so the previous key is tried.
        if (!previousKey) throw error;
        opened = await decrypt(previousKey);
      }
      return new TextDecoder().decode(opened);
    },
  };
}

async function importKey(keyBase64: string): Promise<CryptoKey> {
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(keyBase64);
  } catch {
    throw new TypeError("The webhook secrets key is not base64; generate one with `openssl rand -base64 32`");
  }
  if (bytes.length !== 32) {
    throw new TypeError(`The webhook secrets key must be 32 bytes (base64), got ${bytes.length}`);
  }
  return await crypto.subtle.importKey("raw", bytes as Uint8Array<ArrayBuffer>, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
