// Config for the Django drop-in (SPEC 3.2): what it needs is reported at load, with positions.
import path from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const PG = 'users:\n  postgres: { url: "postgres://postgres@127.0.0.1:5432/app", preset: django, cacheTtl: 5s }\n';
const KEY = 'django:\n  secretKey: [current-key-0123456789, old-key-0123456789]\n';
const ROUTE = 'routes:\n  - { name: r, match: { path: /x }, upstream: http://127.0.0.1:1, auth: anonymous }\n';

async function errorsOf(t: Test, yaml: string): Promise<string[]> {
  const dir = t.testdir({ 'authgate.yaml': yaml });
  const file = path.join(dir, 'authgate.yaml');
  try {
    await loadConfig(file, {});
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.errors.map((line) => line.slice(file.length + 1));
  }
  return [];
}

t.test('the three Django authenticators load with the Django database and key', async (t) => {
  const yaml = `${PG}${KEY}authenticators:
  web: { type: django-session, cookie: sid }
  tok: { type: token, source: django }
  jwt: { type: jwt, preset: simplejwt, userIdClaim: uid, audience: api }
  ext: { type: jwt, issuer: "https://issuer.example", jwksUri: "https://issuer.example/keys" }
${ROUTE}`;
  t.same(await errorsOf(t, yaml), []);
});

t.test('what each one needs is reported', async (t) => {
  const noDb = await errorsOf(t, `${KEY}authenticators:\n  web: { type: django-session }\n  tok: { type: token, source: django }\n  jwt: { type: jwt, preset: simplejwt }\n${ROUTE}`);
  t.match(noDb.join('\n'), /authenticators\.web\.type: reads the Django database/);
  t.match(noDb.join('\n'), /authenticators\.tok\.type: reads the Django database/);
  t.match(noDb.join('\n'), /authenticators\.jwt\.type: reads the Django database/);

  const noKey = await errorsOf(t, `${PG}authenticators:\n  web: { type: django-session }\n  jwt: { type: jwt, preset: simplejwt }\n${ROUTE}`);
  t.match(noKey.join('\n'), /authenticators\.web\.type: needs django\.secretKey/);
  t.match(noKey.join('\n'), /authenticators\.jwt\.secret: is required when django\.secretKey is not set/);
  t.same(await errorsOf(t, `${PG}authenticators:\n  jwt: { type: jwt, preset: simplejwt, secret: only-the-signing-key }\n${ROUTE}`), [], 'secret: alone is enough for simplejwt');

  const keys = await errorsOf(t, `${PG}${KEY}authenticators:\n  jwt: { type: jwt, preset: simplejwt, algorithms: [RS256], jwksUri: "https://x.example/k" }\n${ROUTE}`);
  t.match(keys.join('\n'), /authenticators\.jwt\.algorithms: does not apply to preset simplejwt/, 'simplejwt never takes another algorithm');
  t.match(keys.join('\n'), /authenticators\.jwt\.jwksUri: does not apply to preset simplejwt/, 'or a public key');

  const noIssuer = await errorsOf(t, `authenticators:\n  jwt: { type: jwt, algorithms: [RS256] }\n${ROUTE}`);
  t.match(noIssuer.join('\n'), /authenticators\.jwt\.issuer: is required \(unless preset: simplejwt\)/);

  const badPreset = await errorsOf(t, `${PG}${KEY}authenticators:\n  jwt: { type: jwt, preset: other }\n  tok: { type: token, source: elsewhere }\n${ROUTE}`);
  t.match(badPreset.join('\n'), /authenticators\.jwt\.preset: must be one of: simplejwt/);
  t.match(badPreset.join('\n'), /authenticators\.tok\.source: must be one of: gateway, django/);
});
