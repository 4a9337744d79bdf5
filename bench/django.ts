// The Django drop-in's three credentials (SPEC 3.2), warm, for `npm run bench`: the fixture site
// of test/fixtures/django migrates a throwaway PostgreSQL database and issues a sessionid, a DRF
// token and a simplejwt access token for one user; a gateway reads them from that database.
// Skipped with a note when /usr/bin/python3 lacks Django (the bench installs nothing).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { RouteSpec } from './fixtures.js';

const PYTHON = '/usr/bin/python3';
const FIXTURE = fileURLToPath(new URL('../test/fixtures/django/fixture.py', import.meta.url));
const PG = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432';

export interface DjangoSite {
  readonly dbUrl: string;
  readonly secretKey: string;
  readonly session: string;
  readonly token: string;
  readonly access: string;
  drop(): Promise<void>;
}

/** A migrated Django database with one signed-in user, or the reason there is none. */
export async function startDjangoSite(): Promise<DjangoSite | string> {
  const db = `authgate_bench_dj_${randomBytes(6).toString('hex')}`;
  const secretKey = `bench-${randomBytes(24).toString('hex')}`;
  const admin = new pg.Client({ connectionString: `${PG}/postgres` });
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${db}`);
  } catch (err) {
    await admin.end().catch(() => undefined);
    return `no PostgreSQL at ${PG} (${err instanceof Error ? err.message : String(err)})`;
  }
  const drop = async (): Promise<void> => {
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => undefined);
    await admin.end().catch(() => undefined);
  };
  const out = await new Promise<string | Error>((resolve) => {
    // The access token must outlive the whole run (simplejwt's default is 5 minutes).
    const env = { ...process.env, DJANGO_DB_NAME: db, DJANGO_SECRET_KEY: secretKey, DJSITE_ACCESS_MINUTES: '120', PYTHONDONTWRITEBYTECODE: '1' };
    execFile(PYTHON, [FIXTURE, 'setup'], { env, timeout: 120_000 }, (err, stdout, stderr) => resolve(err ? new Error(stderr.split('\n').filter(Boolean).pop() ?? err.message) : stdout));
  });
  if (out instanceof Error) {
    await drop();
    return `the Django fixture did not run with ${PYTHON} (${out.message})`;
  }
  const alice = (JSON.parse(out.trim().split('\n').pop() ?? '{}') as { users: { alice: { session: string; token: string; access: string } } }).users.alice;
  return { dbUrl: `${PG}/${db}`, secretKey, ...alice, drop };
}

/** Config of the Django gateway: users and sessions from the site's database, warm for a minute. */
export function djangoGatewayAuth(site: DjangoSite): { authenticators: Record<string, Record<string, unknown>>; routes: RouteSpec[]; extra: Record<string, unknown> } {
  return {
    authenticators: { 'django-web': { type: 'django-session' }, 'django-token': { type: 'token', source: 'django' }, 'django-jwt': { type: 'jwt', preset: 'simplejwt' } },
    routes: [
      { id: 'django-session', auth: ['django-web'] },
      { id: 'django-token', auth: ['django-token'] },
      { id: 'django-jwt', auth: ['django-jwt'] },
    ],
    extra: { users: { postgres: { url: site.dbUrl, preset: 'django', cacheTtl: '60s' } }, django: { secretKey: site.secretKey } },
  };
}
