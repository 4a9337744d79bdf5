import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const GOOD_SECRET = 'Zx9sQk2vT7mW4pLr8nBc3yHd6fGj1aEu5oKq0iVt';
const ROUTE = 'routes:\n  - { name: r, match: { path: /x }, upstream: http://127.0.0.1:1, auth: anonymous }\n';

/** Writes `yaml` (plus files) to a fresh directory and returns the loader's error lines without the file prefix. */
async function errorsOf(t: Test, yaml: string, env: NodeJS.ProcessEnv = {}, files: Record<string, string> = {}): Promise<string[]> {
  const dir = t.testdir({ 'authgate.yaml': yaml, ...files });
  const file = path.join(dir, 'authgate.yaml');
  try {
    await loadConfig(file, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const line of err.errors) t.ok(line.startsWith(`${file}:`), `error names the file: ${line}`);
    return err.errors.map((line) => line.slice(file.length + 1));
  }
  t.fail('config unexpectedly valid');
  return [];
}

async function load(t: Test, yaml: string, env: NodeJS.ProcessEnv = {}, files: Record<string, string> = {}) {
  const dir = t.testdir({ 'authgate.yaml': yaml, ...files });
  return loadConfig(path.join(dir, 'authgate.yaml'), env);
}

t.test('a valid config loads with substitutions, secrets, defaults and absolute paths', async (t) => {
  const env = { PUBLIC_URL: 'https://gw.example.com', UPSTREAM_TIMEOUT: '45', AS_SECRET: 'as-secret', WEBSOCKET: 'true', COUNT: '3' };
  const dir = path.join(fixtures, 'valid');
  const loaded = await loadConfig(path.join(dir, 'authgate.yaml'), env);
  const c = loaded.config;
  t.equal(loaded.file, path.join(dir, 'authgate.yaml'));
  t.equal(loaded.dir, dir);
  // ${VAR}
  t.equal(c.server?.publicUrl, 'https://gw.example.com');
  t.equal(c.authenticators?.['as-introspect']?.type === 'introspection' && c.authenticators['as-introspect'].clientSecret, 'as-secret');
  // a whole `${VAR}` becomes a number/boolean where the schema wants one
  t.equal(c.server?.timeouts?.upstream, 45);
  t.equal(c.routes[2]?.websocket, true);
  const hook = c.authenticators?.hook;
  t.ok(hook?.type === 'plugin');
  if (hook?.type === 'plugin') {
    t.same(hook.options, { header: 'X-Internal', template: '${not_a_var}', count: 3, label: '3' }, '$${ escapes; quoted free strings stay strings');
    t.equal(hook.module, path.join(dir, 'plugins/header-check.js'), 'plugin module resolved with its extension');
  }
  // defaults
  t.same(c.server?.listen, { host: '127.0.0.1', port: 8080 });
  t.equal(c.server?.prefix, '/.auth');
  t.equal(c.store?.driver, 'sqlite');
  t.equal(c.store?.sqlite?.path, path.join(dir, 'data/authgate.db'));
  const google = c.authenticators?.google;
  t.equal(google?.type === 'oidc' && google.provider, 'oidc', 'default inside the discriminated union');
  // { file } secrets: read and trimmed; a signing key to be generated stays a file reference
  t.equal(c.secrets?.session, 'Qm9uanVyLXRoaXMtaXMtYS10ZXN0LWZpeHR1cmUtb25seQ8xZk3');
  const jwt = c.authenticators?.['static-jwt'];
  t.match(jwt?.type === 'jwt' ? jwt.publicKeys?.[0] : undefined, /^-----BEGIN PUBLIC KEY-----\n[^]*-----END PUBLIC KEY-----$/);
  t.same(c.signing?.keys[0]?.privateKey, { file: path.join(dir, 'data/k1.pem') });
  t.equal(c.users?.file, path.join(dir, 'users.yaml'));
});

t.test('unknown key', async (t) => {
  const errors = await errorsOf(t, `${ROUTE}server:\n  listn: { host: 127.0.0.1, port: 1 }\n  bogus: 1\n`);
  t.same(errors, ["4:3: server.listn: unknown key 'listn' (did you mean 'listen'?)", "5:3: server.bogus: unknown key 'bogus'"]);
});

t.test('unknown key inside an authenticator and in a { file } secret', async (t) => {
  const errors = await errorsOf(t, `authenticators:\n  web: { type: session, realm: x }\n  i: { type: introspection, endpoint: https://as, clientId: c, clientSecret: { fil: x } }\n${ROUTE}`);
  t.same(errors, [
    "2:25: authenticators.web.realm: unknown key 'realm'",
    '3:78: authenticators.i.clientSecret.file: is required',
    "3:80: authenticators.i.clientSecret.fil: unknown key 'fil' (did you mean 'file'?)",
  ]);
});

t.test('wrong type', async (t) => {
  const errors = await errorsOf(t, `${ROUTE}server:\n  listen: { host: 127.0.0.1, port: "80" }\n  trustedProxies: 10.0.0.0/8\n`);
  t.same(errors, ['4:36: server.listen.port: must be an integer, not a string', '5:19: server.trustedProxies: must be a list, not a string']);
});

t.test('bad duration', async (t) => {
  const errors = await errorsOf(t, `${ROUTE}server:\n  drainTimeout: 10 minutes\n  timeouts: { connect: -5 }\n`);
  t.same(errors, [
    '4:17: server.drainTimeout: must be a duration like 30s, 5m, 12h, 30d (or a number of seconds)',
    '5:24: server.timeouts.connect: must be a duration like 30s, 5m, 12h, 30d (or a number of seconds)',
  ]);
});

t.test('bad enum, unknown authenticator type, invalid authenticator name', async (t) => {
  const errors = await errorsOf(t, `store:\n  driver: mongo\nauthenticators:\n  x: { type: ldap }\n  bad name: { type: session }\n${ROUTE}`);
  t.same(errors, [
    '2:11: store.driver: must be one of: memory, sqlite, redis',
    '4:14: authenticators.x.type: must be one of: anonymous, basic, session, token, jwt, apikey, introspection, oidc, plugin, django-session',
    "5:3: authenticators.bad name: invalid name 'bad name': may contain only letters, digits, '.', '_' and '-'",
  ]);
});

t.test('missing required keys point at the parent', async (t) => {
  const errors = await errorsOf(t, 'routes:\n  - name: api\n    match: { path: /x }\n    auth: anonymous\nauthenticators:\n  a: { realm: x }\n');
  t.same(errors, ['2:5: routes.0.upstream: is required', '6:6: authenticators.a.type: is required']);
  t.same(await errorsOf(t, 'server: {}\n'), ['1:1: routes: is required']);
  t.same(await errorsOf(t, ''), ['1:1: (root): must be a map (key: value), not empty']);
});

t.test('union values: the branch that fits reports the precise error', async (t) => {
  const errors = await errorsOf(t, 'routes:\n  - name: api\n    match: { path: /x }\n    upstream: [ftp://x]\n    auth: 5\n');
  t.same(errors, ['4:16: routes.0.upstream.0: must be an http:// or https:// URL', "5:11: routes.0.auth: must be 'anonymous' or a list of strings"]);
  const secret = await errorsOf(t, `secrets:\n  session: [5]\n${ROUTE}`);
  t.same(secret, ['2:13: secrets.session.0: must be a string or { file: PATH }']);
});

t.test('unknown authenticator in a route; anonymous is built in', async (t) => {
  const yaml = `authenticators:\n  web: { type: session }\nroutes:\n  - { name: a, match: { path: /a }, upstream: http://h, auth: [web, anonymous, nobody] }\n`;
  t.same(await errorsOf(t, yaml), ["4:80: routes.0.auth.2: unknown authenticator 'nobody' (defined: web)"]);
  const reserved = `authenticators:\n  anonymous: { type: basic }\n${ROUTE}`;
  t.same(await errorsOf(t, reserved), ["2:22: authenticators.anonymous.type: the name 'anonymous' is reserved for the built-in anonymous authenticator"]);
  const ok = await load(t, `authenticators:\n  anonymous: { type: anonymous }\nroutes:\n  - { name: a, match: { path: /a }, upstream: http://h, auth: [anonymous] }\n`);
  t.same(ok.config.routes[0]?.auth, ['anonymous']);
});

t.test('duplicate keys and duplicate route names', async (t) => {
  const errors = await errorsOf(t, `server:\n  drainTimeout: 5s\n  drainTimeout: 6s\n${ROUTE}  - { name: r, match: { path: /y }, upstream: http://h, auth: anonymous }\n`);
  t.same(errors, ['3:3: server.drainTimeout: duplicate key', "6:13: routes.1.name: duplicate route name 'r' (also routes.0)"]);
});

t.test('YAML syntax errors stop at the first one, with its position', async (t) => {
  const errors = await errorsOf(t, 'server:\n  listen: { host: 1, port: ${PORT} }\nroutes: [\n');
  t.equal(errors.length, 1);
  t.match(errors[0], /^2:29: server\.listen\.port: YAML syntax error: .*quote values that contain \$\{\.\.\.\}/);
});

t.test('${VAR}: unset is an error at the reference, fallbacks and escapes work', async (t) => {
  const yaml = `server:\n  publicUrl: https://\${HOST}:\${PORT}\n  admin: { host: "\${ADMIN_HOST}", port: "\${ADMIN_PORT}" }\n  prefix: \${PREFIX:-/.gw}\n${ROUTE}`;
  t.same(await errorsOf(t, yaml, { HOST: 'gw.example.com', ADMIN_HOST: '127.0.0.1' }), [
    '2:30: server.publicUrl: environment variable PORT is not set',
    '3:42: server.admin.port: environment variable ADMIN_PORT is not set',
  ]);
  const loaded = await load(t, yaml, { HOST: 'gw.example.com', PORT: '8443', ADMIN_HOST: '127.0.0.1', ADMIN_PORT: '9999' });
  t.equal(loaded.config.server?.publicUrl, 'https://gw.example.com:8443');
  t.same(loaded.config.server?.admin, { host: '127.0.0.1', port: 9999 });
  t.equal(loaded.config.server?.prefix, '/.gw');
  t.same(await errorsOf(t, `server:\n  prefix: "\${1BAD}"\n${ROUTE}`), ["2:12: server.prefix: invalid variable reference '${1BAD}'"]);
});

t.test('{ file } secrets: read and trimmed; a missing file is an error at its position', async (t) => {
  const yaml = `secrets:\n  session: [{ file: ./s1 }, { file: missing.secret }]\n${ROUTE}`;
  const errors = await errorsOf(t, yaml, {}, { s1: `${GOOD_SECRET}\n` });
  t.equal(errors.length, 1);
  t.match(errors[0], /^2:37: secrets\.session\.1\.file: secret file not found \(looked for \/.*\/missing\.secret or /);
  const ok = await load(t, `secrets:\n  session: [{ file: ./s1 }, "\${S2}"]\n${ROUTE}`, { S2: GOOD_SECRET.split('').reverse().join('') }, { s1: `  ${GOOD_SECRET}\n\n` });
  t.same(ok.config.secrets?.session, [GOOD_SECRET, GOOD_SECRET.split('').reverse().join('')]);
});

t.test('default and weak session secrets are refused (THREATS 28)', async (t) => {
  const weak = ['changeme', 'secret', 'a secret with minimum length of 32 characters', 'changeme-changeme-changeme-changeme-1', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'replace-with-at-least-32-random-bytes'];
  for (const secret of weak) {
    const errors = await errorsOf(t, `secrets:\n  session: \${S}\n${ROUTE}`, { S: secret });
    t.equal(errors.length, 1, secret);
    t.match(errors[0], /^2:12: secrets\.session: session secret (must be at least 32 bytes|is a published example value|looks like a placeholder|has too little variety)/);
    if (secret.length > 8) t.notOk(errors[0]?.includes(secret), 'the secret is not echoed');
  }
  const ok = await load(t, `secrets:\n  session: \${S}\n${ROUTE}`, { S: GOOD_SECRET });
  t.equal(ok.config.secrets?.session, GOOD_SECRET);
});

t.test('semantic checks', async (t) => {
  const yaml = [
    'server:',
    '  publicUrl: http://[::1',
    '  allowedOrigins: ["https://*.com"]',
    '  trustedProxies: [10.0.0.0/33, 192.168.0.1, 0.0.0.0/0, fd00::/8]',
    'store: { driver: redis }',
    'users: { file: ./nope.yaml }',
    'authenticators:',
    '  corp: { type: jwt, issuer: corp }',
    '  own: { type: jwt, issuer: self, jwksUri: https://x/keys }',
    '  g: { type: oidc, clientId: x, clientSecret: y }',
    '  p: { type: plugin, module: ./plugins/none }',
    'routes:',
    '  - { name: a, match: { path: /v1/** }, upstream: http://h, auth: [corp], stripPath: /v2 }',
    '  - { name: b, match: { path: /**/x }, upstream: http://h, auth: [own, g, p] }',
    '',
  ].join('\n');
  const errors = await errorsOf(t, yaml);
  t.same(
    errors.map((e) => e.replace(/looked for [^,)]*/, 'looked for …')),
    [
      '2:14: server.publicUrl: is not a valid URL',
      "3:20: server.allowedOrigins.0: 'https://*.com' is too broad: a wildcard must cover a domain, not a top-level domain",
      "4:20: server.trustedProxies.0: '10.0.0.0/33' has an invalid prefix length (0-32)",
      "4:46: server.trustedProxies.2: '0.0.0.0/0' trusts every client's X-Forwarded-* headers; list your proxies' addresses instead",
      '5:18: store.redis: is required when driver is redis',
      '6:16: users.file: users file not found (looked for …)',
      '8:30: authenticators.corp.issuer: an external issuer needs jwksUri, publicKeys, or an http(s) issuer URL (for discovery)',
      "9:29: authenticators.own.issuer: issuer 'self' verifies with the gateway's signing keys; remove jwksUri/publicKeys",
      "10:6: authenticators.g.issuer: is required for provider 'oidc'",
      '11:30: authenticators.p.module: plugin module not found (looked for …, also with .js, .mjs, .ts)',
      "13:86: routes.0.stripPath: must be a prefix of the match path's literal part '/v1'",
      "14:31: routes.1.match.path: '**' is allowed only as the whole last segment",
      '14:72: routes.1.auth.1: an oidc authenticator needs a session authenticator in the same chain (e.g. [web, google]): it reads the session the sign-in creates',
    ],
  );
});

t.test('signing keys must match their algorithm', async (t) => {
  const { generateKeyPairSync } = await import('node:crypto');
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const yaml = `signing:\n  keys:\n    - { kid: a, alg: EdDSA, privateKey: { file: ec.pem } }\n    - { kid: a, alg: ES256, privateKey: { file: ec.pem } }\n${ROUTE}`;
  t.same(await errorsOf(t, yaml, {}, { 'ec.pem': ec }), [
    '3:41: signing.keys.0.privateKey: private key is a ec (prime256v1) key, which does not match alg EdDSA',
    "4:14: signing.keys.1.kid: duplicate kid 'a' (also signing.keys.0)",
  ]);
});

t.test('all errors at once, sorted by position', async (t) => {
  const yaml = `routes:\n  - { name: a, match: { path: /a }, upstream: http://h, auth: [x] }\nserver:\n  prefix: nope\n  extra: 1\nstore: { driver: \${DRIVER} }\n`;
  const errors = await errorsOf(t, yaml.replace('${DRIVER}', '"${DRIVER}"'));
  t.same(errors, [
    "2:64: routes.0.auth.0: unknown authenticator 'x' (no authenticators are defined)",
    "4:11: server.prefix: must match ^/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$",
    "5:3: server.extra: unknown key 'extra'",
    '6:19: store.driver: environment variable DRIVER is not set',
  ]);
});

t.test('a missing config file', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'nope.yaml');
  await t.rejects(loadConfig(file, {}), { name: 'ConfigError', errors: [`${file}:1:1: (root): file does not exist`] });
});

t.test('a signing key to be generated is never read from the working directory', async (t) => {
  // A same-named file where the process happens to run (e.g. ./data/k1.pem of another install)
  // must not silently become this config's signing key.
  const root = t.testdir({
    data: { 'k1.pem': '-----BEGIN PRIVATE KEY-----\nnot-this-one\n-----END PRIVATE KEY-----\n' },
    conf: { 'authgate.yaml': `signing:\n  keys:\n    - { kid: k1, alg: EdDSA, privateKey: { file: ./data/k1.pem } }\n${ROUTE}` },
  });
  const before = process.cwd();
  process.chdir(root);
  t.teardown(() => process.chdir(before));
  const loaded = await loadConfig(path.join(root, 'conf', 'authgate.yaml'), {});
  t.same(loaded.config.signing?.keys[0]?.privateKey, { file: path.join(loaded.dir, 'data/k1.pem') });
});
