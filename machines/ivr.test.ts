// The IVR machine, driven purely with initialTransition/transition (no NATS): every state and transition.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as v from 'valibot';
import { initialTransition, transition, type EventObject, type SnapshotFrom } from 'xstate';
import { Stepper } from '../actors/step.ts';
import type { Effect } from './effects.ts';
import {
  DEFAULT_FALLBACK,
  IvrEventSchema,
  NO_MENU_EXIT,
  ivrKind,
  ivrMachine,
  parseMenu,
  type IvrEvent,
  type IvrInput,
  type IvrMenu,
} from './ivr.ts';

type Snap = SnapshotFrom<typeof ivrMachine>;
interface Action {
  type: string;
  params?: unknown;
}

const TIMER = 'xstate.after.nodeTimeout.ivr.menu';

/** 1 = after-sales (submenu: 1 = zh, 2 = en, * = back), 2 = billing, 0 = operator, 8/9 = chat/SMS. */
const rawMenu = {
  start: 'main',
  language: 'zh',
  nodes: {
    main: {
      prompt: 'welcome.zh',
      noInputPrompt: 'noinput.zh',
      invalidPrompt: 'invalid.zh',
      timeoutMs: 5000,
      retries: 2,
      choices: [
        { dtmf: '1', keywords: ['售后', 'after-sales', 'after sales', 'repair'], next: 'aftersales' },
        { dtmf: '2', keywords: ['账单', 'Billing'], exit: { queue: 'billing', attributes: { topic: 'billing' } } },
        { dtmf: '0', keywords: ['人工', 'operator', 'agent'], exit: { queue: 'general', attributes: { operator: true } } },
        { dtmf: '8', keywords: ['在线聊天', 'chat'], exit: { failover: 'webchat' } },
        { dtmf: '9', keywords: ['短信', 'sms', 'text message'], exit: { failover: 'sms' } },
      ],
    },
    aftersales: {
      prompt: 'aftersales.zh',
      timeoutMs: 3000,
      retries: 1,
      choices: [
        { dtmf: '1', keywords: ['中文', '普通话', 'chinese', 'mandarin'], language: 'zh', exit: { queue: 'aftersales', attributes: { language: 'zh', priority: 1 } } },
        { dtmf: '2', keywords: ['英文', 'english'], language: 'en', exit: { queue: 'aftersales', attributes: { language: 'en', priority: 1 } } },
        { dtmf: '*', keywords: ['返回', 'back'], next: 'main' },
      ],
    },
  },
};
const menu: IvrMenu = parseMenu(rawMenu);
const withFallback: IvrMenu = parseMenu({ ...rawMenu, fallback: { failover: 'webchat' } });

const plain = (actions: readonly Action[]): Action[] => actions.map((a) => ({ type: a.type, params: a.params }));
const effects = (actions: readonly Action[]): Effect[] =>
  plain(actions)
    .filter((a) => a.type === 'xstate.emit')
    .map((a) => (a.params as { event: Effect }).event);
const tells = (actions: readonly Action[]) => effects(actions).filter((e) => e.type === 'effect.tell');
const plays = (actions: readonly Action[]): unknown[] => tells(actions).filter((t) => t.to === 'call/c1').map((t) => t.event);
const done = (actions: readonly Action[]): unknown[] => tells(actions).filter((t) => t.to === 'conversation/c1').map((t) => t.event);
const replies = (actions: readonly Action[]): unknown[] => effects(actions).flatMap((e) => (e.type === 'effect.reply' ? [e.data] : []));
const timers = (actions: readonly Action[]) =>
  plain(actions)
    .filter((a) => a.type === 'xstate.raise')
    .map((a) => a.params as { event: EventObject; delay: number; id: string });
const cancels = (actions: readonly Action[]): string[] =>
  plain(actions)
    .filter((a) => a.type === 'xstate.cancel')
    .map((a) => (a.params as { sendId: string }).sendId);

function init(input: Partial<IvrInput> = {}): Snap {
  const [s, actions] = initialTransition(ivrMachine, { callId: 'c1', menu, ...input });
  assert.equal(s.value, 'idle');
  assert.deepEqual(plain(actions), []);
  return s;
}
const send = (s: Snap, event: IvrEvent): [Snap, Action[]] => {
  const [next, actions] = transition(ivrMachine, s, event);
  return [next, plain(actions)];
};
/** Simulates the runtime firing the armed no-input timer: the raised event goes back in as an event. */
function fire(s: Snap, armed: readonly Action[]): [Snap, Action[]] {
  const [t] = timers(armed);
  assert.ok(t, 'a no-input timer is armed');
  assert.equal(t.id, TIMER);
  // The delayed event is XState's own (`xstate.after.*`), outside IvrEvent; the runtime feeds it back as is.
  return send(s, t.event as unknown as IvrEvent);
}
const started = (input: Partial<IvrInput> = {}): [Snap, Action[]] => send(init(input), { type: 'start' });
const dtmf = (s: Snap, digit: string) => send(s, { type: 'dtmf', digit });
const speech = (s: Snap, text: string) => send(s, { type: 'speech', text });

describe('parseMenu', () => {
  test('accepts a well-formed two-level menu', () => {
    assert.equal(menu.start, 'main');
    assert.deepEqual(Object.keys(menu.nodes), ['main', 'aftersales']);
    assert.deepEqual(withFallback.fallback, { failover: 'webchat' });
  });

  test('rejects a next that names no node', () => {
    const bad = structuredClone(rawMenu);
    bad.nodes.main.choices[0].next = 'nowhere';
    assert.throws(() => parseMenu(bad), /invalid IVR menu: .*nodes\.main\.choices\[0\]\.next: 'nowhere' is not a node/);
  });

  test('rejects a choice with both next and exit, or neither', () => {
    const both = structuredClone(rawMenu);
    Object.assign(both.nodes.main.choices[1], { next: 'aftersales' });
    assert.throws(() => parseMenu(both), /nodes\.main\.choices\[1\]: has both next and exit/);
    const neither = structuredClone(rawMenu);
    delete (neither.nodes.aftersales.choices[2] as { next?: string }).next;
    assert.throws(() => parseMenu(neither), /nodes\.aftersales\.choices\[2\]: has neither next nor exit/);
  });

  test('rejects a missing start node, duplicate keys, unselectable choices, inherited names', () => {
    assert.throws(() => parseMenu({ ...rawMenu, start: 'lobby' }), /start: 'lobby' is not a node/);
    const dup = structuredClone(rawMenu);
    dup.nodes.main.choices[1].dtmf = '1';
    assert.throws(() => parseMenu(dup), /key '1' is used twice in node 'main'/);
    const mute = structuredClone(rawMenu);
    Object.assign(mute.nodes.main.choices[0], { dtmf: undefined, keywords: [] });
    assert.throws(() => parseMenu(mute), /nodes\.main\.choices\[0\]: has neither dtmf nor keywords/);
    const proto = structuredClone(rawMenu);
    proto.nodes.main.choices[0].next = 'constructor';
    assert.throws(() => parseMenu(proto), /'constructor' is not a node/);
  });

  test('rejects malformed fields with their path: bad key, typo, bad number, unknown failover channel', () => {
    const key = structuredClone(rawMenu);
    key.nodes.main.choices[0].dtmf = '12';
    assert.throws(() => parseMenu(key), /nodes\.main\.choices\.0\.dtmf: a DTMF key is one of/);
    assert.throws(() => parseMenu({ ...rawMenu, nodes: { ...rawMenu.nodes, main: { ...rawMenu.nodes.main, noInputPromt: 'x' } } }), /noInputPromt/);
    assert.throws(() => parseMenu({ ...rawMenu, nodes: { ...rawMenu.nodes, main: { ...rawMenu.nodes.main, retries: -1 } } }), /nodes\.main\.retries/);
    assert.throws(() => parseMenu({ ...rawMenu, fallback: { failover: 'fax' } }), /fallback/);
    assert.throws(() => parseMenu(null), /invalid IVR menu/);
  });
});

describe('IVR events and kind', () => {
  test('the event schema accepts the IVR events and refuses malformed ones', () => {
    for (const e of [{ type: 'start' }, { type: 'start', menu: rawMenu, vip: true }, { type: 'dtmf', digit: '#' }, { type: 'speech', text: '售后' }, { type: 'hangup' }, { type: 'get' }]) {
      assert.ok(v.is(IvrEventSchema, e), JSON.stringify(e));
    }
    const dangling = structuredClone(rawMenu);
    dangling.nodes.main.choices[0].next = 'nowhere';
    for (const e of [{ type: 'dtmf', digit: '12' }, { type: 'dtmf' }, { type: 'speech' }, { type: 'nope' }, { type: 'start', menu: dangling }]) {
      assert.ok(!v.is(IvrEventSchema, e), JSON.stringify(e));
    }
  });

  test('the kind: name, version, machine id, input from the actor id', () => {
    assert.equal(ivrKind.name, 'ivr');
    assert.equal(ivrKind.version, 1);
    assert.equal(ivrKind.machine.id, 'ivr');
    assert.deepEqual(ivrKind.input?.('call-9'), { callId: 'call-9' });
  });
});

describe('IVR machine', () => {
  test('idle: get replies with the view; start enters the start node, plays its prompt and arms its timeout', () => {
    const s0 = init();
    const [same, got] = send(s0, { type: 'get' });
    assert.equal(same.value, 'idle');
    const [view] = replies(got) as { value: string; status: string; node: string | null }[];
    assert.deepEqual([view.value, view.status, view.node], ['idle', 'active', null]);

    const [s1, a1] = send(s0, { type: 'start' });
    assert.equal(s1.value, 'menu');
    assert.equal(s1.context.node, 'main');
    assert.equal(s1.context.attempts, 0);
    assert.deepEqual(plays(a1), [{ type: 'ivr.play', prompt: 'welcome.zh', language: 'zh' }]);
    assert.deepEqual(timers(a1), [{ event: { type: TIMER }, id: TIMER, delay: 5000 }]);

    const [, a2] = send(s1, { type: 'get' });
    const [mv] = replies(a2) as { value: string; node: string; context: { path: unknown[] } }[];
    assert.deepEqual([mv.value, mv.node, mv.context.path], ['menu', 'main', []]);
  });

  test('DTMF through the submenu to a queue exit with attributes; ivr.done to the conversation', () => {
    const [s1] = started();
    const [s2, a2] = dtmf(s1, '1');
    assert.equal(s2.value, 'menu');
    assert.equal(s2.context.node, 'aftersales');
    assert.deepEqual(plays(a2), [{ type: 'ivr.play', prompt: 'aftersales.zh', language: 'zh' }]);
    assert.deepEqual(cancels(a2), [TIMER], 'the old node timer is cancelled');
    assert.equal(timers(a2)[0].delay, 3000, "the new node's timeout");

    const [s3, a3] = dtmf(s2, '2');
    const exit = { queue: 'aftersales', attributes: { language: 'en', priority: 1 } };
    const path = [
      { node: 'main', via: 'dtmf', input: '1' },
      { node: 'aftersales', via: 'dtmf', input: '2' },
    ];
    assert.equal(s3.value, 'done');
    assert.equal(s3.status, 'done');
    assert.deepEqual(s3.context.exit, exit);
    assert.deepEqual(s3.output, { exit, path, language: 'en' });
    assert.deepEqual(done(a3), [{ type: 'ivr.done', exit, path, language: 'en' }]);
    assert.deepEqual(cancels(a3), [TIMER]);
    assert.deepEqual(plays(a3), []);
  });

  test('DTMF exits straight from the top menu: billing, operator; * goes back from the submenu', () => {
    const [s1] = started();
    const [b, ab] = dtmf(s1, '2');
    assert.deepEqual(b.output?.exit, { queue: 'billing', attributes: { topic: 'billing' } });
    assert.deepEqual(done(ab), [{ type: 'ivr.done', exit: { queue: 'billing', attributes: { topic: 'billing' } }, path: [{ node: 'main', via: 'dtmf', input: '2' }], language: 'zh' }]);
    const [o] = dtmf(s1, '0');
    assert.deepEqual(o.output?.exit, { queue: 'general', attributes: { operator: true } });

    const [sub] = dtmf(s1, '1');
    const [back, aBack] = dtmf(sub, '*');
    assert.equal(back.value, 'menu');
    assert.equal(back.context.node, 'main');
    assert.deepEqual(plays(aBack), [{ type: 'ivr.play', prompt: 'welcome.zh', language: 'zh' }]);
    assert.equal(back.context.path.length, 2);
  });

  test('speech keywords in Chinese', () => {
    const [s1] = started();
    const [s2] = speech(s1, '我要售后服务');
    assert.equal(s2.context.node, 'aftersales');
    const [s3] = speech(s2, '说英文吧');
    assert.deepEqual(s3.output, {
      exit: { queue: 'aftersales', attributes: { language: 'en', priority: 1 } },
      path: [
        { node: 'main', via: 'speech', input: '售后' },
        { node: 'aftersales', via: 'speech', input: '英文' },
      ],
      language: 'en',
    });
    const [bill] = speech(s1, '查一下账单');
    assert.deepEqual(bill.output?.exit, { queue: 'billing', attributes: { topic: 'billing' } });
  });

  test('speech keywords in English, case-insensitive and on word boundaries; a spoken key counts as the key', () => {
    const [s1] = started();
    const [s2] = speech(s1, 'I need AFTER-SALES please');
    assert.equal(s2.context.node, 'aftersales');
    const [s3] = speech(s2, 'Mandarin');
    assert.deepEqual(s3.output?.exit, { queue: 'aftersales', attributes: { language: 'zh', priority: 1 } });
    const [spaced] = speech(s1, '  after   sales ');
    assert.equal(spaced.context.node, 'aftersales');
    const [bill] = speech(s1, 'billing');
    assert.equal(bill.value, 'done');
    assert.deepEqual(bill.context.path, [{ node: 'main', via: 'speech', input: 'Billing' }]);
    const [key] = speech(s1, '１');
    assert.deepEqual(key.context.path, [{ node: 'main', via: 'speech', input: '1' }]);
    const [inside, aInside] = speech(s1, 'magenta');
    assert.equal(inside.value, 'menu', "'agent' inside 'magenta' is no match");
    assert.deepEqual(plays(aInside), [{ type: 'ivr.play', prompt: 'invalid.zh', language: 'zh' }]);
  });

  test('failover exits: DTMF 9 to SMS, speech to webchat', () => {
    const [s1] = started();
    const [sms, a] = dtmf(s1, '9');
    assert.deepEqual(sms.output?.exit, { failover: 'sms' });
    assert.deepEqual(done(a), [{ type: 'ivr.done', exit: { failover: 'sms' }, path: [{ node: 'main', via: 'dtmf', input: '9' }], language: 'zh' }]);
    const [chat] = speech(s1, '我想在线聊天');
    assert.deepEqual(chat.output?.exit, { failover: 'webchat' });
    const [text] = speech(s1, 'send me a text message');
    assert.deepEqual(text.output?.exit, { failover: 'sms' });
  });

  test('an invalid choice plays invalidPrompt and retries; after `retries` retries the default fallback', () => {
    const [s1] = started();
    const [r1, a1] = dtmf(s1, '7');
    assert.equal(r1.value, 'menu');
    assert.equal(r1.context.attempts, 1);
    assert.deepEqual(plays(a1), [{ type: 'ivr.play', prompt: 'invalid.zh', language: 'zh' }]);
    assert.deepEqual(cancels(a1), [TIMER]);
    assert.equal(timers(a1)[0].delay, 5000, 'the timeout is re-armed');
    const [r2] = speech(r1, 'something else entirely');
    assert.equal(r2.context.attempts, 2);
    const [end, aEnd] = dtmf(r2, '#');
    assert.equal(end.value, 'done');
    assert.deepEqual(end.output, { exit: DEFAULT_FALLBACK, path: [], language: 'zh' });
    assert.deepEqual(DEFAULT_FALLBACK, { queue: 'default', attributes: { reason: 'ivr-retries-exhausted' } });
    assert.deepEqual(done(aEnd), [{ type: 'ivr.done', exit: DEFAULT_FALLBACK, path: [], language: 'zh' }]);
  });

  test('no input: the delayed timeout replays noInputPrompt, counting attempts with invalid ones, then falls back', () => {
    const [s1, a1] = started();
    const [t1, at1] = fire(s1, a1);
    assert.equal(t1.value, 'menu');
    assert.equal(t1.context.attempts, 1);
    assert.deepEqual(plays(at1), [{ type: 'ivr.play', prompt: 'noinput.zh', language: 'zh' }]);
    const [i2, ai2] = dtmf(t1, '5');
    assert.equal(i2.context.attempts, 2);
    const [end, aEnd] = fire(i2, ai2);
    assert.equal(end.value, 'done');
    assert.deepEqual(end.context.exit, DEFAULT_FALLBACK);
    assert.deepEqual(done(aEnd), [{ type: 'ivr.done', exit: DEFAULT_FALLBACK, path: [], language: 'zh' }]);
    assert.deepEqual(timers(aEnd), []);
  });

  test("the menu's fallback exit is used when retries run out; attempts are per node; blank speech is no input", () => {
    const [s1] = started({ menu: withFallback });
    const [miss] = dtmf(s1, '7');
    assert.equal(miss.context.attempts, 1);
    const [sub, aSub] = dtmf(miss, '1');
    assert.equal(sub.context.attempts, 0, 'a new node starts with no failed attempts');
    const [t1, at1] = fire(sub, aSub);
    assert.deepEqual(plays(at1), [{ type: 'ivr.play', prompt: 'aftersales.zh', language: 'zh' }], 'no noInputPrompt: the prompt is replayed');
    assert.equal(t1.context.attempts, 1);
    const [end, aEnd] = speech(t1, '   ');
    assert.equal(end.value, 'done');
    assert.deepEqual(end.output, { exit: { failover: 'webchat' }, path: [{ node: 'main', via: 'dtmf', input: '1' }], language: 'zh' });
    assert.deepEqual(done(aEnd), [{ type: 'ivr.done', exit: { failover: 'webchat' }, path: [{ node: 'main', via: 'dtmf', input: '1' }], language: 'zh' }]);

    const [blank, aBlank] = speech(s1, '');
    assert.equal(blank.context.attempts, 1);
    assert.deepEqual(plays(aBlank), [{ type: 'ivr.play', prompt: 'noinput.zh', language: 'zh' }]);
  });

  test('the runtime timer event (with its due time) is handled like the raw one', () => {
    const [s1] = started();
    const [t] = send(s1, { type: TIMER, at: 1234 } as unknown as IvrEvent);
    assert.equal(t.context.attempts, 1);
  });

  test('VIP with a vipExit skips the menu; VIP without one walks it; VIP data may come with start', () => {
    const vipExit = { queue: 'vip', attributes: { tier: 'gold', priority: 10 } };
    const [s, a] = started({ vip: true, vipExit });
    assert.equal(s.value, 'done');
    assert.deepEqual(s.output, { exit: vipExit, path: [], language: 'zh' });
    assert.deepEqual(plays(a), [], 'no prompt is played');
    assert.deepEqual(timers(a), []);
    assert.deepEqual(done(a), [{ type: 'ivr.done', exit: vipExit, path: [], language: 'zh' }]);

    const [walk] = started({ vip: true });
    assert.equal(walk.value, 'menu');
    const [notVip] = started({ vip: false, vipExit });
    assert.equal(notVip.value, 'menu');

    const [viaStart] = send(init(), { type: 'start', vip: true, vipExit });
    assert.deepEqual(viaStart.output?.exit, vipExit);
  });

  test('the menu may come with start (the runtime gives only the call id); no menu at all routes to the default queue', () => {
    const [s0] = initialTransition(ivrMachine, ivrKind.input?.('c1') as IvrInput);
    const [s1, a1] = send(s0, { type: 'start', menu });
    assert.equal(s1.value, 'menu');
    assert.deepEqual(plays(a1), [{ type: 'ivr.play', prompt: 'welcome.zh', language: 'zh' }]);

    const [none, aNone] = send(s0, { type: 'start' });
    assert.equal(none.value, 'done');
    assert.deepEqual(none.output?.exit, NO_MENU_EXIT);
    assert.deepEqual(done(aNone), [{ type: 'ivr.done', exit: NO_MENU_EXIT, path: [], language: null }]);
  });

  test('events that do not apply are ignored: input before start, start twice', () => {
    const s0 = init();
    const [same, a] = dtmf(s0, '1');
    assert.equal(same.value, 'idle');
    assert.deepEqual(a, []);
    const [s1] = started();
    const [again, a2] = send(s1, { type: 'start' });
    assert.equal(again.context.node, 'main');
    assert.deepEqual(a2, []);
  });

  test('hangup in any state ends in hungup without routing; final states take no further events', () => {
    const [s1] = started();
    const [sub] = dtmf(s1, '1');
    const [retrying] = dtmf(sub, '7');
    for (const [name, s] of [['idle', init()], ['main', s1], ['submenu', sub], ['retrying', retrying]] as const) {
      const [h, a] = send(s, { type: 'hangup' });
      assert.equal(h.value, 'hungup', name);
      assert.equal(h.status, 'done', name);
      assert.deepEqual(done(a), [], name);
      assert.deepEqual(timers(a), [], name);
      if (name !== 'idle') assert.deepEqual(cancels(a), [TIMER], `${name}: the timer is cancelled`);
      assert.deepEqual(h.output?.exit, null);
    }
    const [h] = send(sub, { type: 'hangup' });
    assert.deepEqual(h.output?.path, [{ node: 'main', via: 'dtmf', input: '1' }]);

    const [routed] = dtmf(s1, '2');
    for (const fin of [h, routed]) {
      for (const e of [{ type: 'hangup' }, { type: 'get' }, { type: 'dtmf', digit: '1' }, { type: 'start' }] as IvrEvent[]) {
        const [after, a] = send(fin, e);
        assert.deepEqual([after.value, after.status, after.context], [fin.value, fin.status, fin.context]);
        assert.deepEqual(a, []);
      }
    }
  });

  test('hosted by the runtime stepper: effects, timers and cancels classify, and the snapshot survives JSON', () => {
    const stepper = new Stepper(ivrMachine);
    const r0 = stepper.initial(ivrKind.input?.('c7'));
    const begin: IvrEvent = { type: 'start', menu };
    const r1 = stepper.step(r0.snapshot, begin);
    assert.deepEqual(r1.effects, [{ type: 'effect.tell', to: 'call/c7', event: { type: 'ivr.play', prompt: 'welcome.zh', language: 'zh' } }]);
    assert.deepEqual(r1.timers, [{ id: TIMER, delay: 5000, event: { type: TIMER } }]);
    const restored = stepper.restore(JSON.parse(JSON.stringify(stepper.persist(r1.snapshot))));
    const due: EventObject & { at: number } = { ...r1.timers[0].event, at: 99 };
    const r2 = stepper.step(restored, due);
    assert.deepEqual(r2.cancels, [TIMER]);
    assert.deepEqual(r2.timers, [{ id: TIMER, delay: 5000, event: { type: TIMER } }]);
    const key: IvrEvent = { type: 'dtmf', digit: '0' };
    const r3 = stepper.step(r2.snapshot, key);
    assert.deepEqual(r3.effects, [
      {
        type: 'effect.tell',
        to: 'conversation/c7',
        event: { type: 'ivr.done', exit: { queue: 'general', attributes: { operator: true } }, path: [{ node: 'main', via: 'dtmf', input: '0' }], language: 'zh' },
      },
    ]);
    assert.equal(r3.snapshot.status, 'done');
  });
});

describe('IVR failover offer (nobody can take the call)', () => {
  const offer = { prompts: { zh: 'failover.offer.zh', en: 'failover.offer.en' }, dtmf: '1', channel: 'sms', timeoutMs: 4000, retries: 1 };
  const withOffer: IvrMenu = parseMenu({ ...rawMenu, failover: offer });
  const OFFER_TIMER = 'xstate.after.offerTimeout.ivr.offering';
  const asks = (actions: readonly Action[]) => tells(actions).filter((t) => t.to === 'call/c1' && (t.event as { type: string }).type === 'ivr.staffing').map((t) => t.event);
  const billing = { queue: 'billing', attributes: { topic: 'billing' } };

  test('the menu must have an offer prompt in its language', () => {
    assert.throws(() => parseMenu({ ...rawMenu, failover: { ...offer, prompts: { en: 'failover.offer.en' } } }), /failover.prompts: no prompt for the menu's language 'zh'/);
    assert.throws(() => parseMenu({ ...rawMenu, failover: { ...offer, channel: 'fax' } }), /failover.channel/);
  });

  test('a queue exit asks the edge first; staffed queues the caller as before', () => {
    const [s1] = started({ menu: withOffer });
    const [checking, a] = dtmf(s1, '2');
    assert.equal(checking.value, 'checking');
    assert.deepEqual(asks(a), [{ type: 'ivr.staffing', queue: 'billing' }]);
    assert.deepEqual(done(a), [], 'not routed yet');
    assert.deepEqual(timers(a).map((t) => t.delay), [5000], 'the edge has 5 s to answer');
    const [routed, a2] = send(checking, { type: 'staffed' });
    assert.equal(routed.value, 'done');
    assert.deepEqual(done(a2), [{ type: 'ivr.done', exit: billing, path: [{ node: 'main', via: 'dtmf', input: '2' }], language: 'zh' }]);
    // No answer in time: queued anyway.
    const [late, a3] = send(checking, timers(a)[0].event as unknown as IvrEvent);
    assert.equal(late.value, 'done');
    assert.deepEqual(late.output?.exit, billing);
    assert.equal(done(a3).length, 1);
  });

  test('unstaffed plays the offer in the session language; its key exits to the failover channel', () => {
    const [s1] = started({ menu: withOffer });
    const [sub] = dtmf(s1, '1');
    const [checking] = dtmf(sub, '2'); // English after-sales
    const [offering, a] = send(checking, { type: 'unstaffed', reason: 'no voice agent on duty' });
    assert.equal(offering.value, 'offering');
    assert.deepEqual(plays(a), [{ type: 'ivr.play', prompt: 'failover.offer.en', language: 'en' }]);
    assert.deepEqual(timers(a).map((t) => [t.id, t.delay]), [[OFFER_TIMER, 4000]]);
    const [moved, a2] = dtmf(offering, '1');
    const path = [
      { node: 'main', via: 'dtmf', input: '1' },
      { node: 'aftersales', via: 'dtmf', input: '2' },
      { node: 'failover-offer', via: 'dtmf', input: '1' },
    ];
    assert.equal(moved.value, 'done');
    assert.deepEqual(done(a2), [{ type: 'ivr.done', exit: { failover: 'sms' }, path, language: 'en' }]);
  });

  test('another key or silence replays the offer `retries` times, then keeps the queue exit; hangup ends it', () => {
    const [s1] = started({ menu: withOffer });
    const [checking] = dtmf(s1, '2');
    const [offering, a] = send(checking, { type: 'unstaffed' });
    assert.deepEqual(plays(a), [{ type: 'ivr.play', prompt: 'failover.offer.zh', language: 'zh' }]);
    const [again, a2] = dtmf(offering, '5');
    assert.equal(again.value, 'offering');
    assert.equal(plays(a2).length, 1, 'replayed');
    const [stays, a3] = send(again, timers(a2)[0].event as unknown as IvrEvent);
    assert.equal(stays.value, 'done');
    assert.deepEqual(done(a3), [{ type: 'ivr.done', exit: billing, path: [{ node: 'main', via: 'dtmf', input: '2' }], language: 'zh' }]);
    for (const s of [checking, offering]) assert.equal(send(s, { type: 'hangup' })[0].value, 'hungup');
  });

  test('silence alone replays the offer once, then the caller keeps the queue exit', () => {
    const [s1] = started({ menu: withOffer });
    const [checking] = dtmf(s1, '2');
    const [offering, a] = send(checking, { type: 'unstaffed' });
    const [replayed, a2] = send(offering, timers(a)[0].event as unknown as IvrEvent);
    assert.equal(replayed.value, 'offering');
    assert.deepEqual(plays(a2), [{ type: 'ivr.play', prompt: 'failover.offer.zh', language: 'zh' }], 'replayed on silence');
    assert.deepEqual(timers(a2).map((t) => [t.id, t.delay]), [[OFFER_TIMER, 4000]]);
    const [stays, a3] = send(replayed, timers(a2)[0].event as unknown as IvrEvent);
    assert.equal(stays.value, 'done');
    assert.deepEqual(done(a3).map((d) => (d as { exit: unknown }).exit), [billing]);
  });

  test('VIP and fallback exits are checked too; failover exits and menus without an offer are not', () => {
    const vipExit = { queue: 'vip', attributes: {} };
    const [vip, a] = started({ menu: withOffer, vip: true, vipExit });
    assert.equal(vip.value, 'checking');
    assert.deepEqual(asks(a), [{ type: 'ivr.staffing', queue: 'vip' }]);
    const [s1] = started({ menu: withOffer });
    const [chat, a2] = dtmf(s1, '8');
    assert.equal(chat.value, 'done');
    assert.deepEqual(asks(a2), []);
    const [plainMenu] = started();
    assert.equal(dtmf(plainMenu, '2')[0].value, 'done');
  });
});
