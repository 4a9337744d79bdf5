// CPU profiles, or sampled allocation profiles, of a chosen window (one scenario) in a benchmark
// child, through the inspector, so a profile holds only the load of that scenario (no start-up,
// no other scenarios).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

let session: Session | undefined;
let running: 'cpu' | 'heap' = 'cpu';

/**
 * Allocation sampling counts objects the scavenger collects too: what a request allocates, not
 * only what survives (the flags exist in Node 20's V8; the inspector's types lag behind).
 */
const HEAP_SAMPLING = { samplingInterval: 256, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true };

export async function profileStart(kind: 'cpu' | 'heap' = 'cpu'): Promise<void> {
  if (session) throw new Error('a profile is already running');
  session = new Session();
  session.connect();
  running = kind;
  if (kind === 'heap') {
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', HEAP_SAMPLING);
    return;
  }
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
}

export async function profileStop(file: string): Promise<void> {
  if (!session) throw new Error('no profile running');
  const { profile } = running === 'heap' ? await session.post('HeapProfiler.stopSampling') : await session.post('Profiler.stop');
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
  session = undefined;
}

/** Answers the harness's profile-start / profile-stop messages; true when the message was one. */
export function handleProfileMessage(m: { cmd?: string; id?: number; file?: string; kind?: 'cpu' | 'heap' }): boolean {
  const reply = (body: Record<string, unknown> = {}): void => void process.send?.({ reply: m.id, ...body });
  if (m.cmd === 'profile-start') {
    void profileStart(m.kind).then(() => reply(), (err: unknown) => reply({ error: String(err) }));
    return true;
  }
  if (m.cmd === 'profile-stop') {
    void profileStop(m.file ?? 'profile.cpuprofile').then(() => reply({ file: m.file }), (err: unknown) => reply({ error: String(err) }));
    return true;
  }
  return false;
}
