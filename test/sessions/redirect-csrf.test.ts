// Redirect targets (THREATS 37-41) and the origin check for unsafe requests (THREATS 31).
import t from 'tap';
import type { GatewayContext } from '../../src/context.js';
import { isSameOriginRequest, isUnsafeMethod, passesCsrfCheck } from '../../src/pipeline/csrf.js';
import { cspSources, originMatchesPattern, parseOriginPattern } from '../../src/util/origin.js';
import { safeRedirectTarget } from '../../src/util/redirect.js';

type Ctx = Pick<GatewayContext, 'publicUrl' | 'config'>;
const ctxOf = (publicUrl: string, allowedRedirects: string[] = [], allowedOrigins: string[] = []): Ctx =>
  ({ publicUrl: new URL(publicUrl), config: { routes: [], login: { allowedRedirects }, server: { allowedOrigins } } }) as Ctx;

t.test('origin patterns: exact host, dot-boundary wildcard, default ports, case', async (t) => {
  const exact = parseOriginPattern('https://app.example.com');
  const star = parseOriginPattern('https://*.Example.com:443');
  const port = parseOriginPattern('http://localhost:3000');
  const m = (u: string, p: ReturnType<typeof parseOriginPattern>) => originMatchesPattern(new URL(u), p);
  t.ok(m('https://app.example.com', exact));
  t.ok(m('https://APP.example.com:443', exact), 'case and default port normalised');
  t.notOk(m('http://app.example.com', exact), 'scheme differs');
  t.notOk(m('https://app.example.com:8443', exact), 'port differs');
  t.notOk(m('https://app.example.com.evil.test', exact));
  t.ok(m('https://a.example.com', star));
  t.ok(m('https://a.b.example.com', star));
  t.notOk(m('https://example.com', star), 'wildcard never matches the bare domain');
  t.notOk(m('https://evilexample.com', star), 'true dot boundary only');
  t.notOk(m('https://example.com.evil.test', star));
  t.ok(m('http://localhost:3000', port));
  t.notOk(m('http://localhost', port));
  t.same(cspSources([star, port]), ['https://*.example.com', 'http://localhost:3000']);
  t.throws(() => parseOriginPattern('https://example.com/path'));
  t.throws(() => parseOriginPattern('javascript:alert(1)'));
});

t.test('safeRedirectTarget keeps same-origin targets as paths', async (t) => {
  const ctx = ctxOf('https://gw.test');
  t.equal(safeRedirectTarget('/admin/users?x=1#frag', ctx), '/admin/users?x=1#frag');
  t.equal(safeRedirectTarget('https://gw.test/admin/', ctx), '/admin/');
  t.equal(safeRedirectTarget('https://GW.TEST:443/a', ctx), '/a');
  t.equal(safeRedirectTarget('/files/my%20doc', ctx), '/files/my%20doc');
  t.equal(safeRedirectTarget('/caf\u00e9', ctx), '/caf%C3%A9');
  t.equal(safeRedirectTarget('relative/path', ctx), '/relative/path');
  for (const v of [undefined, null, 42, '', ['/a'], { a: 1 }, 'x'.repeat(3000)]) t.equal(safeRedirectTarget(v, ctx), '/', `non-target ${typeof v}`);
});

t.test('THREATS 37-39: every listed trick gives /', async (t) => {
  const ctx = ctxOf('https://gw.test', ['https://*.gw.test']);
  const tricks = [
    // 37
    'https://evil.test', '//evil.test', '/\\evil.test', '\\/evil.test', '/\\/evil.test', 'https:evil.test', 'http:\\\\evil.test',
    'http\\://evil.test', 'javascript:alert(1)', 'JavaScript:alert(1)', 'data:text/html,x', '///evil.test', '////evil.test',
    // 38
    '%2F%2Fevil.test', '/%2F%2Fevil.test', '/%5Cevil.test', '/%09/evil.test', '/%0a/evil.test', '/%0d/evil.test', '%20//evil.test',
    '/%E3%80%82evil.test', '//evil%E3%80%82test', '%252F%252Fevil.test', '/%252F%252Fevil.test', '%25252F%25252Fevil.test',
    '/\t/evil.test', '/\n/evil.test', ' //evil.test', '\u0000//evil.test', '//evil\u3002test', '/\uff0fevil.test', '\uff0f\uff0fevil.test',
    '/.//evil.test', '/./\\evil.test', 'https://gw.test//evil.test/x'.replace('https://gw.test', 'https://gw.test/.'),
    // 39
    'https://evilgw.test', 'https://gw.test.evil.test', 'https://gw.test@evil.test', 'https://evil.test\\@gw.test',
    'https://evil.test#.gw.test', 'https://gw.test:443.evil.test', 'https://GW.TEST.evil.test', 'https://evil.test?.gw.test',
    'https://user:pass@gw.test/', 'https://gw.test%40evil.test', 'http://gw.test/', 'https://gw.test:8443/', 'ftp://gw.test/',
    'https://a.gw.test.evil.test/', 'https://evil.test/.gw.test', 'https://%61.gw.test@evil.test/', '/100%', '%E0%A4%A',
  ];
  for (const rd of tricks) t.equal(safeRedirectTarget(rd, ctx), '/', JSON.stringify(rd));
});

t.test('allowedRedirects: other allowed origins keep their absolute URL', async (t) => {
  const ctx = ctxOf('https://gw.test', ['https://*.gw.test', 'http://localhost:3000']);
  t.equal(safeRedirectTarget('https://app.gw.test/x?y=1', ctx), 'https://app.gw.test/x?y=1');
  t.equal(safeRedirectTarget('https://APP.gw.test:443/x', ctx), 'https://app.gw.test/x');
  t.equal(safeRedirectTarget('http://localhost:3000/', ctx), 'http://localhost:3000/');
  t.equal(safeRedirectTarget('http://localhost:3001/', ctx), '/');
  t.equal(safeRedirectTarget('https://gw.test.app.gw.test/', ctx), 'https://gw.test.app.gw.test/', 'a real subdomain');
  t.equal(safeRedirectTarget('//app.gw.test/x', ctx), 'https://app.gw.test/x', 'scheme-relative to an allowed origin resolves to it');
});

t.test('isSameOriginRequest', async (t) => {
  const ctx = ctxOf('https://gw.test', [], ['https://*.example.com', 'http://localhost:3000']);
  const ok = (h: Record<string, string | string[]>) => isSameOriginRequest(h, ctx);
  t.ok(ok({ origin: 'https://gw.test' }));
  t.ok(ok({ origin: 'https://app.example.com' }));
  t.ok(ok({ origin: 'http://localhost:3000' }));
  t.ok(ok({ referer: 'https://gw.test/.auth/login?rd=/x' }), 'Referer when Origin is absent');
  t.ok(ok({ origin: 'https://gw.test', 'sec-fetch-site': 'same-origin' }));
  t.notOk(ok({}), 'neither Origin nor Referer');
  t.notOk(ok({ origin: 'https://evil.test' }));
  t.notOk(ok({ origin: 'null' }));
  t.notOk(ok({ origin: 'https://example.com' }), 'bare domain of a wildcard');
  t.notOk(ok({ origin: 'https://gw.test.evil.test' }));
  t.notOk(ok({ origin: 'http://gw.test' }), 'scheme matters');
  t.notOk(ok({ origin: 'https://gw.test/' }), 'not a serialized origin');
  t.notOk(ok({ origin: 'https://gw.test, https://evil.test' }));
  t.notOk(ok({ origin: ['https://gw.test', 'https://gw.test'] }));
  t.notOk(ok({ origin: 'https://evil.test', referer: 'https://gw.test/' }), 'Origin wins over Referer');
  t.notOk(ok({ referer: 'https://evil.test/https://gw.test/' }));
  t.notOk(ok({ referer: 'https://gw.test@evil.test/' }));
  t.notOk(ok({ referer: 'not a url' }));
  t.notOk(ok({ 'sec-fetch-site': 'cross-site', referer: 'https://gw.test/' }), 'Sec-Fetch-Site: cross-site');
  t.notOk(ok({ 'sec-fetch-site': 'cross-site', origin: 'https://gw.test' }));
  t.ok(isUnsafeMethod('POST') && isUnsafeMethod('delete') && isUnsafeMethod('PATCH') && isUnsafeMethod('PUT') && isUnsafeMethod('PROPFIND'));
  t.notOk(isUnsafeMethod('GET') || isUnsafeMethod('HEAD') || isUnsafeMethod('OPTIONS'));
  t.ok(passesCsrfCheck('GET', {}, ctx));
  t.notOk(passesCsrfCheck('POST', {}, ctx));
});
