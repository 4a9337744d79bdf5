// MFA configuration checks (issue 11): a weak secrets.mfa, WebAuthn behind an IP publicUrl, an
// SMTP URL that is not smtp(s)://, and a TOTP window beyond ±1 step (THREATS 56) are refused at
// start with the path of the offending key.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { makeTempDir } from '../helpers/gateway.js';

async function errorsOf(t: Parameters<typeof makeTempDir>[0], config: Record<string, unknown>): Promise<string[]> {
  const dir = makeTempDir(t);
  const file = join(dir, 'authgate.yaml');
  writeFileSync(file, stringify({ store: { driver: 'memory' }, routes: [], ...config }));
  try {
    await loadConfig(file, {});
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.errors;
  }
}

t.test('MFA settings that cannot work are refused at start', async (t) => {
  t.same(await errorsOf(t, { secrets: { mfa: randomBytes(32).toString('base64url') }, server: { publicUrl: 'https://gw.example.com' }, mfa: { webauthn: {}, passkeyLogin: true, email: { smtp: 'smtps://u:p@mail.example.com', from: 'a@b.c' } } }), [], 'a sound MFA config');
  t.match((await errorsOf(t, { secrets: { mfa: 'short' } })).join('\n'), /secrets\.mfa: MFA secret must be at least 32 bytes/);
  t.match((await errorsOf(t, { server: { publicUrl: 'http://127.0.0.1:8080' }, mfa: { passkeyLogin: true } })).join('\n'), /server\.publicUrl: WebAuthn .* not an IP address/);
  t.match((await errorsOf(t, { mfa: { email: { smtp: 'http://mail.example.com', from: 'a@b.c' } } })).join('\n'), /mfa\.email\.smtp: must be an smtp:\/\/ or smtps:\/\/ URL/);
  t.match((await errorsOf(t, { mfa: { totp: { window: 10 } } })).join('\n'), /mfa\.totp\.window/);
});
