// The parsed YAML text of a config file, kept so that every problem found later (schema,
// secrets, semantic checks) can be reported as FILE:LINE:COL against the original source.
import { LineCounter, parseDocument, isAlias, isMap, isPair, isScalar, isSeq, type Document, type Node as YamlNode, type Pair } from 'yaml';

/** A location inside the config data: object keys and array indexes, outermost first. */
export type ConfigPath = readonly (string | number)[];

/** One problem with a config file, before it is given a line and column. */
export interface ConfigIssue {
  /** What the message is about; printed dotted (`routes.0.upstream`). */
  path: ConfigPath;
  message: string;
  /** Where to point, when it is not `path` itself (e.g. the parent of a missing key). */
  at?: ConfigPath;
  /** Point at the key of the last segment instead of its value (unknown keys). */
  atKey?: boolean;
  /** Exact source offset, when known (YAML syntax errors, a `${VAR}` inside a string). */
  offset?: number;
}

export interface SourcePosition {
  line: number;
  col: number;
}

export const formatPath = (path: ConfigPath): string => (path.length === 0 ? '(root)' : path.join('.'));

export class ConfigSource {
  readonly lineCounter = new LineCounter();
  readonly doc: Document.Parsed;

  constructor(
    readonly file: string,
    readonly text: string,
  ) {
    // prettyErrors off: messages stay one line; positions come from the LineCounter.
    this.doc = parseDocument(text, { lineCounter: this.lineCounter, uniqueKeys: true, prettyErrors: false });
  }

  /**
   * Duplicate keys, and the first real syntax error: the parser's later errors are mostly
   * consequences of the first one and would bury it.
   */
  syntaxIssues(): ConfigIssue[] {
    const firstFatal = this.doc.errors.find((e) => e.code !== 'DUPLICATE_KEY');
    return this.doc.errors
      .filter((e) => e.code === 'DUPLICATE_KEY' || e === firstFatal)
      .map((err) => {
        const offset = err.pos[0];
        let message = err.code === 'DUPLICATE_KEY' ? 'duplicate key' : `YAML syntax error: ${err.message.replace(/\s+/g, ' ').trim()}`;
        const { line } = this.position(offset);
        if (err.code !== 'DUPLICATE_KEY' && (this.text.split('\n')[line - 1] ?? '').includes('${')) {
          message += ' (inside { } or [ ], quote values that contain ${...})';
        }
        return { path: this.pathAt(offset) ?? [], message, offset };
      });
  }

  /** True when the only YAML errors are duplicate keys, so the data is still meaningful. */
  get hasFatalSyntaxErrors(): boolean {
    return this.doc.errors.some((e) => e.code !== 'DUPLICATE_KEY');
  }

  toData(): unknown {
    return this.doc.toJS({ maxAliasCount: 100 });
  }

  /** The YAML node at `path`, if the source has exactly that path. */
  nodeAt(path: ConfigPath): YamlNode | undefined {
    const found = this.descend(path);
    return found.depth === path.length ? found.node : undefined;
  }

  /** Source offset for an issue: the deepest node along its path that exists in the source. */
  offsetOf(issue: ConfigIssue): number {
    if (issue.offset !== undefined) return issue.offset;
    const path = issue.at ?? issue.path;
    const found = this.descend(path);
    if (issue.atKey && !issue.at && found.depth === path.length && found.pair && isScalar(found.pair.key) && found.pair.key.range) {
      return found.pair.key.range[0];
    }
    if (found.node?.range) return found.node.range[0];
    if (found.pair && isScalar(found.pair.key) && found.pair.key.range) return found.pair.key.range[0];
    return 0;
  }

  position(offset: number): SourcePosition {
    const { line, col } = this.lineCounter.linePos(offset);
    return { line, col };
  }

  /** `FILE:LINE:COL: path: message`, plus the offset for sorting. */
  format(issue: ConfigIssue): { offset: number; text: string } {
    const offset = this.offsetOf(issue);
    const { line, col } = this.position(offset);
    return { offset, text: `${this.file}:${line}:${col}: ${formatPath(issue.path)}: ${issue.message}` };
  }

  private descend(path: ConfigPath): { node: YamlNode | undefined; pair: Pair | undefined; depth: number } {
    let node = this.resolve(this.doc.contents ?? undefined);
    let pair: Pair | undefined;
    let depth = 0;
    for (const seg of path) {
      if (!node) break;
      let next: YamlNode | undefined;
      let nextPair: Pair | undefined;
      if (isMap(node)) {
        nextPair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!nextPair) break;
        next = this.resolve(nextPair.value as YamlNode | null);
      } else if (isSeq(node)) {
        const index = typeof seg === 'number' ? seg : /^[0-9]+$/.test(seg) ? Number(seg) : -1;
        const item = node.items[index];
        if (index < 0 || item === undefined) break;
        next = this.resolve(item as YamlNode | null);
      } else {
        break;
      }
      node = next;
      pair = nextPair;
      depth++;
    }
    return { node, pair, depth };
  }

  private resolve(node: YamlNode | null | undefined): YamlNode | undefined {
    if (!node) return undefined;
    if (isAlias(node)) return (node.resolve(this.doc) as YamlNode | undefined) ?? node;
    if (isPair(node)) return undefined;
    return node;
  }

  /** The path of the deepest key or value containing `offset` (for YAML errors). */
  private pathAt(offset: number): ConfigPath | undefined {
    const path: (string | number)[] = [];
    let node = this.resolve(this.doc.contents ?? undefined);
    const contains = (n: { range?: [number, number, number] | null } | null | undefined): boolean =>
      !!n?.range && offset >= n.range[0] && offset <= n.range[2];
    while (node) {
      let next: YamlNode | undefined;
      if (isMap(node)) {
        for (const p of node.items) {
          const key = p.key as YamlNode | null;
          if (isScalar(key) && contains(key)) return [...path, String(key.value)];
          const value = p.value as YamlNode | null;
          if (isScalar(key) && value && !isAlias(value) && contains(value)) {
            path.push(String(key.value));
            next = value;
            break;
          }
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => {
          const n = item as YamlNode | null;
          if (!next && n && !isAlias(n) && contains(n)) {
            path.push(i);
            next = n;
          }
        });
      }
      if (!next) break;
      node = next;
    }
    return path;
  }
}
