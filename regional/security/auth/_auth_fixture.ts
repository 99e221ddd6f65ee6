/**
 * @module
 * A test bench for the auth routes over any SQL adapter: the module wired with a movable clock and an admin,
 * request helpers, and runners on a fresh PostgreSQL database and on PGlite in memory.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { type AuthEnv, requireAuth } from "../../../shared/auth/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createPostgresSql } from "../../../shared/adapters/postgres/mod.ts";
import type { Sql } from "../../../shared/ports/sql.ts";
import { createTestDatabase } from "../../../shared/testing/pg_database.ts";
import { type AuthModule, type AuthModuleDeps, createAuthModule, type TokenPair } from "./mod.ts";

export const ISSUER = "https://auth.test";
export const AUDIENCE = "bitvelocity-test";
export const START_MS = Date.parse("2030-01-01T00:00:00Z");
export const ADMIN = { email: "root@bitvelocity.test", password: "admin-password-1" };

/** What a test may set on the module (the clock is the harness's own). */
export type HarnessOptions = Pick<
  AuthModuleDeps,
  | "keyActivationDelayMs"
  | "loginThrottle"
  | "signupThrottle"
  | "passwords"
  | "passwordHasher"
  | "clientAddressOf"
  | "refreshReuseGraceMs"
>;

export interface Harness {
  readonly sql: Sql;
  readonly auth: AuthModule;
  readonly clock: { nowMs: number };
  post(path: string, body: unknown, token?: string, headers?: Record<string, string>): Promise<Response>;
  get(path: string, token?: string): Promise<Response>;
  /** A pair from signup, failing the test on any other answer. */
  signup(email: string, password?: string): Promise<TokenPair>;
  login(email: string, password: string): Promise<TokenPair>;
}

export async function harnessOn(sql: Sql, options?: HarnessOptions): Promise<Harness> {
  const clock = { nowMs: START_MS };
  const auth = await createAuthModule({
    ...options,
    sql,
    issuer: ISSUER,
    audience: AUDIENCE,
    now: () => clock.nowMs,
  });
  await auth.ensureAdmin(ADMIN.email, ADMIN.password);
  const app = new Hono<AuthEnv>();
  app.route("/", auth.routes);
  app.get("/whoami", requireAuth(auth.verifier), (c) => c.json(c.get("principal")));
  const post = async (path: string, body: unknown, token?: string, headers?: Record<string, string>) =>
    await app.request(path, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const get = async (path: string, token?: string) =>
    await app.request(path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const expectPair = async (response: Response, status: number): Promise<TokenPair> => {
    assert.equal(response.status, status, await response.clone().text());
    return await response.json();
  };
  return {
    sql,
    auth,
    clock,
    post,
    get,
    signup: async (email, password = "correct-horse-1") =>
      await expectPair(await post("/api/v1/auth/signup", { email, password }), 201),
    login: async (email, password) => await expectPair(await post("/api/v1/auth/login", { email, password }), 200),
  };
}

/** Runs `fn` against a fresh database on the real PostgreSQL server. */
export async function onPostgres(fn: (h: Harness) => Promise<void>, options?: HarnessOptions) {
  const db = await createTestDatabase();
  const sql = createPostgresSql({ url: db.url, maxConnections: 4 });
  try {
    await fn(await harnessOn(sql, options));
  } finally {
    await sql.close();
    await db.drop();
  }
}

export async function assertProblem(response: Response, status: number, code: string): Promise<void> {
  assert.equal(response.status, status);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  assert.equal((await response.json()).code, code);
}

/** Runs `fn` against PGlite in memory. */
export async function onPglite(fn: (h: Harness) => Promise<void>, options?: HarnessOptions): Promise<void> {
  const sql = await createPgliteSql();
  try {
    await fn(await harnessOn(sql, options));
  } finally {
    await sql.close();
  }
}

/** Registers `fn` as two tests: one on a fresh PostgreSQL database, one on PGlite. */
export function testOnBothDatabases(
  name: string,
  fn: (h: Harness) => Promise<void>,
  options?: () => HarnessOptions,
): void {
  Deno.test(`[postgres] ${name}`, () => onPostgres(fn, options?.()));
  Deno.test(`[pglite] ${name}`, () => onPglite(fn, options?.()));
}
