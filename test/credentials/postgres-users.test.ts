import t from 'tap';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { PostgresUserDirectory } from '../../src/credentials/postgres-users.js';
import { verifyPassword } from '../../src/credentials/passwords.js';
import { StoreUnavailableError } from '../../src/errors.js';

const BASE = 'postgres://postgres@127.0.0.1:5432/test';
const fixture = JSON.parse(readFileSync(new URL('../fixtures/django-hashes.json', import.meta.url), 'utf8')) as { vectors: { password: string; hash: string }[] };
const [v1, v2, v3] = fixture.vectors as [{ password: string; hash: string }, { password: string; hash: string }, { password: string; hash: string }];

const log = { info: () => undefined, warn: () => undefined, error: () => undefined };

async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return Date.now() - start;
}

/** A fresh schema laid out as Django's auth app; dropped at teardown. */
async function djangoSchema(t: { teardown(fn: () => Promise<void>): void }): Promise<{ admin: pg.Client; url: string }> {
  const schema = `t_${randomUUID().replace(/-/g, '')}`;
  const admin = new pg.Client({ connectionString: BASE });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(`SET search_path TO ${schema}`);
  await admin.query(`
    CREATE TABLE auth_user (id serial PRIMARY KEY, password varchar(128) NOT NULL, last_login timestamptz, is_superuser boolean NOT NULL,
      username varchar(150) UNIQUE NOT NULL, first_name varchar(150) NOT NULL DEFAULT '', last_name varchar(150) NOT NULL DEFAULT '',
      email varchar(254) NOT NULL, is_staff boolean NOT NULL, is_active boolean NOT NULL, date_joined timestamptz NOT NULL DEFAULT now());
    CREATE TABLE auth_group (id serial PRIMARY KEY, name varchar(150) UNIQUE NOT NULL);
    CREATE TABLE auth_user_groups (id bigserial PRIMARY KEY, user_id integer NOT NULL REFERENCES auth_user(id),
      group_id integer NOT NULL REFERENCES auth_group(id), UNIQUE (user_id, group_id));
    INSERT INTO auth_group (name) VALUES ('editors'), ('billing'), ('bad,group');
    INSERT INTO auth_user (username, email, password, is_active, is_staff, is_superuser) VALUES
      ('alice', 'Alice@Example.com', '${v1.hash}', true, true, false),
      ('bob', '', '${v2.hash}', false, false, false),
      ('root', 'root@example.com', '${v3.hash}', true, true, true),
      ('nopw', 'nopw@example.com', '!unusableXYZ', true, false, false),
      ('twin1', 'twin@example.com', '${v1.hash}', true, false, false),
      ('twin2', 'TWIN@example.com', '${v1.hash}', true, false, false);
    INSERT INTO auth_user_groups (user_id, group_id)
      SELECT u.id, g.id FROM auth_user u, auth_group g WHERE u.username = 'alice';
  `);
  t.teardown(async () => {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  });
  return { admin, url: `${BASE}?options=${encodeURIComponent(`-c search_path=${schema}`)}` };
}

t.test('django preset: users, groups, staff/superuser, disabled, unusable passwords', async (t) => {
  const { url } = await djangoSchema(t);
  const dir = new PostgresUserDirectory({ url, log, cacheTtlMs: 30_000 });
  t.teardown(() => dir.close());
  const alice = await dir.lookup('alice');
  t.ok(alice);
  t.equal(alice!.username, 'alice');
  t.equal(alice!.email, 'Alice@Example.com');
  t.same([...alice!.groups].sort(), ['billing', 'editors', 'staff'], 'groups from auth_user_groups, plus staff; a group with a comma is dropped');
  t.equal(alice!.disabled, false);
  t.equal(await verifyPassword(v1.password, alice!.passwordHash!), true, 'the Django hash verifies as-is');
  t.equal((await dir.lookup('alice@example.com'))?.username, 'alice', 'by email, case-insensitive');
  const bob = await dir.get('bob');
  t.equal(bob?.disabled, true, 'is_active=false -> disabled');
  t.equal(bob?.email, undefined, 'empty email -> none');
  t.same([...(await dir.get('root'))!.groups].sort(), ['staff', 'superuser']);
  t.equal((await dir.get('nopw'))?.passwordHash, undefined, "Django's unusable password");
  t.equal(await dir.lookup('twin@example.com'), undefined, 'an email shared by two users designates nobody');
  t.equal(await dir.lookup('nobody'), undefined);
  t.equal(await dir.lookup(''), undefined);
  t.equal(await dir.lookup("alice' OR '1'='1"), undefined, 'parameterized');
});

t.test('identifiers: username only', async (t) => {
  const { url } = await djangoSchema(t);
  const dir = new PostgresUserDirectory({ url, log, cacheTtlMs: 30_000, identifiers: ['username'] });
  t.teardown(() => dir.close());
  t.equal(await dir.lookup('alice@example.com'), undefined);
  t.ok(await dir.lookup('alice'));
});

t.test('cacheTtl: a changed password and is_active=false hold within cacheTtl, not longer', async (t) => {
  const { admin, url } = await djangoSchema(t);
  const dir = new PostgresUserDirectory({ url, log, cacheTtlMs: 1000, negativeTtlMs: 300 });
  t.teardown(() => dir.close());
  const first = await dir.lookup('alice');
  await admin.query(`UPDATE auth_user SET password = $1 WHERE username = 'alice'`, [v2.hash]);
  t.equal((await dir.lookup('alice'))?.version, first!.version, 'served from the cache right after the change');
  const took = await until(async () => (await dir.lookup('alice'))?.passwordHash === v2.hash, 'new password');
  t.ok(took <= 1500, `new password seen after ${took} ms (cacheTtl 1 s)`);
  t.not((await dir.lookup('alice'))!.version, first!.version);

  await admin.query(`UPDATE auth_user SET is_active = false WHERE username = 'alice'`);
  await until(async () => (await dir.get('alice'))?.disabled === true, 'disabled');

  // Unknown users are remembered briefly, then looked up again.
  t.equal(await dir.lookup('newcomer'), undefined);
  t.ok(dir.stats().unknown >= 1);
  await admin.query(`INSERT INTO auth_user (username, email, password, is_active, is_staff, is_superuser) VALUES ('newcomer', '', $1, true, false, false)`, [v1.hash]);
  await until(async () => (await dir.lookup('newcomer')) !== undefined, 'newcomer visible');
});

t.test('invalidate drops cached records at once and tells listeners', async (t) => {
  const { admin, url } = await djangoSchema(t);
  const dir = new PostgresUserDirectory({ url, log, cacheTtlMs: 60_000 });
  t.teardown(() => dir.close());
  const heard: (string | undefined)[] = [];
  dir.onChange((u) => heard.push(u));
  await dir.lookup('alice');
  await dir.lookup('alice@example.com');
  await admin.query(`UPDATE auth_user SET is_active = false WHERE username = 'alice'`);
  t.equal((await dir.lookup('alice'))?.disabled, false, 'cached');
  dir.invalidate('alice');
  t.equal((await dir.lookup('alice'))?.disabled, true);
  t.equal((await dir.lookup('alice@example.com'))?.disabled, true, 'the email entry was dropped too');
  dir.invalidate();
  t.same(heard, ['alice', undefined]);
});

t.test('concurrent lookups share one query; caches stay bounded', async (t) => {
  const { url } = await djangoSchema(t);
  const dir = new PostgresUserDirectory({ url, log, cacheTtlMs: 30_000, maxEntries: 50 });
  t.teardown(() => dir.close());
  const results = await Promise.all(Array.from({ length: 20 }, () => dir.lookup('alice')));
  t.ok(results.every((r) => r === results[0]), 'one record object for all');
  for (let i = 0; i < 300; i++) await dir.lookup(`ghost-${i}`);
  t.ok(dir.stats().unknown <= 50, `negative cache bounded (${dir.stats().unknown})`);
  t.ok(dir.stats().poolTotal <= 4, 'small pool');
});

t.test('a database failure fails closed with StoreUnavailableError', async (t) => {
  const dir = new PostgresUserDirectory({ url: 'postgres://postgres@127.0.0.1:1/test', log, cacheTtlMs: 30_000, connectTimeoutMs: 500 });
  t.teardown(() => dir.close());
  await t.rejects(dir.lookup('alice'), StoreUnavailableError);
  await t.rejects(dir.get('alice'), StoreUnavailableError);
  // Missing tables (wrong database) are a failure too, not "unknown user".
  const empty = new PostgresUserDirectory({ url: `${BASE}?options=${encodeURIComponent('-c search_path=no_such_schema')}`, log, cacheTtlMs: 30_000 });
  t.teardown(() => empty.close());
  await t.rejects(empty.lookup('alice'), StoreUnavailableError);
});
