// The Caddy configuration documented in docs/forward-auth.md, with its site address, gateway and
// upstream pointed at a test gateway, upstream and port: the test runs the documentation.
import { readFileSync } from 'node:fs';

const DOC = new URL('../../docs/forward-auth.md', import.meta.url);

export function documentedCaddyfile(gateway: string, app: string, listen: string): string {
  const doc = readFileSync(DOC, 'utf8');
  const m = /```caddyfile\n([\s\S]*?)```/.exec(doc);
  if (!m?.[1]) throw new Error('docs/forward-auth.md has no caddyfile block');
  const block = m[1];
  for (const needle of ['app.example.com {', '127.0.0.1:8080', '127.0.0.1:3000']) {
    if (!block.includes(needle)) throw new Error(`the documented Caddyfile no longer contains '${needle}'`);
  }
  // An http:// site address: no automatic HTTPS (and so no certificate authority is contacted).
  return block.replace('app.example.com {', `http://${listen} {`).replaceAll('127.0.0.1:8080', gateway).replaceAll('127.0.0.1:3000', app);
}
