// Issue 9.11: an OAuth client id that is also a username would reach upstreams as that user. The
// users file refuses such a user (any case); a PostgreSQL directory is checked once at start.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import t from 'tap';
import type { Config } from '../../src/config/schema.js';
import { createUserDirectory } from '../../src/credentials/users.js';
import { parseUsersFile, UsersFileError } from '../../src/credentials/users-file.js';

const BASE = 'postgres://postgres@127.0.0.1:5432/test';
const log = { info: () => undefined, warn: () => undefined, error: () => undefined };

t.test('users file: a user named like a client is an error with its position', async (t) => {
  const text = 'users:\n  alice: {}\n  Billing: {}\n';
  t.doesNotThrow(() => parseUsersFile(text, 'users.yaml'), 'no clients, no clash');
  t.doesNotThrow(() => parseUsersFile(text, 'users.yaml', ['reports']));
  const err = t.throws(() => parseUsersFile(text, 'users.yaml', ['billing'])) as UsersFileError;
  t.ok(err instanceof UsersFileError);
  t.match(err.errors, [/^users\.yaml:3:\d+: users\.Billing: is also an OAuth client id \(oauth\.clients\)/]);
});

t.test('PostgreSQL: a client id that names a user stops the start', async (t) => {
  const schema = `t_${randomUUID().replace(/-/g, '')}`;
  const admin = new pg.Client({ connectionString: BASE });
  await admin.connect();
  t.teardown(async () => {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  });
  await admin.query(`CREATE SCHEMA ${schema}; SET search_path TO ${schema};
    CREATE TABLE auth_user (id serial PRIMARY KEY, password varchar(128) NOT NULL, is_superuser boolean NOT NULL, username varchar(150) UNIQUE NOT NULL,
      email varchar(254) NOT NULL, is_staff boolean NOT NULL, is_active boolean NOT NULL);
    CREATE TABLE auth_group (id serial PRIMARY KEY, name varchar(150) UNIQUE NOT NULL);
    CREATE TABLE auth_user_groups (id bigserial PRIMARY KEY, user_id integer NOT NULL, group_id integer NOT NULL);
    INSERT INTO auth_user (username, email, password, is_active, is_staff, is_superuser) VALUES ('billing', '', '!x', true, false, false);`);
  const url = `${BASE}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  const config = (id: string) => ({ users: { postgres: { url, preset: 'django' } }, oauth: { clients: [{ id, secretHash: 'x' }] }, routes: [] }) as unknown as Config;
  await t.rejects(createUserDirectory(config('billing'), { configDir: '/', log }), /client id "billing" is also a user in PostgreSQL/);
  const fine = await createUserDirectory(config('reports'), { configDir: '/', log });
  await fine.close();
});
