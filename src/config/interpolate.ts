// `${VAR}` substitution in every string value of the config (SPEC 3). An unset variable is an
// error at its position; `${VAR:-fallback}` gives a fallback; `$${` is a literal `${`.
import { isScalar } from 'yaml';
import type { ConfigIssue, ConfigPath, ConfigSource } from './source.js';

const REFERENCE = /\$\$\{|\$\{([^}]*)\}/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface InterpolationResult {
  data: unknown;
  /**
   * Scalars that were exactly one `${VAR}` (candidates for number/boolean), by JSON pointer;
   * the value says whether the scalar was plain (unquoted).
   */
  wholeReferences: Map<string, boolean>;
  issues: ConfigIssue[];
}

export const pointer = (path: ConfigPath): string => path.map((s) => `/${String(s).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');

/**
 * Returns a substituted copy of `data` (a copy, so YAML aliases shared between places are each
 * substituted once). Never puts a variable's value into an issue message.
 */
export function interpolate(data: unknown, env: NodeJS.ProcessEnv, source: ConfigSource): InterpolationResult {
  const issues: ConfigIssue[] = [];
  const wholeReferences = new Map<string, boolean>();

  const substitute = (text: string, path: ConfigPath): string => {
    if (!text.includes('${')) return text;
    return text.replace(REFERENCE, (match: string, body: string | undefined, index: number) => {
      if (body === undefined) return '${';
      const sep = body.indexOf(':-');
      const name = sep >= 0 ? body.slice(0, sep) : body;
      if (!NAME.test(name)) {
        issues.push({ path, message: `invalid variable reference '\${${name}}'`, offset: referenceOffset(source, path, text, index) });
        return match;
      }
      const value = env[name];
      if (value !== undefined && (sep < 0 || value !== '')) return value;
      if (sep >= 0) return body.slice(sep + 2);
      issues.push({ path, message: `environment variable ${name} is not set`, offset: referenceOffset(source, path, text, index) });
      return '';
    });
  };

  const walk = (value: unknown, path: (string | number)[]): unknown => {
    if (typeof value === 'string') {
      const out = substitute(value, path);
      if (out !== value && /^\$\{[^}]*\}$/.test(value)) {
        const node = source.nodeAt(path);
        wholeReferences.set(pointer(path), isScalar(node) && node.type === 'PLAIN');
      }
      return out;
    }
    if (Array.isArray(value)) return value.map((item, i) => walk(item, [...path, i]));
    if (value !== null && typeof value === 'object') {
      const copy: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) copy[key] = walk(item, [...path, key]);
      return copy;
    }
    return value;
  };

  return { data: walk(data, []), wholeReferences, issues };
}

/** The offset of the `${` itself when the scalar's source text is the value verbatim; else the scalar's start. */
function referenceOffset(source: ConfigSource, path: ConfigPath, value: string, index: number): number | undefined {
  const node = source.nodeAt(path);
  if (!isScalar(node) || !node.range) return undefined;
  const raw = source.text.slice(node.range[0], node.range[1]);
  if (node.type === 'PLAIN' && raw === value) return node.range[0] + index;
  if ((node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') && raw.slice(1, -1) === value) return node.range[0] + 1 + index;
  return node.range[0];
}
