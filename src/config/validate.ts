// JSON-schema validation of the config (ajv, compiled once from the TypeBox schema) and the
// translation of ajv's errors into short messages a person can act on.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parse as parseYamlScalar } from 'yaml';
import type { Config } from './schema.js';
import { configJsonSchema } from './json-schema.js';
import { acceptsTypeOf, branchFits, walkWithSchema, type JsonSchema } from './schema-walk.js';
import { pointer } from './interpolate.js';
import type { ConfigIssue } from './source.js';

/** Annotation keywords our schema carries; ajv must know them in strict mode. */
export const ANNOTATION_KEYWORDS = ['x-secret', 'x-duration', 'x-generated-if-missing'] as const;

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (!compiled) {
    const ajv = new Ajv({ allErrors: true, strict: true, useDefaults: true, discriminator: true, verbose: true });
    ajv.addVocabulary([...ANNOTATION_KEYWORDS]);
    compiled = ajv.compile(configJsonSchema());
  }
  return compiled;
}

/**
 * A value written as just `${VAR}` becomes a number or boolean where the schema wants one, so
 * `port: ${PORT}` behaves as if the number had been written (quoting is often unavoidable:
 * `{ port: "${PORT}" }`). Where a free string is also accepted (plugin options), only an
 * unquoted reference is converted, as YAML would for a literal; durations mean the same either way.
 */
export function coerceWholeReferences(data: unknown, wholeReferences: Map<string, boolean>): unknown {
  if (wholeReferences.size === 0) return data;
  return walkWithSchema(configJsonSchema(), data, (schema, value, path) => {
    const plain = wholeReferences.get(pointer(path));
    if (typeof value !== 'string' || plain === undefined) return undefined;
    if (!plain && acceptsTypeOf(schema, value) && schema['x-duration'] !== true) return undefined;
    let parsed: unknown;
    try {
      parsed = parseYamlScalar(value);
    } catch {
      return undefined;
    }
    if ((typeof parsed === 'number' || typeof parsed === 'boolean') && acceptsTypeOf(schema, parsed)) return { replace: parsed };
    return undefined;
  });
}

/** Validates (and fills defaults into) `data`; returns every problem found. */
export function validateConfig(data: unknown): { config: Config; issues: ConfigIssue[] } {
  const validate = validator();
  if (validate(data)) return { config: data as Config, issues: [] };
  return { config: data as Config, issues: translateErrors(validate.errors ?? []) };
}

const splitPointer = (p: string): string[] =>
  p === '' ? [] : p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'true or false',
  object: 'a map (key: value)',
  array: 'a list',
  null: 'empty',
};

const KNOWN_PATTERNS: Record<string, string> = {
  '^/': "must start with '/'",
  '^https?://': 'must be an http:// or https:// URL',
  '^[A-Za-z0-9._-]+$': "may contain only letters, digits, '.', '_' and '-'",
  '^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$': 'must be a duration like 30s, 5m, 12h, 30d',
};

const DURATION_MESSAGE = 'must be a duration like 30s, 5m, 12h, 30d (or a number of seconds)';

function describeJsonType(value: unknown): string {
  if (value === null) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  return `a ${typeof value}`;
}

function describeBranch(schema: JsonSchema): string {
  if (schema['x-duration']) return 'a duration';
  if (schema['x-secret']) return 'a secret (a string or { file: PATH })';
  if (schema.const !== undefined) return `'${String(schema.const)}'`;
  if (schema.enum) return `one of ${schema.enum.join(', ')}`;
  if (schema.type === 'array') return schema.items ? `a list of ${describeBranch(schema.items).replace(/^an? /, '')}s` : 'a list';
  if (schema.type === 'object' && schema.required?.length) return `a map with ${schema.required.join(', ')}`;
  return schema.type ? (TYPE_NAMES[schema.type] ?? schema.type) : 'a value';
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** The known key a typo most likely meant, if one is close enough. */
function closest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of known) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function messageFor(err: ErrorObject): ConfigIssue | undefined {
  const path = splitPointer(err.instancePath);
  const parent = err.parentSchema as JsonSchema | undefined;
  const params = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      if (parent?.patternProperties && !parent.properties) {
        const pattern = Object.keys(parent.patternProperties)[0] ?? '';
        return { path: [...path, key], atKey: true, message: `invalid name '${key}': ${KNOWN_PATTERNS[pattern] ?? `must match ${pattern}`}` };
      }
      const suggestion = closest(key, Object.keys(parent?.properties ?? {}));
      return { path: [...path, key], atKey: true, message: `unknown key '${key}'${suggestion ? ` (did you mean '${suggestion}'?)` : ''}` };
    }
    case 'required':
      return { path: [...path, String(params.missingProperty)], at: path, message: 'is required' };
    case 'type':
      return { path, message: `must be ${TYPE_NAMES[String(params.type)] ?? String(params.type)}, not ${describeJsonType(err.data)}` };
    case 'enum':
      return { path, message: `must be one of: ${(params.allowedValues as unknown[]).join(', ')}` };
    case 'const':
      return { path, message: `must be '${String(params.allowedValue)}'` };
    case 'pattern': {
      const pattern = String(params.pattern);
      const known = KNOWN_PATTERNS[pattern];
      // The value is not echoed: it may have come from the environment and be a secret.
      if (known) return { path, message: known };
      return { path, message: parent?.description ? `invalid value: ${parent.description}` : `must match ${pattern}` };
    }
    case 'minLength':
      return { path, message: params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters` };
    case 'maxLength':
      return { path, message: `must be at most ${String(params.limit)} characters` };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { path, message: `must be ${String(params.comparison)} ${String(params.limit)}` };
    case 'minItems':
      return { path, message: params.limit === 1 ? 'must not be an empty list' : `must have at least ${String(params.limit)} items` };
    case 'maxItems':
      return { path, message: `must have at most ${String(params.limit)} items` };
    case 'discriminator':
      // Reported by `required` / `enum` on the same object (the schema declares both).
      return undefined;
    case 'anyOf':
    case 'oneOf': {
      if (parent?.['x-duration']) return { path, message: DURATION_MESSAGE };
      if (parent?.['x-secret']) return { path, message: 'must be a string or { file: PATH }' };
      const branches = (err.schema as JsonSchema[] | undefined) ?? [];
      return { path, message: `must be ${branches.map(describeBranch).join(' or ')}` };
    }
    default:
      return { path, message: err.message ?? `invalid (${err.keyword})` };
  }
}

/**
 * Ajv reports every branch of a failed union. Keep only the branch whose shape fits the value
 * (its errors are the specific ones); when none or several fit, keep one summary for the union.
 */
function pruneUnionErrors(errors: ErrorObject[]): ErrorObject[] {
  const unions = errors
    .filter((e) => (e.keyword === 'anyOf' || e.keyword === 'oneOf') && Array.isArray(e.schema))
    .sort((a, b) => a.schemaPath.length - b.schemaPath.length);
  const dropped = new Set<ErrorObject>();
  for (const union of unions) {
    if (dropped.has(union)) continue;
    const prefix = `${union.schemaPath}/`;
    const branchErrors = errors.filter((e) => e !== union && !dropped.has(e) && e.schemaPath.startsWith(prefix));
    const branches = union.schema as JsonSchema[];
    const fitting = branches.map((b, i) => (branchFits(b, union.data) ? i : -1)).filter((i) => i >= 0);
    const isDuration = (union.parentSchema as JsonSchema | undefined)?.['x-duration'] === true;
    if (fitting.length === 1 && !isDuration) {
      const keep = `${prefix}${fitting[0]}/`;
      for (const e of branchErrors) if (!e.schemaPath.startsWith(keep)) dropped.add(e);
      dropped.add(union);
    } else {
      for (const e of branchErrors) dropped.add(e);
    }
  }
  return errors.filter((e) => !dropped.has(e));
}

export function translateErrors(errors: ErrorObject[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const err of pruneUnionErrors(errors)) {
    const issue = messageFor(err);
    if (!issue) continue;
    const key = `${issue.path.join('\u0000')}\u0001${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}
