// The THREATS.md setup as a real gateway: /public/** anonymous, /admin/** and /api/** behind
// API keys (and Basic), /basic/** Basic only, /ro/** anonymous GET only, /ws/** WebSocket.
// Every attack test asserts the echo upstream's `received` list to prove "not forwarded".
import { createHash, randomBytes } from 'node:crypto';
import { hashPassword } from '../../src/credentials/passwords.js';
import type { EchoServer } from '../../src/demo/echo.js';
import { startTestEcho, startTestGateway, type Teardown, type TestGateway } from '../helpers/gateway.js';

export const PASSWORD = 'correct horse ' + randomBytes(6).toString('hex');
/** alice: staff; root: admin. */
export const KEY_ALICE = 'ak_alice_' + randomBytes(18).toString('base64url');
export const KEY_ADMIN = 'ak_admin_' + randomBytes(18).toString('base64url');

const sha = (k: string): string => 'sha256:' + createHash('sha256').update(k).digest('hex');
export const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;

let usersYaml: string | undefined;
async function usersFile(): Promise<string> {
  usersYaml ??= `users:\n  alice: { email: alice@example.test, password: "${await hashPassword(PASSWORD)}", groups: [staff] }\n`;
  return usersYaml;
}

export interface ThreatSetup {
  gw: TestGateway;
  echo: EchoServer;
  host: string;
}

export function threatConfig(echoUrl: string, extra: { routes?: Record<string, unknown>[]; server?: Record<string, unknown>; authenticators?: Record<string, unknown> } = {}): Record<string, unknown> {
  return {
    server: { ...(extra.server ?? {}) },
    users: { file: 'users.yaml' },
    authenticators: {
      keys: {
        type: 'apikey',
        keys: [
          { id: 'alice', hash: sha(KEY_ALICE), user: 'alice', email: 'alice@example.test', groups: ['staff'], scopes: ['orders:read'] },
          { id: 'root', hash: sha(KEY_ADMIN), user: 'root', groups: ['admin'] },
        ],
      },
      staff: { type: 'basic', realm: 'staff' },
      ...(extra.authenticators ?? {}),
    },
    routes: [
      ...(extra.routes ?? []),
      { name: 'public', match: { path: '/public/**' }, upstream: echoUrl, auth: 'anonymous' },
      { name: 'ro', match: { path: '/ro/**', methods: ['GET'] }, upstream: echoUrl, auth: 'anonymous' },
      { name: 'admin', match: { path: '/admin/**' }, upstream: echoUrl, auth: ['keys'], require: { groups: ['admin'] } },
      { name: 'api', match: { path: '/api/**' }, upstream: echoUrl, auth: ['keys', 'staff'] },
      { name: 'basic', match: { path: '/basic/**' }, upstream: echoUrl, auth: ['staff'] },
      { name: 'ws', match: { path: '/ws/**' }, upstream: echoUrl, auth: ['keys'], websocket: true },
    ],
  };
}

export async function startThreatGateway(
  t: Teardown,
  extra: Parameters<typeof threatConfig>[1] & { logLevel?: string; upstream?: string } = {},
): Promise<ThreatSetup> {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, threatConfig(extra.upstream ?? echo.url, extra), { files: { 'users.yaml': await usersFile() }, logLevel: extra.logLevel });
  return { gw, echo, host: new URL(gw.url).host };
}

/** How many times a header name appears in a raw header list (case-insensitive). */
export function countHeader(rawHeaders: readonly string[], name: string): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if ((rawHeaders[i] as string).toLowerCase() === name) n++;
  return n;
}

/** Status code of a raw HTTP response ('' when the server closed without answering). */
export function statusOf(raw: string): number {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(raw);
  return m ? Number(m[1]) : 0;
}
