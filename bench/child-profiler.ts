// CPU profiles of a chosen window (one scenario) in a benchmark child, through the inspector,
// so a profile holds only the load of that scenario (no start-up, no other scenarios).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

let session: Session | undefined;

export async function profileStart(): Promise<void> {
  if (session) throw new Error('a profile is already running');
  session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
}

export async function profileStop(file: string): Promise<void> {
  if (!session) throw new Error('no profile running');
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
  session = undefined;
}

/** Answers the harness's profile-start / profile-stop messages; true when the message was one. */
export function handleProfileMessage(m: { cmd?: string; id?: number; file?: string }): boolean {
  const reply = (body: Record<string, unknown> = {}): void => void process.send?.({ reply: m.id, ...body });
  if (m.cmd === 'profile-start') {
    void profileStart().then(() => reply(), (err: unknown) => reply({ error: String(err) }));
    return true;
  }
  if (m.cmd === 'profile-stop') {
    void profileStop(m.file ?? 'profile.cpuprofile').then(() => reply({ file: m.file }), (err: unknown) => reply({ error: String(err) }));
    return true;
  }
  return false;
}
