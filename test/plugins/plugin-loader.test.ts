// The `plugin` authenticator type (SPEC 9): loading, option validation, what a plugin may
// return, fail-closed on errors, and `needsBody` (the upstream still gets the exact body).
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';

/** Fixture plugins are ES modules wherever the temp dir is (no type:module package above it). */
const ESM = { 'package.json': '{"type":"module"}' };

const routes = (echo: string, auth: string[]) => [{ name: 'p', match: { path: '/p/**' }, upstream: echo, auth }];

/** A fixture plugin: the header `x-plugin-answer` picks what it returns. */
const answeringPlugin = `
export default {
  type: 'answering',
  optionsSchema: {
    type: 'object', additionalProperties: false, required: ['secret'],
    properties: { secret: { type: 'string', minLength: 12 }, user: { type: 'string', default: 'plug-user' } },
  },
  create(options, ctx) {
    const { NOT_MINE, authenticated, rejected } = ctx.results;
    if (typeof ctx.store.setIfAbsent !== 'function' || typeof ctx.log.info !== 'function') throw new Error('ctx incomplete');
    return {
      async authenticate(request) {
        const a = request.headers['x-plugin-answer'];
        if (a === undefined) return NOT_MINE;
        if (a === 'ok') return authenticated({ user: options.user, groups: ['g1', 'g2'], email: 'p@example.test', method: 'basic', authenticator: 'other' });
        if (a === 'method') return { kind: 'identity', identity: { user: 'x', method: 'session' } };
        if (a === 'reject') return rejected('invalid_credentials', 'nope');
        if (a === 'weird-code') return rejected('no_such_code');
        if (a === 'throw') throw new Error('plugin exploded with ' + options.secret);
        if (a === 'crlf') return authenticated({ user: 'alice\\r\\nX-Auth-Groups: admin' });
        if (a === 'nouser') return authenticated({ groups: ['admin'] });
        if (a === 'garbage') return { kind: 'identity-ish' };
        if (a === 'undefined') return undefined;
        if (a === 'groups-not-array') return authenticated({ user: 'bob', groups: 'admin' });
        return NOT_MINE;
      },
    };
  },
};
`;

const bodyPlugin = `
import { createHash } from 'node:crypto';
export default {
  type: 'body-reader',
  needsBody: true,
  create(_options, ctx) {
    const { NOT_MINE, authenticated, rejected } = ctx.results;
    return {
      authenticate(request) {
        const want = request.headers['x-want'];
        if (want === undefined) return NOT_MINE;
        // The expected SHA-256 of the body comes in a header: the plugin proves it saw every byte.
        const got = Buffer.isBuffer(request.body) ? createHash('sha256').update(request.body).digest('hex') : 'none';
        return got === want ? authenticated({ user: 'body-ok' }) : rejected('invalid_credentials', 'body mismatch');
      },
    };
  },
};
`;

t.test('a plugin is loaded relative to the config file, its identity is forced to plugin:<name>', async (t) => {
  const echo = await startTestEcho(t);
  const secret = 'fixture-secret-value-123';
  const gw = await startTestGateway(t, {
    authenticators: { custom: { type: 'plugin', module: './plugins/answering', options: { secret } } },
    routes: routes(echo.url, ['custom']),
  }, { files: { ...ESM, 'plugins/answering.js': answeringPlugin } });

  const ok = await send(gw.url, '/p/x', { headers: { 'x-plugin-answer': 'ok', 'x-auth-user': 'spoofed' } });
  t.equal(ok.status, 200);
  t.equal(echo.received.length, 1);
  const h = echo.received[0]?.headers ?? {};
  t.equal(h['x-auth-user'], 'plug-user', 'the user from options (schema default applied)');
  t.equal(h['x-auth-method'], 'plugin:custom', 'method is forced to plugin:<name>');
  t.equal(h['x-auth-groups'], 'g1,g2');
  t.equal(h['x-auth-email'], 'p@example.test');
  t.equal(h['x-auth-mfa'], 'false');

  const m = await send(gw.url, '/p/x', { headers: { 'x-plugin-answer': 'method' } });
  t.equal(m.status, 200);
  t.equal(echo.received[1]?.headers['x-auth-method'], 'plugin:custom', 'a plugin cannot claim another method');

  const none = await send(gw.url, '/p/x');
  t.equal(none.status, 401, 'not mine everywhere → 401');
  t.equal(none.json().code, 'unauthenticated');

  const rej = await send(gw.url, '/p/x', { headers: { 'x-plugin-answer': 'reject' } });
  t.equal(rej.status, 401);
  t.equal(rej.json().code, 'invalid_credentials');

  const weird = await send(gw.url, '/p/x', { headers: { 'x-plugin-answer': 'weird-code' } });
  t.equal(weird.status, 401, 'an unknown rejection code is still a refusal');
  t.equal(weird.json().code, 'invalid_credentials');
  t.equal(echo.received.length, 2, 'nothing else was forwarded');
});

t.test('a plugin that throws or answers nonsense fails closed (503), never forwards, never leaks', async (t) => {
  const echo = await startTestEcho(t);
  const secret = 'fixture-secret-value-456';
  const gw = await startTestGateway(t, {
    authenticators: { custom: { type: 'plugin', module: './plugins/answering.js', options: { secret } } },
    routes: routes(echo.url, ['custom']),
  }, { files: { ...ESM, 'plugins/answering.js': answeringPlugin } });

  for (const answer of ['throw', 'crlf', 'nouser', 'garbage', 'undefined', 'groups-not-array']) {
    const r = await send(gw.url, '/p/x', { headers: { 'x-plugin-answer': answer } });
    t.equal(r.status, 503, `${answer} → 503`);
    t.equal(r.json().code, 'service_unavailable', answer);
    t.notMatch(r.body, /exploded|fixture-secret|stack/, `${answer}: the body says nothing about the failure`);
  }
  t.equal(echo.received.length, 0, 'NF');
  t.notOk(gw.rawLogs.some((l) => l.includes(secret)), 'the secret in the thrown message is not logged');
  t.ok(gw.logs.some((l) => l.msg === 'authenticator failed' && l.authenticator === 'custom'), 'the failure is logged');
  t.ok(gw.rawLogs.some((l) => l.includes('plugin threw') && l.includes('plugin exploded with [redacted]')), 'the plugin message is logged scrubbed');
});

t.test('option validation at load names the authenticator and never echoes the value', async (t) => {
  const echo = await startTestEcho(t);
  const badSecret = 'short-sec';
  const err = await startTestGateway(t, {
    authenticators: { 'my-hook': { type: 'plugin', module: './plugins/answering', options: { secret: badSecret } } },
    routes: routes(echo.url, ['my-hook']),
  }, { files: { ...ESM, 'plugins/answering.js': answeringPlugin } }).then(() => undefined, (e: unknown) => e as Error);
  t.ok(err, 'refused at start');
  t.match(err?.message, /authenticators\.my-hook: invalid plugin options: options\.secret must NOT have fewer than 12 characters/);
  t.notOk(err?.message.includes(badSecret), 'the value is not echoed');
  await t.rejects(
    startTestGateway(t, {
      authenticators: { 'my-hook': { type: 'plugin', module: './plugins/answering', options: { secret: 'long-enough-secret', extra: 1 } } },
      routes: routes(echo.url, ['my-hook']),
    }, { files: { ...ESM, 'plugins/answering.js': answeringPlugin } }),
    /authenticators\.my-hook: invalid plugin options/,
  );
  await t.rejects(
    startTestGateway(t, {
      authenticators: { broken: { type: 'plugin', module: './plugins/broken.mjs' } },
      routes: routes(echo.url, ['broken']),
    }, { files: { ...ESM, 'plugins/broken.mjs': 'export default { create() {} };\n' } }),
    /authenticators\.broken: plugin module .* must default-export/,
  );
  await t.rejects(
    startTestGateway(t, {
      authenticators: { broken: { type: 'plugin', module: './plugins/noauth.js' } },
      routes: routes(echo.url, ['broken']),
    }, { files: { ...ESM, 'plugins/noauth.js': "export default { type: 'x', create() { return {}; } };\n" } }),
    /authenticators\.broken: plugin 'x' create\(\) must return an object with authenticate/,
  );
});

t.test('a TypeScript plugin loads under the test runner (.ts extension tried)', async (t) => {
  const echo = await startTestEcho(t);
  const ts = `
interface Req { headers: Record<string, string | string[] | undefined> }
interface Ctx { results: { NOT_MINE: unknown; authenticated(i: { user: string }): unknown } }
export default {
  type: 'ts-plugin',
  create(_o: Record<string, unknown>, ctx: Ctx) {
    return { authenticate: (r: Req) => (r.headers['x-ts'] === 'yes' ? ctx.results.authenticated({ user: 'ts-user' }) : ctx.results.NOT_MINE) };
  },
};
`;
  const gw = await startTestGateway(t, {
    authenticators: { tsp: { type: 'plugin', module: './plugins/tsp' } },
    routes: routes(echo.url, ['tsp']),
  }, { files: { ...ESM, 'plugins/tsp.ts': ts } });
  const r = await send(gw.url, '/p/x', { headers: { 'x-ts': 'yes' } });
  t.equal(r.status, 200);
  t.equal(echo.received[0]?.headers['x-auth-user'], 'ts-user');
});

/** An upstream that records the SHA-256 and length of every body it receives. */
async function startHashUpstream(t: Test): Promise<{ url: string; got: { sha: string; length: number; headers: IncomingHttpHeaders }[] }> {
  const got: { sha: string; length: number; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    const h = createHash('sha256');
    let length = 0;
    req.on('data', (c: Buffer) => { h.update(c); length += c.length; });
    req.on('end', () => { got.push({ sha: h.digest('hex'), length, headers: req.headers }); res.end('ok'); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, got };
}

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

t.test('needsBody: the plugin sees the raw body and the upstream still receives it byte for byte', async (t) => {
  const up = await startHashUpstream(t);
  const gw = await startTestGateway(t, {
    authenticators: { body: { type: 'plugin', module: './plugins/body.js' } },
    routes: [{ name: 'p', match: { path: '/p/**' }, upstream: up.url, auth: ['body'] }],
  }, { files: { ...ESM, 'plugins/body.js': bodyPlugin } });

  const bytes = Buffer.concat([Buffer.from('{"a":"é"}\r\n'), Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80]), Buffer.alloc(100_000, 0x41)]);
  const r1 = await send(gw.url, '/p/with-length', { method: 'POST', headers: { 'x-want': sha256(bytes), 'content-type': 'application/octet-stream', 'content-length': bytes.length }, body: bytes });
  t.equal(r1.status, 200, r1.body);
  t.equal(up.got.at(-1)?.sha, sha256(bytes), 'the upstream got the exact bytes');
  t.equal(up.got.at(-1)?.headers['content-length'], String(bytes.length));

  // Chunked upload without a content type: still buffered for the plugin, still forwarded whole.
  const small = Buffer.from([0x00, 0xc3, 0x28, 0x0a, 0x0d, 0x41]);
  const r2 = await send(gw.url, '/p/chunked', { method: 'PUT', headers: { 'x-want': sha256(small), 'transfer-encoding': 'chunked' }, body: small });
  t.equal(r2.status, 200, r2.body);
  t.equal(up.got.at(-1)?.sha, sha256(small));
  t.equal(up.got.at(-1)?.length, small.length);
  t.notOk(up.got.at(-1)?.headers['transfer-encoding'] === 'chunked' && up.got.at(-1)?.headers['content-length'] !== undefined, 'never both framings');

  const r3 = await send(gw.url, '/p/json', { method: 'POST', headers: { 'x-want': sha256('{"k":1}'), 'content-type': 'application/json' }, body: '{"k":1}' });
  t.equal(r3.status, 200, r3.body);
  t.equal(up.got.at(-1)?.sha, sha256('{"k":1}'), 'a JSON body is forwarded unparsed and unchanged');

  const wrong = await send(gw.url, '/p/x', { method: 'POST', headers: { 'x-want': 'f'.repeat(64), 'content-type': 'text/plain' }, body: 'abc' });
  t.equal(wrong.status, 401);
  t.equal(up.got.length, 3, 'the refused one was not forwarded');

  // Expect: 100-continue on a body the gateway must buffer.
  const big = Buffer.alloc(512 * 1024, 0x62);
  const u = new URL(gw.url);
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, method: 'POST', path: '/p/expect', headers: { expect: '100-continue', 'x-want': sha256(big), 'content-type': 'application/octet-stream', 'content-length': big.length } });
    req.on('continue', () => req.end(big));
    req.on('response', (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
    req.on('error', reject);
  });
  t.equal(status, 200);
  t.equal(up.got.at(-1)?.sha, sha256(big));
  t.notOk(up.got.at(-1)?.headers.expect, 'expect is not forwarded');
});
