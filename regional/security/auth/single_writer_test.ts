import assert from "node:assert/strict";
import { isAuthWrite } from "./single_writer.ts";

Deno.test("isAuthWrite() matches every auth write and leaves reads and key rotation local", () => {
  for (const path of ["signup", "login", "refresh", "logout", "users/8c0b1e36-0000-4000-8000-000000000000/roles"]) {
    assert.equal(isAuthWrite("POST", `/api/v1/auth/${path}`), true, path);
    assert.equal(isAuthWrite("GET", `/api/v1/auth/${path}`), false, path);
  }
  assert.equal(isAuthWrite("POST", "/api/v1/auth/keys/rotate"), false);
  assert.equal(isAuthWrite("GET", "/.well-known/jwks.json"), false);
  assert.equal(isAuthWrite("POST", "/api/v1/orders"), false);
});
