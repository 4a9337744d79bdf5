// Relative paths in a config file are relative to the file's directory. For files that must
// already exist, a path not found there is also tried against the working directory, so both
// `./plugins/x` beside the config and the repo-root style of the SPEC's example work.
import { stat } from 'node:fs/promises';
import path from 'node:path';

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Candidate absolute paths, in lookup order (`cwdFallback: false`: beside the config only). */
export function candidatePaths(dir: string, file: string, cwdFallback = true): string[] {
  const candidates = cwdFallback ? [path.resolve(dir, file), path.resolve(file)] : [path.resolve(dir, file)];
  return [...new Set(candidates)];
}

/** The first existing regular file among the candidates (each also tried with `extensions`). */
export async function findExistingFile(dir: string, file: string, extensions: readonly string[] = [''], cwdFallback = true): Promise<string | undefined> {
  for (const base of candidatePaths(dir, file, cwdFallback)) {
    for (const ext of extensions) {
      if (await isFile(base + ext)) return base + ext;
    }
  }
  return undefined;
}

/** How a failed lookup is described: the paths that were tried. */
export const describeCandidates = (dir: string, file: string): string => candidatePaths(dir, file).join(' or ');
