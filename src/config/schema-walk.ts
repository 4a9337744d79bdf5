// Walks config data alongside its JSON schema, so annotations such as `x-secret` can be found
// where they apply. Unions are followed into every branch whose shape fits the value.
import type { ConfigPath } from './source.js';

export interface JsonSchema {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  required?: string[];
  description?: string;
  pattern?: string;
  [keyword: string]: unknown;
}

/** Return `{ replace }` to substitute the value at this place. */
export type SchemaVisitor = (schema: JsonSchema, value: unknown, path: ConfigPath) => { replace: unknown } | undefined;

export const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Whether a value has the JSON type a schema names (no `type`: anything). */
export function typeFits(schema: JsonSchema, value: unknown): boolean {
  switch (schema.type) {
    case undefined:
      return true;
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number';
    case 'integer':
      return Number.isInteger(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'null':
      return value === null;
    case 'array':
      return Array.isArray(value);
    case 'object':
      return isPlainObject(value);
    default:
      return false;
  }
}

/** Shape check for union branches: JSON type, and `const` properties (discriminators) when present. */
export function branchFits(branch: JsonSchema, value: unknown): boolean {
  if (branch.anyOf ?? branch.oneOf) {
    if (!typeFits(branch, value)) return false;
    return (branch.anyOf ?? branch.oneOf ?? []).some((b) => branchFits(b, value));
  }
  if (!typeFits(branch, value)) return false;
  if (branch.const !== undefined && branch.const !== value) return false;
  if (isPlainObject(value) && branch.properties) {
    for (const [key, sub] of Object.entries(branch.properties)) {
      if (sub.const !== undefined && value[key] !== sub.const) return false;
    }
  }
  return true;
}

/** Whether any branch of the schema accepts a value of this JSON type (ignoring other keywords). */
export function acceptsTypeOf(schema: JsonSchema, value: unknown): boolean {
  const branches = schema.anyOf ?? schema.oneOf;
  if (branches) return typeFits(schema, value) && branches.some((b) => acceptsTypeOf(b, value));
  return typeFits(schema, value);
}

function childSchema(schema: JsonSchema, key: string): JsonSchema | undefined {
  const direct = schema.properties?.[key];
  if (direct) return direct;
  for (const [pattern, sub] of Object.entries(schema.patternProperties ?? {})) {
    if (new RegExp(pattern, 'u').test(key)) return sub;
  }
  return typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;
}

/** Visits every (schema, value) pair; returns the value, replaced where the visitor asked. */
export function walkWithSchema(schema: JsonSchema, value: unknown, visit: SchemaVisitor, path: (string | number)[] = []): unknown {
  const replaced = visit(schema, value, path);
  let current = replaced ? replaced.replace : value;
  for (const branch of schema.anyOf ?? schema.oneOf ?? []) {
    if (branchFits(branch, current)) current = walkWithSchema(branch, current, visit, path);
  }
  if (Array.isArray(current) && schema.items) {
    const items = schema.items;
    current.forEach((item, i, arr) => {
      arr[i] = walkWithSchema(items, item, visit, [...path, i]);
    });
  } else if (isPlainObject(current) && (schema.properties ?? schema.patternProperties ?? schema.additionalProperties)) {
    for (const key of Object.keys(current)) {
      const sub = childSchema(schema, key);
      if (sub) current[key] = walkWithSchema(sub, current[key], visit, [...path, key]);
    }
  }
  return current;
}
