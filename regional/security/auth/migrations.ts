/**
 * @module
 * The auth context's schema. Ids are permanent; append new migrations, never edit applied ones.
 * Timestamps are written by the application (its injected clock), never by `now()`, so tests can move time.
 */
import type { Migration } from "../../../shared/ports/sql_migrate.ts";
import { writerGuardMigrationSql } from "../../wiring/writer/mod.ts";
import { REPLICATED_AUTH_TABLES } from "./single_writer.ts";

export const authMigrations: readonly Migration[] = Object.freeze([
  {
    id: "security_auth_0001_users",
    sql: `
      create table auth_users (
        id uuid primary key,
        email text not null unique check (email = lower(email) and length(email) <= 254),
        password_hash text not null,
        created_at timestamptz not null
      );
      create table auth_user_roles (
        user_id uuid not null references auth_users (id) on delete cascade,
        role text not null check (role in ('CUSTOMER', 'ADMIN', 'PARTNER', 'DEVICE')),
        granted_at timestamptz not null,
        primary key (user_id, role)
      );`,
  },
  {
    id: "security_auth_0002_refresh_tokens",
    sql: `
      -- Only the SHA-256 of a refresh token is stored: a leaked table cannot be replayed.
      create table auth_refresh_tokens (
        token_hash text primary key,
        user_id uuid not null references auth_users (id) on delete cascade,
        family_id uuid not null,
        created_at timestamptz not null,
        expires_at timestamptz not null,
        used_at timestamptz,
        revoked_at timestamptz
      );
      create index auth_refresh_tokens_family on auth_refresh_tokens (family_id);
      create index auth_refresh_tokens_expires on auth_refresh_tokens (expires_at);`,
  },
  {
    id: "security_auth_0003_signing_keys",
    sql: `
      -- status: next (published, not yet signing) -> active (signing; at most one) -> retired (published
      -- until every token it signed has expired; its private key is wiped on retirement).
      create table auth_signing_keys (
        kid text primary key,
        private_jwk text,
        public_jwk text not null,
        status text not null check (status in ('next', 'active', 'retired')),
        created_at timestamptz not null,
        activate_after timestamptz not null,
        activated_at timestamptz,
        retired_at timestamptz
      );
      create unique index auth_signing_keys_one_active on auth_signing_keys (status) where status = 'active';
      create unique index auth_signing_keys_one_next on auth_signing_keys (status) where status = 'next';`,
  },
  {
    id: "security_auth_0004_login_failures",
    sql: `
      -- Failed sign-ins (and sign-ins in flight) per key, 'email:<normalised e-mail>' or 'address:<address or /64>',
      -- in a fixed window from the key's first failure (login_throttle.ts). A row past window_ends_at counts nothing:
      -- the next failure restarts it, and a sweep deletes it.
      create table auth_login_failures (
        key text primary key check (length(key) <= 300),
        failures integer not null check (failures >= 0),
        window_ends_at timestamptz not null
      );
      create index auth_login_failures_window_ends on auth_login_failures (window_ends_at);`,
  },
  {
    id: "security_auth_0005_throttle_in_flight",
    sql: `
      -- Attempts holding a place while they hash (an e-mail's logins, an address's sign-ups under 'signup:<address>'),
      -- apart from finished ones in failures (_throttle_counters.ts): only finished ones fill a key for its window.
      -- Places in flight of 0004's rows were counted in failures; they stay there until their window ends.
      alter table auth_login_failures add column in_flight integer not null default 0 check (in_flight >= 0);`,
  },
  {
    // Auth follows the region's single writer (single_writer.ts): its replicated tables refuse local writes while
    // the region's order_writer row names another region (SQLSTATE 25006); replication's apply worker still writes
    // them. The row and the guard function are created here when this service migrates before e-commerce.
    id: "security_auth_0006_writer_guard",
    sql: writerGuardMigrationSql(REPLICATED_AUTH_TABLES),
  },
  {
    // The reuse grace window (tokens.ts): a token presented again shortly after its rotation, because its answer was
    // lost, is a retry when its successor is still unused. replaced_by is that successor's hash (null for rotations
    // before this migration: their replay stays reuse); replayed_at marks the one retry a token gets. Nullable and
    // without a default, so adding them rewrites nothing. The table is replicated with every column (the publication
    // has no column list): the replica region runs this migration too, and must run it before the writer does, or its
    // apply worker stops on the new column until it has (see README.md, "Reuse grace window").
    id: "security_auth_0007_refresh_token_successor",
    sql: `
      alter table auth_refresh_tokens add column replaced_by text;
      alter table auth_refresh_tokens add column replayed_at timestamptz;`,
  },
]);
