// The one config loader (SPEC 3), used by `authgate start`, `authgate validate` and reloads:
// YAML → ${VAR} substitution → schema validation with defaults → { file } secrets → semantic
// checks. Every problem is collected and reported at once as `FILE:LINE:COL: path: message`.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './schema.js';
import { checkConfig } from './checks.js';
import { interpolate } from './interpolate.js';
import { resolveSecretFiles } from './secrets.js';
import { ConfigSource, type ConfigIssue } from './source.js';
import { coerceWholeReferences, validateConfig } from './validate.js';

export interface LoadedConfig {
  config: Config;
  /** Absolute path of the config file. */
  file: string;
  /** Its directory; relative paths in the config were resolved against it. */
  dir: string;
}

/** An invalid config: every problem, each `FILE:LINE:COL: path.to.key: message`, sorted by position. */
export class ConfigError extends Error {
  readonly errors: string[];

  constructor(errors: string[]) {
    super(`invalid configuration:\n${errors.join('\n')}`);
    this.name = 'ConfigError';
    this.errors = errors;
  }
}

function fail(source: ConfigSource, issues: ConfigIssue[]): never {
  const formatted = issues
    .map((issue) => source.format(issue))
    .sort((a, b) => a.offset - b.offset || (a.text < b.text ? -1 : a.text > b.text ? 1 : 0));
  throw new ConfigError([...new Set(formatted.map((f) => f.text))]);
}

/**
 * Loads, validates and resolves a config file. Throws ConfigError listing every problem.
 * Relative paths inside (secret files, users.file, plugin modules, store.sqlite.path,
 * login.branding.logo) are resolved against the file's directory and returned absolute; a
 * signing key `{ file }` that does not exist yet is kept as `{ file: ABSOLUTE }` to be generated.
 */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  const absolute = path.resolve(file);
  const dir = path.dirname(absolute);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'file does not exist' : code === 'EISDIR' ? 'is a directory' : `cannot read the file (${code ?? 'error'})`;
    throw new ConfigError([`${file}:1:1: (root): ${reason}`]);
  }

  const source = new ConfigSource(file, text);
  const syntax = source.syntaxIssues();
  if (source.hasFatalSyntaxErrors) fail(source, syntax);

  const substituted = interpolate(source.toData(), env, source);
  const data = coerceWholeReferences(substituted.data, substituted.wholeReferences);
  const schema = validateConfig(data);
  const issues: ConfigIssue[] = [...syntax, ...schema.issues];
  issues.push(...(await resolveSecretFiles(data, dir)));
  try {
    issues.push(...(await checkConfig(schema.config, dir)));
  } catch (err) {
    // The semantic checks assume schema-shaped data; with schema errors already reported, a
    // surprise there adds nothing. Without them it is a bug and must surface.
    if (issues.length === 0 && substituted.issues.length === 0) throw err;
  }
  // A value whose variable is unset was substituted with '': its other complaints are noise.
  const unset = new Set(substituted.issues.map((i) => i.path.join('.')));
  const all = [...substituted.issues, ...issues.filter((i) => !unset.has(i.path.join('.')))];
  if (all.length > 0) fail(source, all);
  return { config: schema.config, file: absolute, dir };
}

/** The default config file: `$AUTHGATE_CONFIG`, else `config/authgate.yaml`. */
export const defaultConfigFile = (env: NodeJS.ProcessEnv = process.env): string => env.AUTHGATE_CONFIG || 'config/authgate.yaml';
