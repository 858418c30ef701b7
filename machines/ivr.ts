// IVR: one caller's session (actor id = the call/conversation id) walking a menu tree given as data.
// Each node plays a prompt (the media side plays it: `call/<id>` gets `ivr.play`), waits for a DTMF key or a
// spoken keyword, and either goes to another node or exits: to a queue with attributes, or a failover to
// webchat/SMS. No input within the node's `timeoutMs` or an invalid choice counts a failed attempt and
// replays the node; failure number `retries + 1` ends in the menu's `fallback` exit (or the default queue).
// The conversation gets `ivr.done` with the exit and the path taken. Pure: no I/O, no clock, no randomness.
import { and, assign, emit, setup } from 'xstate';
import * as v from 'valibot';
import { defineKind } from '../actors/kind.ts';
import { reply, tell } from './effects.ts';

// ---------------------------------------------------------------------------------------------------------
// The menu as data

const NonEmpty = v.pipe(v.string(), v.minLength(1));
/** One DTMF key: 0-9, *, #, A-D. */
export const DtmfSchema = v.pipe(v.string(), v.regex(/^[0-9*#A-D]$/, 'a DTMF key is one of 0-9, *, #, A-D'));

export const QueueExitSchema = v.strictObject({
  queue: NonEmpty,
  attributes: v.record(v.string(), v.union([v.string(), v.number(), v.boolean()])),
});
export const FailoverExitSchema = v.strictObject({ failover: v.picklist(['webchat', 'sms']) });
export const IvrExitSchema = v.union([QueueExitSchema, FailoverExitSchema]);

export const IvrChoiceSchema = v.strictObject({
  dtmf: v.optional(DtmfSchema),
  keywords: v.optional(v.array(NonEmpty)),
  /** The node to go to; exactly one of `next` and `exit`. */
  next: v.optional(NonEmpty),
  exit: v.optional(IvrExitSchema),
  /** Switches the session language (sent with later prompts and with `ivr.done`). */
  language: v.optional(NonEmpty),
});

export const IvrNodeSchema = v.strictObject({
  /** Prompt id the media side plays, e.g. 'welcome.zh'. */
  prompt: NonEmpty,
  choices: v.pipe(v.array(IvrChoiceSchema), v.minLength(1, 'a node needs at least one choice')),
  /** How long to wait for input after the prompt starts. */
  timeoutMs: v.pipe(v.number(), v.integer(), v.minValue(1)),
  /** How many times the node is replayed after no input or an invalid choice before the fallback exit. */
  retries: v.pipe(v.number(), v.integer(), v.minValue(0)),
  /** Played instead of `prompt` after no input (default: `prompt`). */
  noInputPrompt: v.optional(NonEmpty),
  /** Played instead of `prompt` after an invalid choice (default: `prompt`). */
  invalidPrompt: v.optional(NonEmpty),
});

/**
 * Channel failover: when the caller would be queued but nobody can take the call (the edge asks the queue:
 * no voice agent on duty), the IVR offers to continue on another channel; the key accepts, anything else
 * (or silence, after `retries` replays) keeps the caller in the queue.
 */
export const FailoverOfferSchema = v.strictObject({
  /** The offer's prompt per session language; the menu's language must have one. */
  prompts: v.record(NonEmpty, NonEmpty),
  dtmf: DtmfSchema,
  channel: v.picklist(['webchat', 'sms']),
  timeoutMs: v.pipe(v.number(), v.integer(), v.minValue(1)),
  retries: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0)), 0),
});

const MenuShapeSchema = v.strictObject({
  start: NonEmpty,
  /** The session language until a choice switches it. */
  language: NonEmpty,
  nodes: v.record(NonEmpty, IvrNodeSchema),
  /** Where the caller goes when retries run out (default: queue 'default', reason 'ivr-retries-exhausted'). */
  fallback: v.optional(IvrExitSchema),
  /** Offered before queueing when nobody can take the call (see FailoverOfferSchema); absent: always queue. */
  failover: v.optional(FailoverOfferSchema),
});

export type QueueExit = v.InferOutput<typeof QueueExitSchema>;
export type FailoverExit = v.InferOutput<typeof FailoverExitSchema>;
export type IvrExit = v.InferOutput<typeof IvrExitSchema>;
export type IvrChoice = v.InferOutput<typeof IvrChoiceSchema>;
export type IvrNode = v.InferOutput<typeof IvrNodeSchema>;
export type IvrMenu = v.InferOutput<typeof MenuShapeSchema>;
export type FailoverOffer = v.InferOutput<typeof FailoverOfferSchema>;

/** The path step of a caller who accepted the failover offer. */
export const FAILOVER_NODE = 'failover-offer';

const hasNode = (menu: IvrMenu, id: string): boolean => Object.hasOwn(menu.nodes, id);

/** What is wrong with a well-shaped menu: dangling references, ambiguous or unreachable choices. */
function menuProblems(menu: IvrMenu): string[] {
  const problems: string[] = [];
  if (!hasNode(menu, menu.start)) problems.push(`start: '${menu.start}' is not a node`);
  if (menu.failover && !Object.hasOwn(menu.failover.prompts, menu.language)) problems.push(`failover.prompts: no prompt for the menu's language '${menu.language}'`);
  for (const [id, node] of Object.entries(menu.nodes)) {
    const keys = new Set<string>();
    node.choices.forEach((c, i) => {
      const at = `nodes.${id}.choices[${i}]`;
      if (c.next !== undefined && c.exit !== undefined) problems.push(`${at}: has both next and exit (exactly one is allowed)`);
      if (c.next === undefined && c.exit === undefined) problems.push(`${at}: has neither next nor exit (exactly one is needed)`);
      if (c.next !== undefined && !hasNode(menu, c.next)) problems.push(`${at}.next: '${c.next}' is not a node`);
      if (c.dtmf === undefined && !c.keywords?.length) problems.push(`${at}: has neither dtmf nor keywords, so it can never be chosen`);
      if (c.dtmf !== undefined) {
        if (keys.has(c.dtmf)) problems.push(`${at}.dtmf: key '${c.dtmf}' is used twice in node '${id}'`);
        keys.add(c.dtmf);
      }
    });
  }
  return problems;
}

/** A menu: the shape, plus every reference resolving and every choice having exactly one of next/exit. */
export const IvrMenuSchema = v.pipe(
  MenuShapeSchema,
  v.rawCheck(({ dataset, addIssue }) => {
    if (dataset.typed) for (const message of menuProblems(dataset.value)) addIssue({ message });
  }),
);

/** Validates a menu from data (JSON, config); throws an Error naming every problem found. */
export function parseMenu(raw: unknown): IvrMenu {
  const r = v.safeParse(IvrMenuSchema, raw);
  if (r.success) return r.output;
  const reasons = r.issues.map((i) => {
    const path = v.getDotPath(i);
    return path ? `${path}: ${i.message}` : i.message;
  });
  throw new Error(`invalid IVR menu: ${reasons.join('; ')}`);
}

// ---------------------------------------------------------------------------------------------------------
// Events, input, context

export const IvrEventSchema = v.variant('type', [
  /** Begin the session. May carry the menu (and VIP data) when the actor was not given them as input. */
  v.object({ type: v.literal('start'), menu: v.optional(IvrMenuSchema), vip: v.optional(v.boolean()), vipExit: v.optional(QueueExitSchema) }),
  v.object({ type: v.literal('dtmf'), digit: DtmfSchema }),
  /** A speech recognition result; blank text counts as no input. */
  v.object({ type: v.literal('speech'), text: v.pipe(v.string(), v.maxLength(2000)) }),
  v.object({ type: v.literal('hangup') }),
  v.object({ type: v.literal('get') }),
  /** The edge's answer to `ivr.staffing`: someone can take the call (queue it), or nobody (offer failover). */
  v.object({ type: v.literal('staffed') }),
  v.object({ type: v.literal('unstaffed'), reason: v.optional(v.pipe(v.string(), v.maxLength(500))) }),
]);
export type IvrEvent = v.InferOutput<typeof IvrEventSchema>;

export interface IvrInput {
  callId: string;
  /** The menu; may instead come with the `start` event. */
  menu?: IvrMenu;
  /** VIP callers with a `vipExit` skip the menu. */
  vip?: boolean;
  vipExit?: QueueExit;
}

/** One choice the caller made: the node, how, and the key or the keyword (as written in the menu) matched. */
export interface IvrStep {
  node: string;
  via: 'dtmf' | 'speech';
  input: string;
}

export interface IvrContext {
  callId: string;
  menu: IvrMenu | null;
  vip: boolean;
  vipExit: QueueExit | null;
  /** The current node id (null before `start`). */
  node: string | null;
  /** The prompt last asked for. */
  prompt: string | null;
  /** Failed attempts (no input or invalid choice) at the current node. */
  attempts: number;
  path: IvrStep[];
  language: string | null;
  exit: IvrExit | null;
}

export interface IvrOutput {
  exit: IvrExit | null;
  path: IvrStep[];
  language: string | null;
}

export const DEFAULT_FALLBACK: QueueExit = { queue: 'default', attributes: { reason: 'ivr-retries-exhausted' } };
export const NO_MENU_EXIT: QueueExit = { queue: 'default', attributes: { reason: 'ivr-no-menu' } };

// ---------------------------------------------------------------------------------------------------------
// Matching input to choices

const normalize = (s: string): string => s.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
const HAN = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u;
/** Letters and digits that glue words together (Han script does not separate words with spaces). */
const isWordChar = (ch: string | undefined): boolean => ch !== undefined && /[\p{L}\p{N}]/u.test(ch) && !HAN.test(ch);

/** Whether `keyword` occurs in `text` (both normalized): anywhere for Chinese, as whole words otherwise. */
function contains(text: string, keyword: string): boolean {
  if (!keyword) return false;
  if (HAN.test(keyword)) return text.includes(keyword);
  for (let i = text.indexOf(keyword); i >= 0; i = text.indexOf(keyword, i + 1)) {
    if (!isWordChar(text[i - 1]) && !isWordChar(text[i + keyword.length])) return true;
  }
  return false;
}

interface Match {
  choice: IvrChoice;
  step: IvrStep;
}

/**
 * The choice a recognized utterance selects: the text being a choice's DTMF key ("1", "１"), or else the
 * longest keyword found in it (case-insensitive; earlier choices win ties).
 */
export function matchSpeech(node: IvrNode, nodeId: string, text: string): Match | undefined {
  const t = normalize(text);
  const byKey = node.choices.find((c) => c.dtmf !== undefined && normalize(c.dtmf) === t);
  if (byKey?.dtmf !== undefined) return { choice: byKey, step: { node: nodeId, via: 'speech', input: byKey.dtmf } };
  let best: Match | undefined;
  let bestLength = 0;
  for (const choice of node.choices) {
    for (const keyword of choice.keywords ?? []) {
      const k = normalize(keyword);
      if (k.length > bestLength && contains(t, k)) {
        best = { choice, step: { node: nodeId, via: 'speech', input: keyword } };
        bestLength = k.length;
      }
    }
  }
  return best;
}

function currentNode(context: IvrContext): { id: string; node: IvrNode; menu: IvrMenu } {
  const { menu, node: id } = context;
  if (!menu || id === null || !hasNode(menu, id)) throw new Error(`ivr ${context.callId}: no current menu node`);
  return { id, node: menu.nodes[id], menu };
}

function matchInput(context: IvrContext, event: { type: string; digit?: string; text?: string }): Match | undefined {
  const { id, node } = currentNode(context);
  if (event.type === 'dtmf' && event.digit !== undefined) {
    const choice = node.choices.find((c) => c.dtmf === event.digit);
    return choice && { choice, step: { node: id, via: 'dtmf', input: event.digit } };
  }
  if (event.type === 'speech' && event.text !== undefined) return matchSpeech(node, id, event.text);
  return undefined;
}

const isBlankSpeech = (event: { type: string; text?: string }): boolean => event.type === 'speech' && normalize(event.text ?? '') === '';

/** The session settings in force for a `start` event: the event's, else the input's. */
function startSettings(context: IvrContext, event: IvrEvent): { menu: IvrMenu | null; vip: boolean; vipExit: QueueExit | null } {
  const e = event.type === 'start' ? event : undefined;
  return { menu: e?.menu ?? context.menu, vip: e?.vip ?? context.vip, vipExit: e?.vipExit ?? context.vipExit };
}

/** The failover offer's prompt in the session language, else the menu's. */
function offerPrompt(context: IvrContext): string {
  const offer = context.menu?.failover;
  if (!offer || !context.menu) throw new Error(`ivr ${context.callId}: no failover offer in the menu`);
  return (context.language !== null && Object.hasOwn(offer.prompts, context.language) ? offer.prompts[context.language] : undefined) ?? offer.prompts[context.menu.language];
}

/** How long the edge has to answer `ivr.staffing` before the caller is queued anyway. */
export const STAFFING_TIMEOUT_MS = 5000;

const view = (value: 'idle' | 'menu' | 'checking' | 'offering', context: IvrContext) => ({ value, status: 'active', node: context.node, context });

// ---------------------------------------------------------------------------------------------------------
// The machine

export const ivrMachine = setup({
  types: {} as { context: IvrContext; events: IvrEvent; input: IvrInput; output: IvrOutput },
  delays: {
    /** The current node's no-input timeout. */
    nodeTimeout: ({ context }) => currentNode(context).node.timeoutMs,
    offerTimeout: ({ context }) => context.menu?.failover?.timeoutMs ?? 1,
    staffingTimeout: STAFFING_TIMEOUT_MS,
  },
  guards: {
    vipSkip: ({ context, event }) => {
      const s = startSettings(context, event);
      return s.vip && s.vipExit !== null;
    },
    hasMenu: ({ context, event }) => startSettings(context, event).menu !== null,
    choiceGoesOn: ({ context, event }) => matchInput(context, event)?.choice.next !== undefined,
    choiceExits: ({ context, event }) => matchInput(context, event)?.choice.exit !== undefined,
    blankSpeech: ({ event }) => isBlankSpeech(event),
    canRetry: ({ context }) => context.attempts < currentNode(context).node.retries,
    /** A queue exit with a failover offer in the menu: ask the edge whether anyone can take the call first. */
    checksStaffing: ({ context }) => Boolean(context.menu?.failover) && context.exit !== null && 'queue' in context.exit,
    acceptsFailover: ({ context, event }) => event.type === 'dtmf' && event.digit === context.menu?.failover?.dtmf,
    canRetryOffer: ({ context }) => context.attempts < (context.menu?.failover?.retries ?? 0),
  },
  actions: {
    play: emit(({ context }) => tell(`call/${context.callId}`, { type: 'ivr.play', prompt: context.prompt, language: context.language })),
    askStaffing: emit(({ context }) => tell(`call/${context.callId}`, { type: 'ivr.staffing', queue: context.exit && 'queue' in context.exit ? context.exit.queue : null })),
    offer: assign(({ context }) => ({ node: null, prompt: offerPrompt(context), attempts: 0 })),
    retryOffer: assign(({ context }) => ({ attempts: context.attempts + 1 })),
    takeFailover: assign(({ context, event }) => ({
      exit: { failover: context.menu!.failover!.channel },
      path: [...context.path, { node: FAILOVER_NODE, via: 'dtmf' as const, input: event.type === 'dtmf' ? event.digit : '' }],
    })),
    routed: emit(({ context }) =>
      tell(`conversation/${context.callId}`, { type: 'ivr.done', exit: context.exit, path: context.path, language: context.language }),
    ),
    begin: assign(({ context, event }) => {
      const { menu, vip, vipExit } = startSettings(context, event);
      if (!menu) throw new Error(`ivr ${context.callId}: start without a menu`);
      return { menu, vip, vipExit, node: menu.start, prompt: menu.nodes[menu.start].prompt, attempts: 0, language: menu.language };
    }),
    vipExit: assign(({ context, event }) => {
      const { menu, vip, vipExit } = startSettings(context, event);
      return { menu, vip, vipExit, exit: vipExit, language: menu?.language ?? context.language };
    }),
    noMenu: assign({ exit: () => NO_MENU_EXIT }),
    goNext: assign(({ context, event }) => {
      const m = matchInput(context, event);
      const { menu } = currentNode(context);
      if (m?.choice.next === undefined) throw new Error(`ivr ${context.callId}: no next node for ${event.type}`);
      return {
        node: m.choice.next,
        prompt: menu.nodes[m.choice.next].prompt,
        attempts: 0,
        path: [...context.path, m.step],
        language: m.choice.language ?? context.language,
      };
    }),
    takeExit: assign(({ context, event }) => {
      const m = matchInput(context, event);
      if (m?.choice.exit === undefined) throw new Error(`ivr ${context.callId}: no exit for ${event.type}`);
      return { exit: m.choice.exit, path: [...context.path, m.step], language: m.choice.language ?? context.language };
    }),
    retryNoInput: assign(({ context }) => {
      const { node } = currentNode(context);
      return { attempts: context.attempts + 1, prompt: node.noInputPrompt ?? node.prompt };
    }),
    retryInvalid: assign(({ context }) => {
      const { node } = currentNode(context);
      return { attempts: context.attempts + 1, prompt: node.invalidPrompt ?? node.prompt };
    }),
    fallback: assign(({ context }) => ({ attempts: context.attempts + 1, exit: currentNode(context).menu.fallback ?? DEFAULT_FALLBACK })),
  },
}).createMachine({
  id: 'ivr',
  context: ({ input }) => ({
    callId: input.callId,
    menu: input.menu ?? null,
    vip: input.vip ?? false,
    vipExit: input.vipExit ?? null,
    node: null,
    prompt: null,
    attempts: 0,
    path: [],
    language: input.menu?.language ?? null,
    exit: null,
  }),
  output: ({ context }) => ({ exit: context.exit, path: context.path, language: context.language }),
  initial: 'idle',
  // No root-level handlers: the runtime steps final snapshots too, and a routed call must stay routed.
  states: {
    idle: {
      on: {
        start: [
          { guard: 'vipSkip', target: 'routing', actions: 'vipExit' },
          { guard: 'hasMenu', target: 'menu', actions: 'begin' },
          { target: 'done', actions: 'noMenu' },
        ],
        hangup: 'hungup',
        get: { actions: emit(({ context }) => reply(view('idle', context))) },
      },
    },
    menu: {
      entry: 'play',
      after: {
        nodeTimeout: [
          { guard: 'canRetry', target: 'menu', reenter: true, actions: 'retryNoInput' },
          { target: 'routing', actions: 'fallback' },
        ],
      },
      on: {
        dtmf: [
          { guard: 'choiceGoesOn', target: 'menu', reenter: true, actions: 'goNext' },
          { guard: 'choiceExits', target: 'routing', actions: 'takeExit' },
          { guard: 'canRetry', target: 'menu', reenter: true, actions: 'retryInvalid' },
          { target: 'routing', actions: 'fallback' },
        ],
        speech: [
          { guard: and(['blankSpeech', 'canRetry']), target: 'menu', reenter: true, actions: 'retryNoInput' },
          { guard: 'blankSpeech', target: 'routing', actions: 'fallback' },
          { guard: 'choiceGoesOn', target: 'menu', reenter: true, actions: 'goNext' },
          { guard: 'choiceExits', target: 'routing', actions: 'takeExit' },
          { guard: 'canRetry', target: 'menu', reenter: true, actions: 'retryInvalid' },
          { target: 'routing', actions: 'fallback' },
        ],
        hangup: 'hungup',
        get: { actions: emit(({ context }) => reply(view('menu', context))) },
      },
    },
    /** An exit was chosen (transient): a queue exit asks first whether anyone can take the call, when the menu offers failover. */
    routing: {
      always: [{ guard: 'checksStaffing', target: 'checking' }, { target: 'done' }],
    },
    /** Waiting for the edge's `staffed` / `unstaffed`; no answer in time queues the caller anyway. */
    checking: {
      entry: 'askStaffing',
      after: { staffingTimeout: 'done' },
      on: {
        staffed: 'done',
        unstaffed: { target: 'offering', actions: 'offer' },
        hangup: 'hungup',
        get: { actions: emit(({ context }) => reply(view('checking', context))) },
      },
    },
    /** The failover offer plays; its key moves the caller to the other channel, anything else keeps the queue exit. */
    offering: {
      entry: 'play',
      after: {
        offerTimeout: [{ guard: 'canRetryOffer', target: 'offering', reenter: true, actions: 'retryOffer' }, { target: 'done' }],
      },
      on: {
        dtmf: [
          { guard: 'acceptsFailover', target: 'done', actions: 'takeFailover' },
          { guard: 'canRetryOffer', target: 'offering', reenter: true, actions: 'retryOffer' },
          { target: 'done' },
        ],
        hangup: 'hungup',
        get: { actions: emit(({ context }) => reply(view('offering', context))) },
      },
    },
    /** Routed: `exit` says where to (a queue with attributes, or a failover channel). */
    done: { type: 'final', entry: 'routed' },
    hungup: { type: 'final' },
  },
});

export const ivrKind = defineKind({
  name: 'ivr',
  machine: ivrMachine,
  version: 1,
  events: IvrEventSchema,
  // The runtime knows only the actor id (= the call id); the menu comes with `start`.
  input: (id: string): IvrInput => ({ callId: id }),
});
