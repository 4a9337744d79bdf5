// Signing keys (SPEC 3 `signing`): generated when absent (0600), reused after a restart, checked
// against their algorithm, first key signs, every key verifies, JWKS with public parts only.
import t from 'tap';
import { createPublicKey, generateKeyPairSync, verify as cryptoVerify } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jwtVerify, createLocalJWKSet } from 'jose';
import { DEFAULT_SIGNING_KEY, generatePrivateKeyPem, loadSigningKeys } from '../../src/credentials/keys.js';
import { recordingLogger, tempDir } from './helpers.js';

const now = () => Math.floor(Date.now() / 1000);

t.test('default: one EdDSA key k1 generated at ./data/k1.pem (mode 0600) and reused', async (t) => {
  const dir = tempDir(t);
  const log = recordingLogger();
  const keys = await loadSigningKeys(undefined, { configDir: dir, log });
  t.same(keys.active, { kid: 'k1', alg: 'EdDSA' });
  t.equal(DEFAULT_SIGNING_KEY.privateKey.file, './data/k1.pem');
  const file = join(dir, 'data/k1.pem');
  const pem = readFileSync(file, 'utf8');
  t.match(pem, /^-----BEGIN PRIVATE KEY-----/, 'PKCS#8 PEM');
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.ok(log.lines.some((l) => l.msg === 'generated a new signing key'));
  t.notOk(JSON.stringify(log.lines).includes('PRIVATE'), 'no key material logged');

  const again = await loadSigningKeys(undefined, { configDir: dir, log });
  t.same(again.jwks(), keys.jwks(), 'the same key after a restart');
  t.equal(readFileSync(file, 'utf8'), pem);
});

t.test('sign() is synchronous, puts kid/alg/typ in the header, and interoperates with jose', async (t) => {
  const dir = tempDir(t);
  for (const alg of ['EdDSA', 'ES256', 'RS256'] as const) {
    const keys = await loadSigningKeys({ keys: [{ kid: `k-${alg}`, alg, privateKey: { file: `./${alg}.pem` } }] }, { configDir: dir, log: recordingLogger() });
    const token = keys.sign({ sub: 'alice', exp: now() + 60 }, { typ: 'at+jwt' });
    t.type(token, 'string');
    t.same(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()), { alg, typ: 'at+jwt', kid: `k-${alg}` });
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(keys.jwks() as never), { algorithms: [alg] });
    t.equal(payload.sub, 'alice');
    t.equal(protectedHeader.kid, `k-${alg}`);
    t.ok(typeof payload.iat === 'number', 'iat added');
    const jwk = keys.jwks().keys[0]!;
    t.match(jwk, { kid: `k-${alg}`, alg, use: 'sig' });
    t.notOk('d' in jwk || 'p' in jwk || 'q' in jwk, 'public parts only');
    t.equal(keys.publicKey(`k-${alg}`)!.alg, alg);
    t.equal(keys.publicKey('nope'), undefined);
    const [h, p, s] = token.split('.') as [string, string, string];
    const sig = Buffer.from(s, 'base64url');
    const pub = createPublicKey(keys.publicKey(`k-${alg}`)!.pem);
    const ok = alg === 'EdDSA'
      ? cryptoVerify(null, Buffer.from(`${h}.${p}`), pub, sig)
      : cryptoVerify('sha256', Buffer.from(`${h}.${p}`), alg === 'ES256' ? { key: pub, dsaEncoding: 'ieee-p1363' } : pub, sig);
    t.ok(ok, `${alg} signature verifies with the published key`);
  }
});

t.test('rotation: the first key signs, the old one stays in the JWKS', async (t) => {
  const dir = tempDir(t);
  const log = recordingLogger();
  const before = await loadSigningKeys(undefined, { configDir: dir, log });
  const after = await loadSigningKeys(
    { keys: [{ kid: 'k2', alg: 'ES256', privateKey: { file: './data/k2.pem' } }, { kid: 'k1', alg: 'EdDSA', privateKey: { file: './data/k1.pem' } }] },
    { configDir: dir, log },
  );
  t.same(after.active, { kid: 'k2', alg: 'ES256' });
  t.same(after.jwks().keys.map((k) => k.kid), ['k2', 'k1']);
  t.same(after.jwks().keys[1], before.jwks().keys[0], 'k1 unchanged');
  const oldToken = before.sign({ sub: 'a', exp: now() + 60 });
  const { payload } = await jwtVerify(oldToken, createLocalJWKSet(after.jwks() as never));
  t.equal(payload.sub, 'a', 'a token of the old key verifies against the new key set');
});

t.test('literal PEMs, absolute paths, and refusals', async (t) => {
  const dir = tempDir(t);
  const log = recordingLogger();
  const rsaPem = generatePrivateKeyPem('RS256');
  const literal = await loadSigningKeys({ keys: [{ kid: 'lit', alg: 'RS256', privateKey: rsaPem }] }, { configDir: dir, log });
  t.equal(literal.active.alg, 'RS256');
  mkdirSync(join(dir, 'abs'));
  const abs = join(dir, 'abs/key.pem');
  await loadSigningKeys({ keys: [{ kid: 'abs', alg: 'EdDSA', privateKey: { file: abs } }] }, { configDir: '/nonexistent', log });
  t.match(readFileSync(abs, 'utf8'), /BEGIN PRIVATE KEY/, 'an absolute path (as the config loader leaves it) is used as is');

  await t.rejects(loadSigningKeys({ keys: [{ kid: 'x', alg: 'ES256', privateKey: rsaPem }] }, { configDir: dir, log }), /does not fit algorithm ES256/);
  await t.rejects(loadSigningKeys({ keys: [{ kid: 'x', alg: 'EdDSA', privateKey: 'not a pem' }] }, { configDir: dir, log }), /not a valid PEM private key/);
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  await t.rejects(loadSigningKeys({ keys: [{ kid: 'x', alg: 'RS256', privateKey: small }] }, { configDir: dir, log }), /at least 2048 bits/);
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  await t.rejects(loadSigningKeys({ keys: [{ kid: 'x', alg: 'ES256', privateKey: p384 }] }, { configDir: dir, log }), /does not fit/);
  await t.rejects(
    loadSigningKeys({ keys: [{ kid: 'd', alg: 'RS256', privateKey: rsaPem }, { kid: 'd', alg: 'RS256', privateKey: rsaPem }] }, { configDir: dir, log }),
    /duplicate kid/,
  );
  writeFileSync(join(dir, 'bad.pem'), 'garbage');
  const err = await loadSigningKeys({ keys: [{ kid: 'b', alg: 'EdDSA', privateKey: { file: './bad.pem' } }] }, { configDir: dir, log }).catch((e: Error) => e);
  t.match(String(err), /not a valid PEM/);
  t.notMatch(String(err), /garbage/, 'the file content is not echoed');
});
