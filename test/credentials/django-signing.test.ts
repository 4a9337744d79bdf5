// src/credentials/django.ts against values real Django 3.2 produced (test/fixtures/django/vectors.py):
// signing.loads (plain, zlib, sha1 signer), the pre-3.1 session format, get_session_auth_hash
// (sha256 and legacy sha1), key fallbacks, and refusal of every altered or oversized input.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { decodeSessionData, saltedHmac, SESSION_SALT, sessionAuthHashMatches, signingLoads } from '../../src/credentials/django.js';

const v = JSON.parse(readFileSync(new URL('../fixtures/django-signing.json', import.meta.url), 'utf8')) as {
  key: string;
  password: string;
  sessionAuthHash: { sha256: string; sha1: string };
  session: Record<string, unknown>;
  bigSession: Record<string, unknown>;
  signed: string;
  compressed: string;
  signedSha1: string;
  legacy: string;
};
const OTHER = 'another-key-entirely-0123456789abcdef';

t.test('session data Django signed decodes with SECRET_KEY, and with it as a fallback', async (t) => {
  t.ok(v.compressed.startsWith('.'), 'the vector is compressed');
  for (const [what, data, expected] of [['plain', v.signed, v.session], ['zlib', v.compressed, v.bigSession], ['sha1 signer', v.signedSha1, v.session], ['pre-3.1', v.legacy, v.session]] as const) {
    t.same(decodeSessionData(data, [v.key]), { ok: true, data: expected }, what);
    t.same(decodeSessionData(data, [OTHER, v.key]), { ok: true, data: expected }, `${what}: key in SECRET_KEY_FALLBACKS`);
    t.same(decodeSessionData(data, [OTHER]), { ok: false }, `${what}: another key`);
  }
  t.same(decodeSessionData(v.signed, []), { ok: false }, 'no key, no session');
});

t.test('any altered byte is refused', async (t) => {
  const [payload, ts, sig] = v.signed.split(':') as [string, string, string];
  const other = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  const forgedPayload = Buffer.from(JSON.stringify({ ...other, _auth_user_id: '1' })).toString('base64url');
  t.same(decodeSessionData(`${forgedPayload}:${ts}:${sig}`, [v.key]), { ok: false }, 'payload changed');
  t.same(decodeSessionData(`${payload}:${ts}:${sig.slice(0, -1)}${sig.endsWith('A') ? 'B' : 'A'}`, [v.key]), { ok: false }, 'signature changed');
  t.same(decodeSessionData(`${payload}:${ts}`, [v.key]), { ok: false }, 'signature removed');
  const legacy = Buffer.from(v.legacy, 'base64').toString('latin1').replace('"7"', '"1"');
  t.same(decodeSessionData(Buffer.from(legacy, 'latin1').toString('base64'), [v.key]), { ok: false }, 'legacy payload changed');
  t.same(decodeSessionData('%%%not base64 at all', [v.key]), { ok: false }, 'garbage');
});

t.test('a signed but oversized or bomb-like payload is refused without inflating it all', async (t) => {
  // Signed with the real key (as only the site could), inflating to 4 MiB: over the bound.
  const bomb = `.${deflateSync(Buffer.alloc(4 * 1024 * 1024, 0x20)).toString('base64url')}`;
  const value = `${bomb}:1abcde`;
  const signed = `${value}:${saltedHmac(`${SESSION_SALT}signer`, value, v.key, 'sha256').toString('base64url')}`;
  t.throws(() => signingLoads(signed, SESSION_SALT, [v.key]), 'signingLoads stops at the bound');
  t.same(decodeSessionData(signed, [v.key]), { ok: false });
  t.same(decodeSessionData('a'.repeat(300 * 1024), [v.key]), { ok: false }, 'oversized data is not parsed');
});

t.test("get_session_auth_hash: Django's own values, sha256 and legacy sha1, current and fallback keys", async (t) => {
  t.ok(sessionAuthHashMatches(v.sessionAuthHash.sha256, v.password, [v.key]));
  t.ok(sessionAuthHashMatches(v.sessionAuthHash.sha1, v.password, [v.key]));
  t.ok(sessionAuthHashMatches(v.sessionAuthHash.sha256, v.password, [OTHER, v.key]), 'fallback key');
  t.notOk(sessionAuthHashMatches(v.sessionAuthHash.sha256, v.password, [OTHER]), 'another key');
  t.notOk(sessionAuthHashMatches(v.sessionAuthHash.sha256, `${v.password}x`, [v.key]), 'a changed password hash');
  t.notOk(sessionAuthHashMatches('', v.password, [v.key]), 'an empty hash');
});
