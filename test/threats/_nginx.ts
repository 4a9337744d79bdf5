// The nginx configuration documented in docs/forward-auth.md, with its addresses pointed at a
// test gateway, upstream and port: the test runs the documentation, not a copy of it.
import { readFileSync } from 'node:fs';

const DOC = new URL('../../docs/forward-auth.md', import.meta.url);

export function documentedNginxConfig(gateway: string, app: string, listen: string): string {
  const doc = readFileSync(DOC, 'utf8');
  const m = /```nginx\n([\s\S]*?)```/.exec(doc);
  if (!m?.[1]) throw new Error('docs/forward-auth.md has no nginx block');
  const block = m[1];
  for (const needle of ['server 127.0.0.1:8080;', 'server 127.0.0.1:3000;', 'listen 80;']) {
    if (!block.includes(needle)) throw new Error(`the documented nginx block no longer contains '${needle}'`);
  }
  return block.replace('server 127.0.0.1:8080;', `server ${gateway};`).replace('server 127.0.0.1:3000;', `server ${app};`).replace('listen 80;', `listen ${listen};`);
}

/**
 * The documented X-Original-URL variant: the main block with its `location = /_authgate` replaced
 * by the documented alternative (the nginx block that sets X-Original-Method).
 */
export function documentedNginxOriginalUrlConfig(gateway: string, app: string, listen: string): string {
  const doc = readFileSync(DOC, 'utf8');
  const variant = [...doc.matchAll(/```nginx\n([\s\S]*?)```/g)].map((m) => m[1] ?? '').find((b) => b.includes('X-Original-Method'));
  if (!variant) throw new Error('docs/forward-auth.md has no X-Original-URL nginx block');
  const main = documentedNginxConfig(gateway, app, listen);
  const start = main.indexOf('    location = /_authgate {');
  const end = main.indexOf('    }\n', start);
  if (start === -1 || end === -1) throw new Error('the documented nginx block has no /_authgate location');
  return main.slice(0, start) + variant.trimEnd() + '\n' + main.slice(end + '    }\n'.length);
}
