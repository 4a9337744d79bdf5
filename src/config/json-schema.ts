// The published JSON Schema (config/authgate.schema.json), rendered from the TypeBox schema.
// The loader validates against exactly this object, and editors use the file for YAML
// completion, so what an editor accepts and what the gateway accepts are the same.
import { ConfigSchema } from './schema.js';
import type { JsonSchema } from './schema-walk.js';

const DRAFT = 'http://json-schema.org/draft-07/schema#';

/** Keys a reader looks for first; every other key keeps the schema's own (source) order. */
const LEADING_KEYS = ['$schema', '$id', 'title', 'description', 'type', 'const', 'enum', 'default', 'pattern'];

/**
 * Key order for readers, and: a property with a `default` is not `required` — the loader fills
 * it in (ajv useDefaults) before checking, so the TS type may still say it is always present,
 * but a file that leaves it out is valid and an editor must not flag it.
 */
function publish(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(publish);
  if (value === null || typeof value !== 'object') return value;
  const source = value as Record<string, unknown>;
  const keys = [...LEADING_KEYS.filter((k) => k in source), ...Object.keys(source).filter((k) => !LEADING_KEYS.includes(k))];
  const out: Record<string, unknown> = {};
  for (const key of keys) out[key] = publish(source[key]);
  const properties = source.properties as Record<string, { default?: unknown }> | undefined;
  if (Array.isArray(out.required) && properties) {
    const required = (out.required as string[]).filter((name) => properties[name]?.default === undefined);
    if (required.length > 0) out.required = required;
    else delete out.required;
  }
  return out;
}

let published: JsonSchema | undefined;

/** The published schema as an object (plain JSON: TypeBox's symbol keys are gone). */
export function configJsonSchema(): JsonSchema {
  published ??= publish({ $schema: DRAFT, ...(JSON.parse(JSON.stringify(ConfigSchema)) as Record<string, unknown>) }) as JsonSchema;
  return published;
}

/** The schema file's content: pretty-printed, byte-for-byte stable for the same schema.ts. */
export function renderConfigJsonSchema(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
