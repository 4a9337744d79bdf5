// OAuth client authentication (RFC 6749 2.3): methods, the verified-secret cache, the bound on
// concurrent hash checks.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { hashPassword, verifyPassword } from '../../src/credentials/passwords.js';
import { OAuthClients } from '../../src/tokens/oauth-clients.js';

const basic = (id: string, secret: string, encode = true): string => {
  const enc = (s: string) => (encode ? encodeURIComponent(s).replace(/%20/g, '+') : s);
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
};

t.test('client authentication methods', async (t) => {
  const config = {
    oauth: {
      clients: [
        { id: 'billing', secretHash: await hashPassword('billing-secret'), scopes: ['invoices:read'], tokenTtl: '10m' },
        { id: 'svc:odd id', secretHash: bcrypt.hashSync('p@ss:w rd+&=', 4), scopes: [] },
      ],
    },
  };
  let calls = 0;
  const clients = new OAuthClients(
    { config, cacheKey: randomBytes(32) },
    {
      verify: async (s, h) => {
        calls++;
        return verifyPassword(s, h);
      },
    },
  );
  t.equal(clients.clients.get('billing')?.tokenTtlSeconds, 600);
  t.equal(clients.clients.get('svc:odd id')?.tokenTtlSeconds, 600, 'default tokenTtl 10m');

  const ok = await clients.authenticate({ authorization: basic('billing', 'billing-secret') }, {});
  t.equal(ok.ok && ok.client.id, 'billing', 'Basic');
  t.equal((await clients.authenticate({}, { client_id: 'billing', client_secret: 'billing-secret' })).ok, true, 'form');
  t.equal((await clients.authenticate({ authorization: basic('billing', 'billing-secret') }, { client_id: 'billing' })).ok, true, 'Basic plus a matching client_id');
  t.equal((await clients.authenticate({ authorization: basic('svc:odd id', 'p@ss:w rd+&=') }, {})).ok, true, 'Basic parts are form-urlencoded (RFC 6749 2.3.1)');
  t.match(await clients.authenticate({ authorization: basic('svc:odd id', 'p@ss:w rd+&=', false) }, {}), { ok: false, error: 'invalid_client' });

  t.match(await clients.authenticate({ authorization: basic('billing', 'billing-secret') }, { client_secret: 'billing-secret' }), { ok: false, status: 400, error: 'invalid_request' }, 'two methods');
  t.match(await clients.authenticate({ authorization: basic('billing', 'billing-secret') }, { client_id: 'other' }), { ok: false, status: 400, error: 'invalid_request' });
  t.match(await clients.authenticate({}, { client_id: ['billing'], client_secret: 'x' }), { ok: false, status: 400, error: 'invalid_request' });
  t.match(await clients.authenticate({}, {}), { ok: false, status: 401, error: 'invalid_client' }, 'no client authentication');
  t.match(await clients.authenticate({}, { client_id: 'billing' }), { ok: false, status: 401, error: 'invalid_client' }, 'a public client is no client here');
  t.match(await clients.authenticate({ authorization: 'Bearer abc' }, {}), { ok: false, status: 401 });
  t.match(await clients.authenticate({ authorization: 'Basic !!!' }, {}), { ok: false, status: 401 });
  t.match(await clients.authenticate({ authorization: `Basic ${Buffer.from('no-colon').toString('base64')}` }, {}), { ok: false, status: 401 });
  t.match(await clients.authenticate({ authorization: basic('billing', 'wrong') }, {}), { ok: false, status: 401, error: 'invalid_client' });
  t.match(await clients.authenticate({ authorization: basic('nobody', 'billing-secret') }, {}), { ok: false, status: 401, error: 'invalid_client' });
  t.match(await clients.authenticate({ authorization: basic('billing', 'x'.repeat(5000)) }, {}), { ok: false, status: 401 });

  // The cache: a verified pair is not hashed again; wrong secrets always are.
  const before = calls;
  for (let i = 0; i < 10; i++) t.equal((await clients.authenticate({ authorization: basic('billing', 'billing-secret') }, {})).ok, true);
  t.equal(calls, before, 'verified secrets are cached');
  for (let i = 0; i < 3; i++) await clients.authenticate({ authorization: basic('billing', 'wrong') }, {});
  t.equal(calls, before + 3, 'wrong secrets are never cached as good');
});

t.test('uncached verifications are bounded', async (t) => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const clients = new OAuthClients(
    { config: { oauth: { clients: [{ id: 'a', secretHash: 'x' }] } }, cacheKey: randomBytes(32) },
    { verify: async () => (await gate, false), maxInFlight: 2 },
  );
  const pending = [clients.authenticate({}, { client_id: 'a', client_secret: '1' }), clients.authenticate({}, { client_id: 'a', client_secret: '2' })];
  t.match(await clients.authenticate({}, { client_id: 'a', client_secret: '3' }), { ok: false, status: 503, error: 'temporarily_unavailable' });
  release();
  for (const p of await Promise.all(pending)) t.match(p, { ok: false, status: 401 });
  t.match(await clients.authenticate({}, { client_id: 'a', client_secret: '4' }), { ok: false, status: 401 }, 'capacity is back');
});
