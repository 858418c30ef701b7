// The customer machine driven purely (initialTransition / transition, no NATS): every event's effect in
// `active`, refusals in `merged`, preference learned from use, consent, and the event schema.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as v from 'valibot';
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import { CHANNELS } from './routing.ts';
import { Sim } from '../tests/support/sim.ts';
import {
  CustomerEventSchema,
  customerKind,
  customerMachine,
  hourOfDay,
  migrateCustomerV1,
  preferredChannel,
  type CustomerContext,
  type CustomerEvent,
  type CustomerEventType,
} from './customer.ts';

type Snap = SnapshotFrom<typeof customerMachine>;
const H = 3_600_000;
const DAY = 24 * H;
/** 2024-01-01T00:00:00Z plus `day` days and `hour` hours (UTC). */
const T = (day: number, hour: number, min = 0) => Date.UTC(2024, 0, 1) + day * DAY + hour * H + min * 60_000;

const start = (id = 'c1'): Snap => initialTransition(customerMachine, { id })[0];

/** Applies events in order; returns the last snapshot and the replies of the last event. */
function send(snap: Snap, ...events: CustomerEvent[]): { snap: Snap; replies: unknown[] } {
  let replies: unknown[] = [];
  for (const e of events) {
    const [next, actions] = transition(customerMachine, snap, e);
    snap = next;
    replies = repliesOf(actions);
  }
  return { snap, replies };
}
/** XState's action types omit 'xstate.emit', so read actions by their runtime shape, as actors/step.ts does. */
function repliesOf(actions: readonly { type: string; params?: unknown }[]): unknown[] {
  return actions.flatMap((a) => (a.type === 'xstate.emit' ? [emitted(a.params)] : [])).flatMap((ev) => (ev?.type === 'effect.reply' ? [ev.data] : []));
}
function emitted(params: unknown): { type: string; data?: unknown } | undefined {
  if (typeof params !== 'object' || params === null || !('event' in params)) return undefined;
  const ev: unknown = params.event;
  return typeof ev === 'object' && ev !== null && 'type' in ev && typeof ev.type === 'string' ? (ev as { type: string; data?: unknown }) : undefined;
}
/** The single reply an event produced. */
function ask(snap: Snap, event: CustomerEvent): unknown {
  const { replies } = send(snap, event);
  assert.equal(replies.length, 1, `one reply to ${event.type}`);
  return replies[0];
}
const ctx = (snap: Snap): CustomerContext => snap.context;

describe('customer machine', () => {
  test('starts active with an empty record for its id', () => {
    const [snap, actions] = initialTransition(customerMachine, { id: 'c42' });
    assert.equal(snap.value, 'active');
    assert.deepEqual(actions, []);
    assert.deepEqual(snap.context, {
      id: 'c42',
      profile: {},
      tier: 'normal',
      tags: [],
      identities: [],
      openConversations: [],
      channelStats: {},
      firstMessages: [],
      consent: {},
    });
    assert.equal(customerKind.name, 'customer');
    assert.equal(customerKind.machine.id, 'customer');
    assert.deepEqual(customerKind.input?.('c7'), { id: 'c7' });
  });

  test('profile.update merges fields and tier.set sets the tier', () => {
    let { snap } = send(start(), { type: 'profile.update', profile: { name: 'Li Wei', language: 'zh' } });
    ({ snap } = send(snap, { type: 'profile.update', profile: { email: 'li@example.com' } }));
    assert.deepEqual(ctx(snap).profile, { name: 'Li Wei', language: 'zh', email: 'li@example.com' });
    ({ snap } = send(snap, { type: 'tier.set', tier: 'vip' }));
    assert.equal(ctx(snap).tier, 'vip');
    ({ snap } = send(snap, { type: 'tier.set', tier: 'normal' }));
    assert.equal(ctx(snap).tier, 'normal');
  });

  test('tags: add and remove are idempotent', () => {
    let { snap } = send(start(), { type: 'tag.add', tag: 'churn-risk' }, { type: 'tag.add', tag: 'churn-risk' }, { type: 'tag.add', tag: 'b2b' });
    assert.deepEqual(ctx(snap).tags, ['churn-risk', 'b2b']);
    const before = ctx(snap);
    ({ snap } = send(snap, { type: 'tag.add', tag: 'b2b' }));
    assert.equal(ctx(snap), before, 'a repeated add leaves the context untouched');
    ({ snap } = send(snap, { type: 'tag.remove', tag: 'churn-risk' }, { type: 'tag.remove', tag: 'churn-risk' }, { type: 'tag.remove', tag: 'never-added' }));
    assert.deepEqual(ctx(snap).tags, ['b2b']);
  });

  test('identities: link dedupes on channel + handle, unlink removes only that one', () => {
    const { snap } = send(
      start(),
      { type: 'identity.link', channel: 'sms', handle: '+8613800000000' },
      { type: 'identity.link', channel: 'sms', handle: '+8613800000000' },
      { type: 'identity.link', channel: 'voice', handle: '+8613800000000' },
      { type: 'identity.link', channel: 'wechat', handle: 'wx_li' },
    );
    assert.deepEqual(ctx(snap).identities, [
      { channel: 'sms', handle: '+8613800000000' },
      { channel: 'voice', handle: '+8613800000000' },
      { channel: 'wechat', handle: 'wx_li' },
    ]);
    const after = send(snap, { type: 'identity.unlink', channel: 'voice', handle: '+8613800000000' }, { type: 'identity.unlink', channel: 'email', handle: 'x@y' }).snap;
    assert.deepEqual(ctx(after).identities, [
      { channel: 'sms', handle: '+8613800000000' },
      { channel: 'wechat', handle: 'wx_li' },
    ]);
  });

  test('conversations: opened once per id, closed removes it', () => {
    let { snap } = send(
      start(),
      { type: 'conversation.opened', conversationId: 'v1', channel: 'webchat', at: T(0, 9) },
      { type: 'conversation.opened', conversationId: 'v1', channel: 'webchat', at: T(0, 10) },
      { type: 'conversation.opened', conversationId: 'v2', channel: 'email', at: T(0, 11) },
    );
    assert.deepEqual(ctx(snap).openConversations, [
      { id: 'v1', channel: 'webchat', openedAt: T(0, 9) },
      { id: 'v2', channel: 'email', openedAt: T(0, 11) },
    ]);
    ({ snap } = send(snap, { type: 'conversation.closed', conversationId: 'v1' }, { type: 'conversation.closed', conversationId: 'nope' }));
    assert.deepEqual(ctx(snap).openConversations, [{ id: 'v2', channel: 'email', openedAt: T(0, 11) }]);
  });

  test('message.inbound and reply.received count uses per channel and UTC hour, lastAt is the latest', () => {
    const { snap } = send(
      start(),
      { type: 'message.inbound', channel: 'sms', at: T(0, 19, 30) },
      { type: 'reply.received', channel: 'sms', at: T(2, 20) },
      { type: 'reply.received', channel: 'sms', at: T(1, 19, 5) }, // arrives late: lastAt stays at day 2
    );
    const sms = ctx(snap).channelStats.sms;
    assert.ok(sms);
    assert.equal(sms.inbound, 1);
    assert.equal(sms.replies, 2);
    assert.equal(sms.lastAt, T(2, 20));
    assert.equal(sms.hours.length, 24);
    assert.equal(sms.hours[19], 2);
    assert.equal(sms.hours[20], 1);
    assert.equal(sms.hours.reduce((a, b) => a + b, 0), 3);
    assert.equal(ctx(snap).channelStats.email, undefined);
    assert.equal(hourOfDay(T(5, 23, 59)), 23);
  });

  describe('answers to outreach', () => {
    const stats = (snap: Snap) => Object.fromEntries(Object.entries(ctx(snap).channelStats).map(([ch, s]) => [ch, { inbound: s.inbound, replies: s.replies }]));

    test('the first message in a conversation we opened is an answer; later ones there are inbound', () => {
      let { snap } = send(start(), { type: 'conversation.opened', conversationId: 'o1', channel: 'sms', at: T(0, 9), outreach: true });
      assert.deepEqual(ctx(snap).openConversations, [{ id: 'o1', channel: 'sms', openedAt: T(0, 9), outreach: true }]);
      ({ snap } = send(snap, { type: 'message.inbound', channel: 'sms', at: T(0, 19), conversationId: 'o1' }));
      assert.deepEqual(stats(snap), { sms: { inbound: 0, replies: 1 } });
      assert.deepEqual(ctx(snap).openConversations, [{ id: 'o1', channel: 'sms', openedAt: T(0, 9) }], 'answered: no longer awaiting');
      assert.deepEqual(ctx(snap).firstMessages, [{ conversationId: 'o1', channel: 'sms', counted: 'replies' }]);
      ({ snap } = send(snap, { type: 'message.inbound', channel: 'sms', at: T(0, 19, 5), conversationId: 'o1' }, { type: 'message.inbound', channel: 'sms', at: T(0, 19, 6), conversationId: 'o1' }));
      assert.deepEqual(stats(snap), { sms: { inbound: 2, replies: 1 } });
      assert.equal(ctx(snap).channelStats.sms?.hours[19], 3, 'every message is one use at its hour');
    });

    test('an answer told before its conversation.opened (a campaign opened by the answer) is recounted once', () => {
      let { snap } = send(
        start(),
        { type: 'message.inbound', channel: 'email', at: T(1, 8), conversationId: 'cp1' },
        { type: 'message.inbound', channel: 'email', at: T(1, 8, 2), conversationId: 'cp1' },
      );
      assert.deepEqual(stats(snap), { email: { inbound: 2, replies: 0 } });
      ({ snap } = send(snap, { type: 'conversation.opened', conversationId: 'cp1', channel: 'email', at: T(1, 8), outreach: true }));
      assert.deepEqual(stats(snap), { email: { inbound: 1, replies: 1 } }, 'only the first message answered us');
      assert.equal(ctx(snap).channelStats.email?.hours[8], 2, 'the hours are unchanged');
      assert.equal(ctx(snap).channelStats.email?.lastAt, T(1, 8, 2));
      assert.deepEqual(ctx(snap).openConversations, [{ id: 'cp1', channel: 'email', openedAt: T(1, 8) }], 'already answered: not awaiting');
      // The same news again changes nothing.
      const again = send(snap, { type: 'conversation.opened', conversationId: 'cp1', channel: 'email', at: T(1, 8), outreach: true }).snap;
      assert.equal(again.context, snap.context);
      // Nor does a later message.
      ({ snap } = send(snap, { type: 'message.inbound', channel: 'email', at: T(1, 9), conversationId: 'cp1' }));
      assert.deepEqual(stats(snap), { email: { inbound: 2, replies: 1 } });
    });

    test('messages in a conversation they opened, or with no conversation named, are inbound', () => {
      const { snap } = send(
        start(),
        { type: 'message.inbound', channel: 'webchat', at: T(0, 14), conversationId: 'w1' },
        { type: 'conversation.opened', conversationId: 'w1', channel: 'webchat', at: T(0, 14) },
        { type: 'message.inbound', channel: 'webchat', at: T(0, 14, 1), conversationId: 'w1' },
        { type: 'message.inbound', channel: 'voice', at: T(0, 15) },
      );
      assert.deepEqual(stats(snap), { webchat: { inbound: 2, replies: 0 }, voice: { inbound: 1, replies: 0 } });
      assert.deepEqual(ctx(snap).openConversations, [{ id: 'w1', channel: 'webchat', openedAt: T(0, 14) }]);
      assert.deepEqual(ctx(snap).firstMessages, [{ conversationId: 'w1', channel: 'webchat', counted: 'inbound' }]);
    });

    test('an outreach never answered, closed and then answered (a reopen) counts the answer; one answered before does not', () => {
      let { snap } = send(
        start(),
        { type: 'conversation.opened', conversationId: 'o1', channel: 'sms', at: T(0, 9), outreach: true },
        { type: 'conversation.closed', conversationId: 'o1' },
        // Their answer reopens it; the conversation says `outreach` since it is their first message there.
        { type: 'message.inbound', channel: 'sms', at: T(0, 20), conversationId: 'o1' },
        { type: 'conversation.opened', conversationId: 'o1', channel: 'sms', at: T(0, 20), outreach: true },
      );
      assert.deepEqual(stats(snap), { sms: { inbound: 0, replies: 1 } });
      ({ snap } = send(
        snap,
        { type: 'conversation.closed', conversationId: 'o1' },
        { type: 'message.inbound', channel: 'sms', at: T(0, 21), conversationId: 'o1' },
        { type: 'conversation.opened', conversationId: 'o1', channel: 'sms', at: T(0, 21) },
      ));
      assert.deepEqual(stats(snap), { sms: { inbound: 1, replies: 1 } });
    });

    test('an answer shifts the preference: ties go to the channel they answer us on', () => {
      const { snap } = send(
        start(),
        { type: 'message.inbound', channel: 'email', at: T(0, 10), conversationId: 'e1' },
        { type: 'conversation.opened', conversationId: 'e1', channel: 'email', at: T(0, 10) },
        { type: 'conversation.opened', conversationId: 'o1', channel: 'sms', at: T(1, 9), outreach: true },
        { type: 'message.inbound', channel: 'sms', at: T(1, 10), conversationId: 'o1' },
      );
      assert.deepEqual(ask(snap, { type: 'preference.query', at: T(2, 10) }), { channel: 'sms', reason: 'most used around 10:00 UTC (1 within ±2h)' });
    });

    test('the latest 50 conversations are remembered', () => {
      const events: CustomerEvent[] = Array.from({ length: 52 }, (_, i) => ({ type: 'message.inbound', channel: 'app', at: T(0, 1, i), conversationId: `a${i}` }));
      const { snap } = send(start(), ...events);
      assert.equal(ctx(snap).firstMessages.length, 50);
      assert.equal(ctx(snap).firstMessages[0].conversationId, 'a2');
      assert.equal(ctx(snap).channelStats.app?.inbound, 52);
    });

    test('a version-1 snapshot migrates: its counts stay, answers are learned from then on', () => {
      assert.equal(customerKind.version, 2);
      assert.equal(customerKind.migrations?.[1], migrateCustomerV1);
      const { firstMessages: _, ...v1context } = ctx(send(start(), { type: 'message.inbound', channel: 'sms', at: T(0, 9) }).snap);
      const v1 = JSON.parse(JSON.stringify({ status: 'active', value: 'active', context: v1context, historyValue: {}, children: {} })) as unknown;
      const migrated = migrateCustomerV1(v1) as { value: string; context: CustomerContext };
      assert.deepEqual(migrated.context.firstMessages, []);
      let snap = customerMachine.resolveState({ value: migrated.value, context: migrated.context });
      ({ snap } = send(snap, { type: 'conversation.opened', conversationId: 'o1', channel: 'sms', at: T(1, 9), outreach: true }, { type: 'message.inbound', channel: 'sms', at: T(1, 10), conversationId: 'o1' }));
      assert.deepEqual(stats(snap), { sms: { inbound: 1, replies: 1 } });
      assert.throws(() => migrateCustomerV1({ value: 'active' }), /no context/);
    });
  });

  test('consent: opt-in and opt-out are recorded; contact.check answers with a reason', () => {
    let { snap } = send(start(), { type: 'identity.link', channel: 'sms', handle: '+86138' });
    let answer = ask(snap, { type: 'contact.check', channel: 'sms' });
    assert.deepEqual(answer, { allowed: true, reason: 'no opt-out recorded on sms' });

    ({ snap } = send(snap, { type: 'consent.opt_in', channel: 'sms', at: T(0, 8), source: 'web form' }));
    assert.deepEqual(ctx(snap).consent.sms, { optedIn: true, at: T(0, 8), source: 'web form' });
    answer = ask(snap, { type: 'contact.check', channel: 'sms' });
    assert.deepEqual(answer, { allowed: true, reason: 'opted in on sms at 2024-01-01T08:00:00.000Z via web form' });

    ({ snap } = send(snap, { type: 'consent.opt_out', channel: 'sms', at: T(3, 12), source: 'STOP keyword' }));
    assert.deepEqual(ctx(snap).consent.sms, { optedIn: false, at: T(3, 12), source: 'STOP keyword' });
    answer = ask(snap, { type: 'contact.check', channel: 'sms' });
    assert.deepEqual(answer, { allowed: false, reason: 'opted out on sms at 2024-01-04T12:00:00.000Z via STOP keyword' });
    // Per channel: other channels are unaffected.
    assert.deepEqual(ask(snap, { type: 'contact.check', channel: 'email' }), { allowed: true, reason: 'no opt-out recorded on email' });
  });

  describe('channel preference', () => {
    // Answers sms in the evening (~19-20 UTC), email in the morning (~8-9 UTC); email is used more overall.
    const learned = (): Snap =>
      send(
        start(),
        { type: 'identity.link', channel: 'sms', handle: '+86138' },
        { type: 'identity.link', channel: 'email', handle: 'li@example.com' },
        { type: 'reply.received', channel: 'sms', at: T(0, 19) },
        { type: 'reply.received', channel: 'sms', at: T(1, 20) },
        { type: 'message.inbound', channel: 'sms', at: T(2, 19, 40) },
        { type: 'message.inbound', channel: 'email', at: T(0, 8) },
        { type: 'reply.received', channel: 'email', at: T(1, 9) },
        { type: 'reply.received', channel: 'email', at: T(2, 8, 30) },
        { type: 'message.inbound', channel: 'email', at: T(3, 9) },
      ).snap;

    test('is learned from when they answer on which channel', () => {
      const snap = learned();
      assert.deepEqual(ask(snap, { type: 'preference.query', at: T(10, 19, 30) }), { channel: 'sms', reason: 'most used around 19:00 UTC (3 within ±2h)' });
      assert.deepEqual(ask(snap, { type: 'preference.query', at: T(10, 8, 15) }), { channel: 'email', reason: 'most used around 08:00 UTC (4 within ±2h)' });
      // Nothing near 03:00: fall back to the most used overall.
      assert.deepEqual(ask(snap, { type: 'preference.query', at: T(10, 3) }), { channel: 'email', reason: 'no use around 03:00 UTC; most used overall (4)' });
    });

    test('the window wraps round midnight', () => {
      const { snap } = send(start(), { type: 'message.inbound', channel: 'wechat', at: T(0, 23) }, { type: 'message.inbound', channel: 'app', at: T(0, 12) });
      assert.equal(preferredChannel(ctx(snap), T(1, 1)).channel, 'wechat');
    });

    test('an opted-out channel is never preferred', () => {
      const { snap } = send(learned(), { type: 'consent.opt_out', channel: 'sms', at: T(4, 0), source: 'STOP keyword' });
      assert.deepEqual(ask(snap, { type: 'preference.query', at: T(10, 19, 30) }), {
        channel: 'email',
        reason: 'no use around 19:00 UTC; most used overall (4); opted out: sms',
      });
      assert.deepEqual(ask(snap, { type: 'contact.check', channel: 'sms' }), {
        allowed: false,
        reason: 'opted out on sms at 2024-01-05T00:00:00.000Z via STOP keyword',
      });
      // Opting back in makes it preferred again in the evening.
      const back = send(snap, { type: 'consent.opt_in', channel: 'sms', at: T(5, 0), source: 'agent' }).snap;
      assert.equal(preferredChannel(ctx(back), T(10, 19, 30)).channel, 'sms');
    });

    test('with nothing learned: first linked identity, or none', () => {
      assert.deepEqual(preferredChannel(ctx(start()), T(0, 12)), { channel: null, reason: 'no known channel' });
      let { snap } = send(start(), { type: 'identity.link', channel: 'wecom', handle: 'li' }, { type: 'identity.link', channel: 'email', handle: 'li@x' });
      assert.deepEqual(preferredChannel(ctx(snap), T(0, 12)), { channel: 'email', reason: 'no use around 12:00 UTC; no use yet; first reachable linked identity' });
      assert.deepEqual(preferredChannel(ctx(snap)), { channel: 'email', reason: 'no use yet; first reachable linked identity' });
      ({ snap } = send(
        snap,
        { type: 'consent.opt_out', channel: 'email', at: T(0, 1), source: 'unsubscribe link' },
        { type: 'consent.opt_out', channel: 'wecom', at: T(0, 1), source: 'agent' },
      ));
      assert.deepEqual(preferredChannel(ctx(snap), T(0, 12)), { channel: null, reason: 'every known channel is opted out; opted out: email, wecom' });
    });

    test('ties go to answers to outreach, then to the most recent use', () => {
      let { snap } = send(start(), { type: 'message.inbound', channel: 'app', at: T(0, 10) }, { type: 'reply.received', channel: 'sms', at: T(0, 10) });
      assert.equal(preferredChannel(ctx(snap), T(1, 10)).channel, 'sms');
      ({ snap } = send(start(), { type: 'message.inbound', channel: 'sms', at: T(0, 10) }, { type: 'message.inbound', channel: 'app', at: T(1, 10) }));
      assert.equal(preferredChannel(ctx(snap), T(2, 10)).channel, 'app');
    });
  });

  test('get replies with the context and the preferred channel', () => {
    const { snap } = send(start(), { type: 'tag.add', tag: 'vip-candidate' }, { type: 'message.inbound', channel: 'webchat', at: T(0, 14) });
    assert.deepEqual(ask(snap, { type: 'get', at: T(1, 14) }), {
      ...ctx(snap),
      preferredChannel: { channel: 'webchat', reason: 'most used around 14:00 UTC (1 within ±2h)' },
    });
    assert.deepEqual(ask(snap, { type: 'get' }), { ...ctx(snap), preferredChannel: { channel: 'webchat', reason: 'most used overall (1)' } });
  });

  test('change events reply nothing; queries change nothing', () => {
    const snap = start();
    assert.deepEqual(send(snap, { type: 'tag.add', tag: 'x' }).replies, []);
    for (const q of [{ type: 'get' }, { type: 'preference.query', at: T(0, 1) }, { type: 'contact.check', channel: 'sms' }] as const) {
      const next = send(snap, q).snap;
      assert.equal(next.context, snap.context, q.type);
      assert.equal(next.value, 'active');
    }
  });

  describe('merge', () => {
    const merged = (): Snap =>
      send(start('c1'), { type: 'tag.add', tag: 'dup' }, { type: 'identity.link', channel: 'sms', handle: '+86138' }, { type: 'merge.into', into: 'c9', at: T(6, 12) }).snap;

    test('merge.into moves to merged, records the survivor and acknowledges', () => {
      const before = send(start('c1'), { type: 'tag.add', tag: 'dup' }).snap;
      const { snap, replies } = send(before, { type: 'merge.into', into: 'c9', at: T(6, 12) });
      assert.equal(snap.value, 'merged');
      assert.equal(snap.status, 'active', 'not final: it still answers');
      assert.equal(ctx(snap).mergedInto, 'c9');
      assert.equal(ctx(snap).mergedAt, T(6, 12));
      assert.deepEqual(ctx(snap).tags, ['dup']);
      assert.deepEqual(replies, [{ ok: true, mergedInto: 'c9' }]);
    });

    test('the survivor takes what the absorbed customer knew: identities, tags, VIP, channel use, and the later consent (a tie keeps the opt-out)', () => {
      const sim = new Sim({ customer: customerKind });
      const to = (id: string, ...events: (Record<string, unknown> & { type: string })[]) => events.forEach((e) => sim.send(`customer/${id}`, e));
      to('c1',
        { type: 'identity.link', channel: 'sms', handle: '+86138' },
        { type: 'tag.add', tag: 'dup' },
        { type: 'tier.set', tier: 'vip' },
        { type: 'message.inbound', channel: 'sms', at: T(1, 9) },
        { type: 'consent.opt_out', channel: 'sms', at: T(1, 10), source: 'sms keyword "STOP"' },
        { type: 'consent.opt_in', channel: 'email', at: T(1, 8), source: 'web form' },
        { type: 'consent.opt_in', channel: 'wecom', at: T(1, 8), source: 'form' },
      );
      to('c9',
        { type: 'identity.link', channel: 'email', handle: 'li@example.test' },
        { type: 'tag.add', tag: 'b2b' },
        { type: 'message.inbound', channel: 'sms', at: T(2, 9) },
        { type: 'consent.opt_in', channel: 'sms', at: T(1, 9), source: 'web form' },
        { type: 'consent.opt_out', channel: 'email', at: T(1, 11), source: 'unsubscribe link' },
        { type: 'consent.opt_out', channel: 'wecom', at: T(1, 8), source: 'agent' },
      );
      to('c1', { type: 'merge.into', into: 'c9', at: T(3, 0) });
      const c9 = sim.state('customer/c9').context as CustomerContext;
      assert.deepEqual(c9.identities, [{ channel: 'email', handle: 'li@example.test' }, { channel: 'sms', handle: '+86138' }]);
      assert.deepEqual(c9.tags, ['b2b', 'dup']);
      assert.equal(c9.tier, 'vip');
      assert.deepEqual(c9.consent.sms, { optedIn: false, at: T(1, 10), source: 'sms keyword "STOP" (merged from c1)' }, "c1's later STOP wins over c9's opt-in");
      assert.deepEqual(c9.consent.email, { optedIn: false, at: T(1, 11), source: 'unsubscribe link' }, "c9's later opt-out stays");
      assert.equal(c9.consent.wecom?.optedIn, false, 'at the same moment, the opt-out wins');
      assert.equal(c9.channelStats.sms?.inbound, 2);
      assert.equal(c9.channelStats.sms?.hours[9], 2);
      assert.equal(c9.channelStats.sms?.lastAt, T(2, 9));
      assert.equal((ask(sim.state('customer/c9') as Snap, { type: 'contact.check', channel: 'sms' }) as { allowed: boolean }).allowed, false, 'never texted because of the merge');
      assert.equal(sim.state('customer/c1').value, 'merged');
    });

    test('a survivor made a VIP by the merge tells its open conversations, as tier.set does', () => {
      const sim = new Sim({ customer: customerKind });
      sim.send('customer/c9', { type: 'conversation.opened', conversationId: 'v7', channel: 'sms', at: T(1, 0) });
      sim.send('customer/c1', { type: 'tier.set', tier: 'vip' });
      sim.send('customer/c1', { type: 'merge.into', into: 'c9', at: T(2, 0) });
      assert.equal((sim.state('customer/c9').context as CustomerContext).tier, 'vip');
      assert.ok(sim.log.some((m) => m.to === 'conversation/v7' && m.event.type === 'tier.changed' && (m.event as unknown as { tier: string }).tier === 'vip'));
    });

    test('merging into itself is refused', () => {
      const { snap, replies } = send(start('c1'), { type: 'merge.into', into: 'c1', at: T(0, 0) });
      assert.equal(snap.value, 'active');
      assert.equal(ctx(snap).mergedInto, undefined);
      assert.deepEqual(replies, [{ ok: false, reason: 'cannot merge a customer into itself' }]);
    });

    test('every change but a merge is passed on to the survivor; merges are refused', () => {
      const snap = merged();
      const changes: CustomerEvent[] = [
        { type: 'profile.update', profile: { name: 'X' } },
        { type: 'tier.set', tier: 'vip' },
        { type: 'tag.add', tag: 'new' },
        { type: 'tag.remove', tag: 'dup' },
        { type: 'identity.link', channel: 'email', handle: 'a@b' },
        { type: 'identity.unlink', channel: 'sms', handle: '+86138' },
        { type: 'conversation.opened', conversationId: 'v1', channel: 'sms', at: T(7, 0) },
        { type: 'conversation.closed', conversationId: 'v1' },
        { type: 'message.inbound', channel: 'sms', at: T(7, 0) },
        { type: 'reply.received', channel: 'sms', at: T(7, 0) },
        { type: 'consent.opt_in', channel: 'sms', at: T(7, 0), source: 'x' },
        { type: 'consent.opt_out', channel: 'sms', at: T(7, 0), source: 'x' },
      ];
      for (const e of changes) {
        const [next, actions] = transition(customerMachine, snap, e);
        assert.equal(next.value, 'merged', e.type);
        assert.deepEqual(next.context, snap.context, e.type);
        const effects = (actions as readonly { type: string; params?: unknown }[]).flatMap((a) => (a.type === 'xstate.emit' ? [emitted(a.params)] : []));
        assert.deepEqual(effects.find((x) => x?.type === 'effect.tell'), { type: 'effect.tell', to: 'customer/c9', event: e }, e.type);
        assert.deepEqual(repliesOf(actions), [{ ok: true, forwardedTo: 'c9', reason: `customer merged into c9; ${e.type} passed on` }], e.type);
      }
      const merges: CustomerEvent[] = [
        { type: 'merge.into', into: 'c10', at: T(7, 0) },
        { type: 'merge.absorb', from: 'c2', at: T(7, 0), tier: 'vip', tags: [], identities: [], consent: {}, channelStats: {} },
      ];
      for (const e of merges) {
        const { snap: next, replies } = send(snap, e);
        assert.deepEqual(next.context, snap.context, e.type);
        assert.deepEqual(replies, [{ ok: false, reason: `customer merged into c9; ${e.type} refused`, mergedInto: 'c9' }], e.type);
      }
    });

    test("a conversation opened before the merge still reaches the survivor: its close is passed on", () => {
      const sim = new Sim({ customer: customerKind });
      sim.send('customer/c1', { type: 'conversation.opened', conversationId: 'v1', channel: 'sms', at: T(1, 0) });
      sim.send('customer/c1', { type: 'merge.into', into: 'c9', at: T(2, 0) });
      sim.send('customer/c1', { type: 'conversation.opened', conversationId: 'v1', channel: 'sms', at: T(1, 0) });
      assert.deepEqual((sim.state('customer/c9').context as CustomerContext).openConversations.map((c) => c.id), ['v1']);
      sim.send('customer/c1', { type: 'conversation.closed', conversationId: 'v1' });
      assert.deepEqual((sim.state('customer/c9').context as CustomerContext).openConversations, []);
    });

    test('still answers get; contact is not allowed and there is no preference', () => {
      const snap = merged();
      assert.deepEqual(ask(snap, { type: 'get' }), { ...ctx(snap), preferredChannel: { channel: 'sms', reason: 'no use yet; first reachable linked identity' } });
      assert.deepEqual(ask(snap, { type: 'contact.check', channel: 'sms' }), { allowed: false, reason: 'customer merged into c9' });
      assert.deepEqual(ask(snap, { type: 'preference.query', at: T(7, 0) }), { channel: null, reason: 'customer merged into c9' });
    });

    test('a merged snapshot survives persistence', () => {
      const snap = merged();
      const restored = customerMachine.resolveState({ value: 'merged', context: structuredClone(ctx(snap)) });
      assert.equal(restored.value, 'merged');
      assert.deepEqual(send(restored, { type: 'tag.add', tag: 'x' }).snap.context, ctx(snap));
    });
  });

  describe('CustomerEventSchema', () => {
    const valid: Record<CustomerEventType, unknown> = {
      'profile.update': { type: 'profile.update', profile: { name: 'Li', language: 'zh' } },
      'tier.set': { type: 'tier.set', tier: 'vip' },
      'tag.add': { type: 'tag.add', tag: 'b2b' },
      'tag.remove': { type: 'tag.remove', tag: 'b2b' },
      'identity.link': { type: 'identity.link', channel: 'xiaohongshu', handle: 'li_xhs' },
      'identity.unlink': { type: 'identity.unlink', channel: 'douyin', handle: 'li_dy' },
      'conversation.opened': { type: 'conversation.opened', conversationId: 'v1', channel: 'wecom', at: T(0, 1), outreach: true },
      'conversation.closed': { type: 'conversation.closed', conversationId: 'v1' },
      'message.inbound': { type: 'message.inbound', channel: 'dingtalk', at: T(0, 1), conversationId: 'v1' },
      'reply.received': { type: 'reply.received', channel: 'app', at: 0 },
      'consent.opt_in': { type: 'consent.opt_in', channel: 'email', at: T(0, 1), source: 'web form' },
      'consent.opt_out': { type: 'consent.opt_out', channel: 'voice', at: T(0, 1), source: 'IVR' },
      'merge.into': { type: 'merge.into', into: 'c9', at: T(0, 1) },
      'merge.absorb': {
        type: 'merge.absorb',
        from: 'c2',
        at: T(0, 1),
        tier: 'vip',
        tags: ['b2b'],
        identities: [{ channel: 'sms', handle: '+86139' }],
        consent: { sms: { optedIn: false, at: T(0, 0), source: 'STOP' } },
        channelStats: { sms: { inbound: 1, replies: 0, lastAt: T(0, 0), hours: Array(24).fill(0) } },
      },
      get: { type: 'get' },
      'preference.query': { type: 'preference.query', at: T(0, 1) },
      'contact.check': { type: 'contact.check', channel: 'webchat' },
    };

    test('accepts one valid example of every event, and each drives the machine', () => {
      assert.deepEqual(Object.keys(valid).sort(), CustomerEventSchema.options.map((o) => o.entries.type.literal).sort());
      for (const [type, raw] of Object.entries(valid)) {
        const r = v.safeParse(CustomerEventSchema, raw);
        assert.ok(r.success, `${type}: ${r.issues?.[0].message}`);
        assert.doesNotThrow(() => send(start(), r.output));
      }
      assert.ok(v.is(CustomerEventSchema, { type: 'get', at: T(0, 0) }));
      assert.deepEqual(customerKind.events && v.parse(customerKind.events, { type: 'tag.add', tag: '  b2b  ' }), { type: 'tag.add', tag: 'b2b' });
    });

    test('rejects bad events', () => {
      const bad: [string, unknown][] = [
        ['missing type', { tag: 'x' }],
        ['unknown type', { type: 'customer.delete' }],
        ['not an object', 'get'],
        ['unknown channel', { type: 'message.inbound', channel: 'telegram', at: T(0, 1) }],
        ['unknown channel on contact.check', { type: 'contact.check', channel: 'fax' }],
        ['at as a string', { type: 'message.inbound', channel: 'sms', at: '2024-01-01T00:00:00Z' }],
        ['negative at', { type: 'reply.received', channel: 'sms', at: -1 }],
        ['fractional at', { type: 'preference.query', at: 1.5 }],
        ['NaN at', { type: 'consent.opt_out', channel: 'sms', at: Number.NaN, source: 'x' }],
        ['missing at', { type: 'conversation.opened', conversationId: 'v1', channel: 'sms' }],
        ['outreach not a boolean', { type: 'conversation.opened', conversationId: 'v1', channel: 'sms', at: T(0, 1), outreach: 'yes' }],
        ['empty conversation on message.inbound', { type: 'message.inbound', channel: 'sms', at: T(0, 1), conversationId: '  ' }],
        ['bad at on get', { type: 'get', at: 'now' }],
        ['unknown tier', { type: 'tier.set', tier: 'gold' }],
        ['empty tag', { type: 'tag.add', tag: '   ' }],
        ['missing handle', { type: 'identity.link', channel: 'sms' }],
        ['missing source', { type: 'consent.opt_in', channel: 'sms', at: T(0, 1) }],
        ['profile not an object', { type: 'profile.update', profile: 'Li' }],
      ];
      for (const [why, raw] of bad) assert.equal(v.safeParse(CustomerEventSchema, raw).success, false, why);
      const r = v.safeParse(CustomerEventSchema, { type: 'message.inbound', channel: 'telegram', at: 1 });
      assert.equal(r.issues?.[0].message, 'unknown channel');
    });

    test('covers every channel', () => {
      for (const channel of CHANNELS) assert.ok(v.is(CustomerEventSchema, { type: 'contact.check', channel }), channel);
    });
  });
});
