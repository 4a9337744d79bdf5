import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { MemoryStore } from '../../src/store/memory.js';
import { createUserDirectory, publishUsersChanged, USERS_CHANGED_CHANNEL } from '../../src/credentials/users.js';
import type { Config } from '../../src/config/schema.js';

const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
const HASH = 'pbkdf2_sha256$260000$SIwiFU0XjowyA86Ahp8RDz$/6QMKirZVvcNr0AncYCs4+Rx0rYnE+u4FHgI0ummOoo=';

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function configDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-users-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('no users configured: an empty directory', async (t) => {
  const users = await createUserDirectory({ routes: [] } as Config, { configDir: configDir(t), log });
  t.equal(await users.lookup('alice'), undefined);
  t.equal(await users.get('alice'), undefined);
  users.onChange(() => undefined)();
  await users.close();
});

t.test('file and postgres together are refused', async (t) => {
  await t.rejects(createUserDirectory({ routes: [], users: { file: 'u.yaml', postgres: { url: 'postgres://x', preset: 'django' } } } as Config, { configDir: configDir(t), log }));
});

t.test('users file: relative path, identifiers, and users:changed across instances', async (t) => {
  const dir = configDir(t);
  writeFileSync(join(dir, 'users.yaml'), `users:\n  alice: { email: a@example.com, password: "${HASH}" }\n`);
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const cfg = { routes: [], users: { file: 'users.yaml' }, login: { identifiers: ['username'] } } as Config;
  // Instance A watches the file; instance B does not, and learns of changes only from the store.
  const a = await createUserDirectory(cfg, { configDir: dir, log, store });
  const b = await createUserDirectory(cfg, { configDir: dir, log, store, watch: false });
  t.teardown(() => Promise.all([a.close(), b.close()]));
  t.equal((await a.lookup('alice'))?.username, 'alice');
  t.equal(await a.lookup('a@example.com'), undefined, 'login.identifiers honoured');

  const messages: string[] = [];
  store.subscribe(USERS_CHANGED_CHANNEL, (m) => messages.push(m));
  const heardByB: (string | undefined)[] = [];
  b.onChange((u) => heardByB.push(u));
  writeFileSync(join(dir, 'users.yaml'), `users:\n  alice: { email: a@example.com, password: "${HASH}", disabled: true }\n`);
  await until(() => messages.length > 0, 'users:changed published');
  t.same(JSON.parse(messages[0]!), { user: 'alice' });
  await until(async () => (await b.get('alice'))?.disabled === true, 'instance B reloaded');
  await until(() => heardByB.includes('alice'), 'B listeners told');
  // B's own reload found the change but does not re-publish it (no echo storm).
  await new Promise((r) => setTimeout(r, 100));
  t.equal(messages.length, 1, 'one message for one change');
});

t.test('postgres: users:changed drops cached records', async (t) => {
  const schema = `t_${randomUUID().replace(/-/g, '')}`;
  const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}; SET search_path TO ${schema};
    CREATE TABLE auth_user (id serial PRIMARY KEY, password varchar(128) NOT NULL, is_superuser boolean NOT NULL, username varchar(150) UNIQUE NOT NULL,
      email varchar(254) NOT NULL, is_staff boolean NOT NULL, is_active boolean NOT NULL);
    CREATE TABLE auth_group (id serial PRIMARY KEY, name varchar(150) UNIQUE NOT NULL);
    CREATE TABLE auth_user_groups (id bigserial PRIMARY KEY, user_id integer NOT NULL, group_id integer NOT NULL);
    INSERT INTO auth_user (username, email, password, is_active, is_staff, is_superuser) VALUES ('alice', '', '${HASH}', true, false, false);`);
  t.teardown(async () => {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  });
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const url = `postgres://postgres@127.0.0.1:5432/test?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  const users = await createUserDirectory({ routes: [], users: { postgres: { url, preset: 'django', cacheTtl: '10m' } } } as Config, { configDir: configDir(t), log, store });
  t.teardown(() => users.close());
  t.equal((await users.get('alice'))?.disabled, false);
  await admin.query(`UPDATE auth_user SET is_active = false`);
  t.equal((await users.get('alice'))?.disabled, false, 'cached for cacheTtl');
  await publishUsersChanged(store, 'alice');
  t.equal((await users.get('alice'))?.disabled, true, 'dropped on users:changed');
  await admin.query(`UPDATE auth_user SET is_active = true`);
  await store.publish(USERS_CHANGED_CHANNEL, '{}');
  t.equal((await users.get('alice'))?.disabled, false, 'everything dropped on an empty message');
});
