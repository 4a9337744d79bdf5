// credentialCacheKey (src/util/secure.ts): the in-memory key that stands for a credential in the
// verification caches (Basic, introspection, Django sessions, DRF tokens).
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { credentialCacheKey } from '../../src/util/secure.js';

t.test('the same credential gives the same key; any other gives another', async (t) => {
  const k = randomBytes(32);
  const of = credentialCacheKey(k, 'basic');
  t.equal(of('Basic YWxpY2U6cw=='), of('Basic YWxpY2U6cw=='));
  t.not(of('Basic YWxpY2U6cw=='), of('Basic YWxpY2U6cw= '));
  t.not(of('Basic YWxpY2U6cw=='), of('basic YWxpY2U6cw=='));
  t.match(of('x'), /^[A-Za-z0-9_-]{43}$/, '43 base64url characters');
});

t.test('the key never shows the credential, and depends on the per-process key', async (t) => {
  const secret = 'correct horse battery staple';
  const a = credentialCacheKey(randomBytes(32), 'basic')(secret);
  const b = credentialCacheKey(randomBytes(32), 'basic')(secret);
  t.not(a, b, 'another process key, another digest: a dump of the cache cannot be checked against guesses without the key');
  t.notOk(a.includes(secret));
});

t.test('fixed parts are length-prefixed: their boundaries cannot be moved', async (t) => {
  const k = randomBytes(32);
  t.not(credentialCacheKey(k, 'introspection', 'a|b', 'c')('tok'), credentialCacheKey(k, 'introspection', 'a', 'b|c')('tok'));
  t.not(credentialCacheKey(k, 'ab', 'c')('tok'), credentialCacheKey(k, 'a', 'bc')('tok'));
  t.not(credentialCacheKey(k, 'basic')('x'), credentialCacheKey(k, 'drf-token')('x'));
});
