import t from 'tap';
import { durationMs } from '../src/util/duration.js';

t.test('durations', async (t) => {
  t.equal(durationMs('30s'), 30_000);
  t.equal(durationMs('5m'), 300_000);
  t.equal(durationMs('12h'), 43_200_000);
  t.equal(durationMs('30d'), 2_592_000_000);
  t.equal(durationMs(90), 90_000);
  t.equal(durationMs('250ms'), 250);
  t.throws(() => durationMs('5 minutes' as never));
});
