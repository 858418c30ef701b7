// Waiting customers hear their place when queued, at every reminder, and in between when it moves up a lot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { queueKind, type QueueContext } from './queue.ts';
import { Sim } from '../tests/support/sim.ts';

test('a customer is told again between reminders only when their place moved up by a third and 3 places', () => {
  const sim = new Sim({ queue: queueKind });
  const positions = () => {
    const out = sim.log.filter((m) => m.event.type === 'queue.position').map((m) => `${m.to.split('/')[1]}@${(m.event as unknown as { position: number }).position}`);
    sim.log.length = 0;
    return out;
  };
  sim.send('queue/n', { type: 'configure', config: { reminderSec: 600 } });
  for (let i = 0; i < 12; i++) sim.send('queue/n', { type: 'task.add', task: { id: `t${i}`, channel: 'webchat', enqueuedAt: sim.now + i } });
  assert.deepEqual(positions(), Array.from({ length: 12 }, (_, i) => `t${i}@${i + 1}`), 'each is told its place when queued');
  // The first four leave (answered elsewhere).
  for (let i = 0; i < 4; i++) sim.send('queue/n', { type: 'task.cancel', taskId: `t${i}` });
  sim.advance(5_000);
  // t4 was 5th, now 1st (up 4 ≥ max(3, 2)) … t11 was 12th, now 8th (up 4 ≥ max(3, 4)).
  assert.deepEqual(positions(), ['t4@1', 't5@2', 't6@3', 't7@4', 't8@5', 't9@6', 't10@7', 't11@8']);
  sim.advance(5_000);
  assert.deepEqual(positions(), [], 'nothing moved since: nobody is told again');
  assert.equal((sim.state('queue/n').context as QueueContext).tasks.find((t) => t.id === 't11')?.told, 8);
  // At the reminder, everyone hears their place.
  sim.advance(600_000);
  assert.equal(new Set(positions()).size, 8);
});

test('staffing: agents on duty for voice are the available (busy ones too) and those in wrap-up; away, offline and chat-only are not', () => {
  const sim = new Sim({ queue: queueKind });
  const worker = (id: string, presence: 'available' | 'busy' | 'wrapup' | 'away' | 'offline', voice = 1) => ({
    id,
    available: presence === 'available' || presence === 'busy',
    presence,
    skills: {},
    capacity: { voice, chat: 3, email: 5 },
    load: { voice: presence === 'busy' ? voice : 0, chat: 0, email: 0 },
    idleSince: 0,
  });
  const ask = () => {
    sim.replies.length = 0;
    sim.send('queue/s', { type: 'staffing', channel: 'voice' });
    return sim.replies.at(-1);
  };
  assert.deepEqual(ask(), { queue: 's', work: 'voice', onDuty: 0, free: 0 }, 'a queue nobody joined');
  sim.send('queue/s', { type: 'worker.update', worker: worker('away', 'away') });
  sim.send('queue/s', { type: 'worker.update', worker: worker('gone', 'offline') });
  sim.send('queue/s', { type: 'worker.update', worker: worker('chat', 'available', 0) });
  assert.deepEqual(ask(), { queue: 's', work: 'voice', onDuty: 0, free: 0 });
  sim.send('queue/s', { type: 'worker.update', worker: worker('wrap', 'wrapup') });
  sim.send('queue/s', { type: 'worker.update', worker: worker('busy', 'busy') });
  assert.deepEqual(ask(), { queue: 's', work: 'voice', onDuty: 2, free: 0 });
  sim.send('queue/s', { type: 'worker.update', worker: worker('free', 'available') });
  assert.deepEqual(ask(), { queue: 's', work: 'voice', onDuty: 3, free: 1 });
});
