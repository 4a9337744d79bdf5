import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import pino from 'pino';
import { createApiKeyAuthenticator } from '../../src/pipeline/authenticators/apikey.js';
import type { AuthOutcome, AuthRequest } from '../../src/pipeline/types.js';
import type { IncomingHttpHeaders } from 'node:http';

const silent = pino({ level: 'silent' });
const KEY = 'ak_' + randomBytes(24).toString('base64url');
const OTHER = 'ak_' + randomBytes(24).toString('base64url');
const sha = (s: string): string => 'sha256:' + createHash('sha256').update(s).digest('hex');
const request = (headers: IncomingHttpHeaders, query = ''): AuthRequest => ({ method: 'GET', path: '/api/x', query, host: 'gw.test', headers, ip: '10.0.0.1', cookies: {}, log: silent });
const code = (o: AuthOutcome): string => (o.kind === 'reject' ? o.code : o.kind);

const keys = [
  { id: 'acme', hash: sha(KEY), user: 'svc-acme', scopes: ['orders:read'], groups: ['partners'] },
  { id: 'other', hash: sha(OTHER).toUpperCase().replace('SHA256:', 'sha256:'), user: 'svc-other', email: 'ops@other.example' },
];

t.test('a configured key gives its identity', async (t) => {
  const a = createApiKeyAuthenticator('partners', { type: 'apikey', keys });
  const before = Math.floor(Date.now() / 1000);
  const ok = await a.authenticate(request({ 'x-api-key': KEY }));
  t.equal(ok.kind, 'identity');
  if (ok.kind === 'identity') {
    t.match(ok.identity, { user: 'svc-acme', method: 'apikey', authenticator: 'partners', mfa: false, tokenId: 'acme', subject: 'svc-acme' });
    t.same(ok.identity.scopes, ['orders:read']);
    t.same(ok.identity.groups, ['partners']);
    t.same(ok.identity.amr, ['key']);
    t.ok(ok.identity.authTime >= before);
  }
  const other = await a.authenticate(request({ 'x-api-key': OTHER }));
  t.equal(other.kind === 'identity' && other.identity.user, 'svc-other', 'upper-case hex in the config works');
  t.equal(other.kind === 'identity' && other.identity.email, 'ops@other.example');
  t.equal(a.challenge, undefined, 'no standard challenge');
});

t.test('exact match only, from the configured carrier only (THREATS 16)', async (t) => {
  const a = createApiKeyAuthenticator('partners', { type: 'apikey', keys });
  t.equal(code(await a.authenticate(request({}))), 'not-mine');
  t.equal(code(await a.authenticate(request({}, `api_key=${KEY}`))), 'not-mine', '?api_key= on a header-only config is not a credential (the chain answers 401)');
  t.equal(code(await a.authenticate(request({ authorization: `Bearer ${KEY}` }))), 'not-mine');
  for (const bad of [`${KEY} `, ` ${KEY}`, `${KEY}\0`, `${KEY}%00`, KEY.toUpperCase(), KEY.slice(0, -1), KEY + 'x', '', 'x'.repeat(5000)]) {
    t.equal(code(await a.authenticate(request({ 'x-api-key': bad }))), 'invalid_credentials', JSON.stringify(bad.slice(0, 60)));
  }
  // Node joins repeated unknown headers with ", ": two X-API-Key headers are ambiguous → 400.
  t.equal(code(await a.authenticate(request({ 'x-api-key': `${KEY}, ${KEY}` }))), 'bad_request');
  t.equal(code(await a.authenticate(request({ 'x-api-key': [KEY, KEY] }))), 'bad_request');
});

t.test('custom header and opt-in query parameter', async (t) => {
  const a = createApiKeyAuthenticator('p', { type: 'apikey', header: 'X-Partner-Key', queryParam: 'api_key', keys });
  t.equal(code(await a.authenticate(request({ 'x-partner-key': KEY }))), 'identity');
  t.equal(code(await a.authenticate(request({ 'x-api-key': KEY }))), 'not-mine', 'the default header is not read');
  t.equal(code(await a.authenticate(request({}, `api_key=${encodeURIComponent(KEY)}`))), 'identity');
  t.equal(code(await a.authenticate(request({}, `api_key=${KEY}&api_key=${KEY}`))), 'bad_request', 'twice in the query');
  t.equal(code(await a.authenticate(request({ 'x-partner-key': KEY }, `api_key=${KEY}`))), 'bad_request', 'header and query both');
  t.equal(code(await a.authenticate(request({}, `api_key=nope`))), 'invalid_credentials');
});

t.test('duplicate hashes in the config are refused', async (t) => {
  t.throws(() => createApiKeyAuthenticator('p', { type: 'apikey', keys: [keys[0]!, { ...keys[0]!, id: 'dup' }] }));
});

t.test('comparison time does not depend on a shared prefix (THREATS 15)', async (t) => {
  // The guarantee comes from the design (SHA-256 both sides, constant-time compare of digests);
  // this checks there is no gross difference. Interleaved batches and medians resist the noise
  // of a loaded machine.
  const a = createApiKeyAuthenticator('p', { type: 'apikey', keys });
  const N = 20_000;
  const BATCH = 100;
  const prefixed = Array.from({ length: N }, () => KEY.slice(0, 8) + randomBytes(24).toString('base64url').slice(0, KEY.length - 8));
  const random = Array.from({ length: N }, () => randomBytes(24).toString('base64url').slice(0, KEY.length));
  const batch = (values: string[], from: number): number => {
    const s = process.hrtime.bigint();
    for (let i = from; i < from + BATCH; i++) a.authenticate(request({ 'x-api-key': values[i]! }));
    return Number(process.hrtime.bigint() - s);
  };
  for (let i = 0; i < 2000; i += BATCH) batch(random, i); // warm-up
  const pt: number[] = [];
  const rt: number[] = [];
  for (let i = 0; i < N; i += BATCH) {
    if ((i / BATCH) % 2 === 0) {
      pt.push(batch(prefixed, i));
      rt.push(batch(random, i));
    } else {
      rt.push(batch(random, i));
      pt.push(batch(prefixed, i));
    }
  }
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const ratio = median(pt) / median(rt);
  t.ok(ratio > 0.67 && ratio < 1.5, `median batch time ratio prefixed/random ${ratio.toFixed(3)}`);
});
