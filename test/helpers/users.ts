// In-memory stand-ins for unit tests that build a GatewayContext by hand: a user directory held
// in a Map (lookup by username, then email) and a lockout that never locks.
import type { Lockout, UserDirectory, UserRecord } from '../../src/context.js';

export class MapUserDirectory implements UserDirectory {
  readonly users = new Map<string, UserRecord>();

  protected set(record: UserRecord): UserRecord {
    this.users.set(record.username, record);
    return record;
  }

  async lookup(login: string): Promise<UserRecord | undefined> {
    return this.users.get(login) ?? [...this.users.values()].find((u) => u.email === login);
  }

  async get(username: string): Promise<UserRecord | undefined> {
    return this.users.get(username);
  }

  onChange(): () => void {
    return () => undefined;
  }

  async close(): Promise<void> {}
}

export const NO_LOCKOUT: Lockout = {
  reserve: async () => ({ granted: true, succeeded: async () => undefined, failed: async () => ({ locked: false }) }),
  check: async () => ({ locked: false }),
  recordFailure: async () => ({ locked: false }),
  recordSuccess: async () => undefined,
};
