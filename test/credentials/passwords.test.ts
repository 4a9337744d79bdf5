import t from 'tap';
import { readFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import {
  verifyPassword,
  hashPassword,
  burnPasswordTime,
  passwordHashFormat,
  dummyHashLike,
  DUMMY_HASH,
  MAX_PASSWORD_BYTES,
} from '../../src/credentials/passwords.js';

interface Fixture {
  vectors: { password: string; hash: string; hasher: string }[];
  wrong_passwords: string[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/django-hashes.json', import.meta.url), 'utf8')) as Fixture;

// Generated with Python's hashlib.scrypt exactly as Django's ScryptPasswordHasher.encode does
// (salt as the literal string, dklen=64, standard base64): N=2^14, r=8, p=1 and p=5.
const SCRYPT_VECTORS = [
  {
    password: 'correct horse battery staple',
    hash: 'scrypt$16384$k4Vh2nQm8ZpX1cTq7YbR3e$8$1$qagZm8r1PQ5UY+qYWB8tHOPJcMaLCycpHve32VWcxG/aHEWV4FxmhZpj2ueaHAzKUUr4bBT7DDdRCZXrTtBOHA==',
  },
  {
    password: 'pässwörd:colon',
    hash: 'scrypt$16384$Wd9sLk2PqR7mNx4TzVb8Hc$8$5$u+a49rwHSYy+GerR6YJqXIqHQbSuc5sxG47nSut9yZlMUwTew3iUuSX5CFmQF/1zuolqebeAt6eiv3v+/0N5Dw==',
  },
];

t.test('every Django fixture vector verifies, and the wrong passwords do not', async (t) => {
  t.ok(fixture.vectors.length >= 5);
  for (const v of fixture.vectors) {
    t.equal(passwordHashFormat(v.hash), v.hasher, `format of ${v.hasher}`);
    t.equal(await verifyPassword(v.password, v.hash), true, `accepts ${JSON.stringify(v.password)}`);
    for (const wrong of fixture.wrong_passwords) {
      t.equal(await verifyPassword(wrong, v.hash), false, `refuses ${JSON.stringify(wrong)} for ${JSON.stringify(v.password)}`);
    }
    t.equal(await verifyPassword(v.password + ' ', v.hash), false, 'trailing space refused');
    t.equal(await verifyPassword(v.password.toUpperCase() + 'x', v.hash), false);
  }
  // Django 1.4's published test vector.
  t.equal(await verifyPassword('lètmein', 'pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY='), true);
});

t.test('Django scrypt', async (t) => {
  for (const v of SCRYPT_VECTORS) {
    t.equal(passwordHashFormat(v.hash), 'scrypt');
    t.equal(await verifyPassword(v.password, v.hash), true, 'accepts the right password');
    t.equal(await verifyPassword(v.password.slice(0, -1), v.hash), false, 'refuses a prefix');
    t.equal(await verifyPassword('', v.hash), false);
  }
  // Hostile cost parameters are refused without being computed.
  t.equal(passwordHashFormat('scrypt$1073741824$salt$8$1$' + Buffer.alloc(64).toString('base64')), undefined);
  t.equal(passwordHashFormat('scrypt$16385$salt$8$1$' + Buffer.alloc(64).toString('base64')), undefined, 'N not a power of two');
  t.equal(passwordHashFormat('scrypt$16384$salt$8$1000$' + Buffer.alloc(64).toString('base64')), undefined);
});

t.test('pbkdf2 parsing is strict and iterations are capped', async (t) => {
  const good = fixture.vectors[0]!;
  const [alg, , salt, b64] = good.hash.split('$');
  t.equal(await verifyPassword(good.password, `${alg}$99999999$${salt}$${b64}`), false, 'iterations over the cap');
  t.equal(await verifyPassword(good.password, `${alg}$0260000$${salt}$${b64}`), false, 'leading zero');
  t.equal(await verifyPassword(good.password, `${alg}$260000$${salt}$${b64}$x`), false, 'extra field');
  t.equal(await verifyPassword(good.password, `${alg}$260000$${salt}$${b64!.slice(0, -1)}`), false, 'broken base64');
  t.equal(await verifyPassword(good.password, `pbkdf2_md5$260000$${salt}$${b64}`), false, 'unknown digest');
  const started = performance.now();
  t.equal(await verifyPassword('x', 'pbkdf2_sha256$2000000000$salt$' + Buffer.alloc(32).toString('base64')), false);
  t.ok(performance.now() - started < 250, 'a hostile iteration count is refused without computing');
});

t.test('argon2id: hashPassword output and verification', async (t) => {
  const h = await hashPassword('s3cret-Pässword');
  t.match(h, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
  t.equal(passwordHashFormat(h), 'argon2');
  t.equal(await verifyPassword('s3cret-Pässword', h), true);
  t.equal(await verifyPassword('s3cret-Password', h), false);
  t.equal(await verifyPassword('', h), false);
  await t.rejects(hashPassword(''));
  await t.rejects(hashPassword('x'.repeat(MAX_PASSWORD_BYTES + 1)));
  // argon2i / argon2d PHC strings verify too (algorithm numbers: 0 = d, 1 = i).
  const { hash } = await import('@node-rs/argon2');
  const hi = await hash('other', { algorithm: 1, memoryCost: 4096, timeCost: 1, parallelism: 1 });
  const hd = await hash('other', { algorithm: 0, memoryCost: 4096, timeCost: 1, parallelism: 1 });
  t.match(hi, /^\$argon2i\$/);
  t.match(hd, /^\$argon2d\$/);
  t.equal(await verifyPassword('other', hi), true);
  t.equal(await verifyPassword('other', hd), true);
  t.equal(await verifyPassword('Other', hd), false);
  // A hostile memory cost is refused.
  t.equal(passwordHashFormat('$argon2id$v=19$m=4194304,t=2,p=1$Ngu9ASAtm1fXPd4i/T0pgQ$OdMuA7GY1+YdsURFbYrghI2EV+eesdXDvhseJwLn3iY'), undefined);
  t.equal(await verifyPassword('x', '$argon2id$v=19$m=19456,t=2,p=1$garbage'), false);
});

t.test('bcrypt: $2a$/$2b$/$2y$, and no 72-byte truncation equivalence', async (t) => {
  // OpenBSD's published vector.
  t.equal(await verifyPassword('U*U', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'), true);
  t.equal(await verifyPassword('U*V', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'), false);
  const b = await bcrypt.hash('hunter2', 4);
  t.match(b, /^\$2b\$04\$/);
  t.equal(await verifyPassword('hunter2', b), true);
  t.equal(await verifyPassword('hunter2', b.replace('$2b$', '$2y$')), true, '$2y$ (PHP) is the same algorithm');
  t.equal(await verifyPassword('hunter3', b), false);
  t.equal(passwordHashFormat(b), 'bcrypt');
  t.equal(passwordHashFormat(b.replace('$2b$', '$2x$')), undefined, '$2x$ is not supported');
  t.equal(passwordHashFormat(b.replace('$2b$04$', '$2b$31$')), undefined, 'cost over the cap');

  const eighty = 'p'.repeat(40) + 'ä'.repeat(20); // 80 UTF-8 bytes
  t.equal(Buffer.byteLength(eighty), 80);
  const prefix72 = Buffer.from(eighty).subarray(0, 72).toString('utf8');
  const h80 = await bcrypt.hash(prefix72, 4); // what a truncating system would have stored
  t.equal(await verifyPassword(prefix72, h80), true, 'the 72-byte password itself works');
  t.equal(await verifyPassword(eighty, h80), false, 'prefix + more does not match the prefix hash');
  t.equal(await verifyPassword(prefix72 + 'x'.repeat(100), h80), false);
  t.equal(await verifyPassword('a\0b', await bcrypt.hash('a', 4)), false, 'NUL refused for bcrypt');
  const started = performance.now();
  t.equal(await verifyPassword('x'.repeat(1024 * 1024), h80), false, '1 MB password');
  t.ok(performance.now() - started < 250, 'refused quickly');
});

t.test('unknown formats give false', async (t) => {
  for (const h of ['', 'plaintext', 'md5$salt$abc', 'sha1$salt$abc', '!unusable', 'bcrypt_sha256$$2b$12$x', 'argon2$argon2id$v=19$m=102400,t=2,p=8$x$y']) {
    t.equal(await verifyPassword('plaintext', h), false, JSON.stringify(h));
    t.equal(passwordHashFormat(h), undefined);
  }
  t.equal(await verifyPassword('x'.repeat(MAX_PASSWORD_BYTES + 1), DUMMY_HASH), false);
});

t.test('burnPasswordTime takes about as long as a real check', async (t) => {
  const real = await hashPassword('the-password');
  const N = 7;
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const realTimes: number[] = [];
  const burnTimes: number[] = [];
  for (let i = 0; i < N; i++) {
    let s = performance.now();
    await verifyPassword('wrong', real);
    realTimes.push(performance.now() - s);
    s = performance.now();
    await burnPasswordTime('wrong');
    burnTimes.push(performance.now() - s);
  }
  const ratio = median(realTimes) / median(burnTimes);
  t.ok(ratio > 1 / 3 && ratio < 3, `median ratio ${ratio.toFixed(2)}`);
});

t.test('dummyHashLike matches the shape of other formats', async (t) => {
  const pb = fixture.vectors[0]!.hash;
  const d = dummyHashLike(pb);
  t.match(d, /^pbkdf2_sha256\$260000\$dummysalt\$/);
  t.equal(await verifyPassword(fixture.vectors[0]!.password, d!), false);
  const sc = dummyHashLike(SCRYPT_VECTORS[1]!.hash);
  t.match(sc, /^scrypt\$16384\$dummysalt\$8\$5\$/);
  t.equal(dummyHashLike(DUMMY_HASH), DUMMY_HASH);
  const b = await bcrypt.hash('x', 5);
  t.equal(dummyHashLike(b), undefined, 'bcrypt dummy is prepared in the background');
  const deadline = Date.now() + 10_000;
  let ready: string | undefined;
  while (!ready && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
    ready = dummyHashLike(b);
  }
  t.match(ready, /^\$2[ab]\$05\$/);
  t.equal(dummyHashLike('nonsense'), undefined);
});
