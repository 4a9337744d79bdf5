// `{ file: PATH }` secrets (schema nodes marked `x-secret`): replaced by the file's trimmed
// content, PATH relative to the config file's directory. Messages never contain the content.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describeCandidates, findExistingFile } from './paths.js';
import { isPlainObject, walkWithSchema } from './schema-walk.js';
import { configJsonSchema } from './json-schema.js';
import type { ConfigIssue } from './source.js';

interface SecretFile {
  path: (string | number)[];
  file: string;
  /** Absent file is fine: the gateway generates it (signing keys). */
  generated: boolean;
}

/** Resolves every `{ file }` secret in `data` in place; returns the problems found. */
export async function resolveSecretFiles(data: unknown, dir: string): Promise<ConfigIssue[]> {
  const found: SecretFile[] = [];
  walkWithSchema(configJsonSchema(), data, (schema, value, at) => {
    if (schema['x-secret'] !== true || !isPlainObject(value) || typeof value.file !== 'string') return undefined;
    found.push({ path: [...at], file: value.file, generated: schema['x-generated-if-missing'] === true });
    return undefined;
  });

  const issues: ConfigIssue[] = [];
  await Promise.all(
    found.map(async (secret) => {
      const issuePath = [...secret.path, 'file'];
      // A file the gateway generates when absent is only ever looked for beside the config: a
      // same-named file in the working directory must never become the signing key.
      const absolute = await findExistingFile(dir, secret.file, [''], !secret.generated);
      if (!absolute) {
        // A file to be generated lives beside the config, like every other relative path.
        if (secret.generated) setAt(data, secret.path, { file: path.resolve(dir, secret.file) });
        else issues.push({ path: issuePath, message: `secret file not found (looked for ${describeCandidates(dir, secret.file)})` });
        return;
      }
      let content: string;
      try {
        content = (await readFile(absolute, 'utf8')).trim();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const reason = code === 'EACCES' ? 'is not readable (permission denied)' : `cannot be read (${code ?? 'error'})`;
        issues.push({ path: issuePath, message: `secret file ${absolute} ${reason}` });
        return;
      }
      if (content === '') {
        issues.push({ path: issuePath, message: `secret file ${absolute} is empty` });
        return;
      }
      setAt(data, secret.path, content);
    }),
  );
  return issues;
}

function setAt(root: unknown, at: readonly (string | number)[], value: unknown): void {
  let node = root as Record<string | number, unknown>;
  for (const seg of at.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
  const last = at[at.length - 1];
  if (last !== undefined) node[last] = value;
}
