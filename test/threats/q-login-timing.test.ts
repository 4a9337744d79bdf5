// Issue 9.10 through a running gateway: with a users file that mixes argon2id, bcrypt, Django
// pbkdf2_sha256 and scrypt, an unknown user's failed login takes as long as a known user's of
// every format — including bcrypt with a > 72-byte password, which verifyPassword refuses at once.
// Medians of sequential requests, compared as ratios with bounds loose enough for a loaded 2-core machine.
import { pbkdf2Sync, randomBytes, scryptSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import bcrypt from 'bcryptjs';
import t from 'tap';
import { stringify } from 'yaml';
import { hashPassword } from '../../src/credentials/passwords.js';
import { callGateway } from '../helpers/http.js';
import { startTestGateway } from '../helpers/gateway.js';

const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;
const SAMPLES = 5;
const WARMUP = 2;

function djangoPbkdf2(password: string, iterations: number): string {
  const salt = randomBytes(9).toString('hex');
  return `pbkdf2_sha256$${iterations}$${salt}$${pbkdf2Sync(password, salt, iterations, 32, 'sha256').toString('base64')}`;
}

function djangoScrypt(password: string): string {
  const salt = randomBytes(9).toString('hex');
  const [N, r, p] = [2 ** 14, 8, 1];
  return `scrypt$${N}$${salt}$${r}$${p}$${scryptSync(password, salt, 64, { N, r, p, maxmem: 64 * 1024 * 1024 }).toString('base64')}`;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

t.test('unknown users answer as slowly as known users of every hash format in the file', async (t) => {
  const users = {
    users: {
      argon: { password: await hashPassword(PASSWORD) },
      bcrypt: { password: await bcrypt.hash(PASSWORD, 10) },
      // The slowest hash here (Django's own default is 1,000,000 iterations).
      django: { password: djangoPbkdf2(PASSWORD, 100_000) },
      scrypt: { password: djangoScrypt(PASSWORD) },
    },
  };
  const gw = await startTestGateway(
    t,
    { users: { file: './users.yaml' }, login: { lockout: { maxFailures: 1000, maxFailuresPerAddress: 10_000 } }, routes: [] },
    { files: { 'users.yaml': stringify(users) }, logLevel: 'warn' },
  );
  const attempt = async (username: string, password: string): Promise<number> => {
    const started = performance.now();
    const r = await callGateway(gw, '/.auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
    const ms = performance.now() - started;
    t.equal(r.status, 401, `${username}: 401`);
    return ms;
  };
  const cases: Record<string, [string, string]> = {
    unknown: ['nobody-here', 'wrong-password'],
    argon: ['argon', 'wrong-password'],
    bcrypt: ['bcrypt', 'wrong-password'],
    'bcrypt, 100-byte password': ['bcrypt', 'x'.repeat(100)],
    django: ['django', 'wrong-password'],
    scrypt: ['scrypt', 'wrong-password'],
  };
  const times: Record<string, number[]> = {};
  for (let round = 0; round < WARMUP + SAMPLES; round++) {
    // Interleaved, so a burst of load elsewhere on the machine hits every case alike.
    for (const [name, [username, password]] of Object.entries(cases)) {
      const ms = await attempt(username, password);
      if (round >= WARMUP) (times[name] ??= []).push(ms);
    }
  }
  const medians = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
  const unknown = medians.unknown!;
  t.comment(`medians (ms): ${Object.entries(medians).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`);
  for (const [name, known] of Object.entries(medians)) {
    if (name === 'unknown') continue;
    const ratio = unknown / known;
    t.ok(ratio > 0.5 && ratio < 2, `unknown / ${name} = ${ratio.toFixed(2)} (unknown ${unknown.toFixed(1)} ms, ${name} ${known.toFixed(1)} ms)`);
  }
});
