// Child processes of the benchmark: spawned pinned to a core (taskset, when present), ready when
// they say so over IPC, measured through /proc (CPU time, RSS) and stopped by their own pid.
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';

/** Clock ticks per second for /proc/<pid>/stat (USER_HZ; 100 on Linux unless told otherwise). */
const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number.parseInt(r.stdout ?? '', 10);
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

export const HAS_TASKSET = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
export const HAS_PROC = existsSync('/proc/self/stat');
export const CORES = cpus().length;

/** Core for the process under test, and core for the load generator and upstream. */
export const CORE_GATEWAY = 0;
export const CORE_LOAD = CORES > 1 ? 1 : 0;

/** Pins this process (all its threads) to a core; false when not possible. */
export function pinSelf(core: number): boolean {
  if (!HAS_TASKSET) return false;
  return spawnSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)], { stdio: 'ignore' }).status === 0;
}

/** A command line, wrapped in `taskset -c core` when taskset is available. */
export function pinned(core: number | undefined, cmd: string, args: string[]): [string, string[]] {
  if (core === undefined || !HAS_TASKSET) return [cmd, args];
  // taskset execs the command, so the child's pid is the command's own pid.
  return ['taskset', ['-c', String(core), cmd, ...args]];
}

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  /** The message the child sent when it was ready (url and so on). */
  readonly ready: Record<string, unknown>;
  send(msg: Record<string, unknown>): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  name: string;
  core?: number | undefined;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeFlags?: string[];
  env?: NodeJS.ProcessEnv;
  /** Where the child's stdout goes; logs are not part of what is measured unless asked. */
  stdout?: 'ignore' | 'inherit';
  readyTimeoutMs?: number;
}

/**
 * Runs a module in a child with an IPC channel (a .ts file under tsx, a .js file as is);
 * resolves when it reports ready.
 */
export async function spawnNode(script: string, args: string[], opts: SpawnOptions): Promise<Child> {
  const nodeArgs = [...(opts.nodeFlags ?? []), ...(script.endsWith('.ts') ? ['--import', 'tsx'] : []), script, ...args];
  const [cmd, argv] = pinned(opts.core, process.execPath, nodeArgs);
  const stdio: StdioOptions = ['ignore', opts.stdout ?? 'ignore', 'inherit', 'ipc'];
  const proc = spawn(cmd, argv, { stdio, env: { ...process.env, ...opts.env } });
  let seq = 0;
  const pending = new Map<number, (m: Record<string, unknown>) => void>();
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${opts.name}: not ready in time`)), opts.readyTimeoutMs ?? 60_000);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${opts.name}: exited before ready (code ${String(code)}, signal ${String(signal)})`));
    });
    proc.on('message', (m: Record<string, unknown>) => {
      if (m.ready === true) {
        clearTimeout(timer);
        resolve(m);
      } else if (typeof m.reply === 'number') {
        pending.get(m.reply)?.(m);
        pending.delete(m.reply);
      }
    });
  });
  proc.removeAllListeners('exit');
  const exited = new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once('exit', () => resolve());
  });
  return {
    name: opts.name,
    proc,
    pid: proc.pid as number,
    ready,
    send(msg) {
      const id = ++seq;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => { pending.delete(id); reject(new Error(`${opts.name}: no reply to ${JSON.stringify(msg)}`)); }, 120_000);
        pending.set(id, (m) => { clearTimeout(timer); resolve(m); });
        proc.send({ ...msg, id });
      });
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      // A graceful stop lets --cpu-prof write its profile; SIGKILL only if it hangs.
      if (proc.connected) proc.send({ cmd: 'exit' });
      else proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Runs a non-node program (nginx, haproxy) pinned; resolves once `isReady` says so. */
export async function spawnProgram(
  name: string,
  cmd: string,
  args: string[],
  core: number | undefined,
  isReady: () => Promise<boolean>,
): Promise<{ name: string; pid: number; proc: ChildProcess; stop(): Promise<void> }> {
  const [c, a] = pinned(core, cmd, args);
  const proc = spawn(c, a, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited: ${stderr.trim()}`);
    if (await isReady().catch(() => false)) break;
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`${name}: not ready in time: ${stderr.trim()}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name,
    pid: proc.pid as number,
    proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const done = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await done;
      clearTimeout(t);
    },
  };
}

/** The pid and every descendant (cluster workers, nginx/haproxy workers). */
export function processTree(pid: number): number[] {
  const out = [pid];
  if (!HAS_PROC) return out;
  for (let i = 0; i < out.length; i++) {
    const p = out[i] as number;
    let tasks: string[];
    try { tasks = readdirSync(`/proc/${p}/task`); } catch { continue; }
    for (const tid of tasks) {
      try {
        for (const c of readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
      } catch { /* gone */ }
    }
  }
  return out;
}

/** User + system CPU time of a process (and its descendants) in microseconds, from /proc. */
export function cpuMicros(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // Fields after the command name (which may contain spaces) start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    } catch { /* exited */ }
  }
  return (ticks * 1e6) / CLK_TCK;
}

/** Resident set size in bytes (VmRSS), summed over the process tree. */
export function rssBytes(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch { /* exited */ }
  }
  return kb * 1024;
}

export function cpuModel(): string {
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) return m[1].trim();
  } catch { /* not Linux */ }
  return cpus()[0]?.model ?? 'unknown';
}
