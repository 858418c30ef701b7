// The machine exporter: JSON that xstate and @xstate/graph read back, and Mermaid state diagrams.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMachine, type AnyStateMachine } from 'xstate';
import { toDirectedGraph, type DirectedGraphNode } from '@xstate/graph';
import { engineKinds } from '../engine/kinds.ts';
import { exportMachines, machineToJson, machineToMermaid } from './export-machines.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const testData = join(root, '.test-data');

/** One transition line of the diagram each kind must have. */
const KNOWN_LINES: Record<string, string[]> = {
  customer: ['[*] --> active', 'active --> merged : merge.into'],
  agent: ['[*] --> offline', 'offline --> available : login', 'available --> wrapup : task.released [voiceEnded]'],
  conversation: ['[*] --> new', 'queued --> offered : offered', 'closed --> queued : customer.message [withinReopenWindow]'],
  queue: ['[*] --> idle', 'idle --> waiting : always [hasTasks]', 'waiting --> waiting : after tick', 'waiting --> idle : always [inline]'],
  ivr: ['[*] --> idle', 'menu --> menu : after nodeTimeout [canRetry]', 'menu --> menu : speech [and(blankSpeech, canRetry)]', 'done --> [*]', 'hungup --> [*]'],
};

/** Every line of a diagram is a header, a declaration, a block edge, a transition or a comment. */
const ID = '[A-Za-z0-9_]+';
const LINE = new RegExp(
  [
    '^stateDiagram-v2$',
    `^ *(${ID}|\\[\\*\\]) --> (${ID}|\\[\\*\\])( : [^;#<>{}"]+)?$`,
    `^ *state "[^"]+" as ${ID}$`,
    `^ *state ${ID} \\{$`,
    '^ *\\}$',
    '^ *--$',
    `^ *${ID}$`,
    '^ *%%.*$',
  ].join('|'),
);

function readJson(file: string): Record<string, unknown> {
  const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
  assert.ok(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed), `${file} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

/** The graph's edges as `source -> target : event`, sorted: what Stately's tools draw. */
function edges(machine: AnyStateMachine): string[] {
  const out: string[] = [];
  const visit = (node: DirectedGraphNode): void => {
    for (const e of node.edges) out.push(`${e.source.id} -> ${e.target.id} : ${e.label.text} ${e.transition.reenter ? '(reenter)' : ''}`);
    node.children.forEach(visit);
  };
  visit(toDirectedGraph(machine));
  return out.sort();
}

function reimport(json: unknown): AnyStateMachine {
  return createMachine(JSON.parse(JSON.stringify(json)) as Parameters<typeof createMachine>[0]);
}

describe('export-machines', () => {
  let dir = '';
  let files: string[] = [];

  before(async () => {
    mkdirSync(testData, { recursive: true });
    dir = mkdtempSync(join(testData, 'export-machines-'));
    files = await exportMachines(dir);
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('writes a .json and a .mmd for every engine kind', () => {
    assert.deepEqual(engineKinds.map((k) => k.name).sort(), Object.keys(KNOWN_LINES).sort());
    const expected = engineKinds.flatMap((k) => [join(dir, `${k.name}.json`), join(dir, `${k.name}.mmd`)]);
    assert.deepEqual(files, expected);
    for (const f of files) assert.ok(existsSync(f), `${f} missing`);
  });

  for (const name of Object.keys(KNOWN_LINES)) {
    describe(name, () => {
      const kind = () => {
        const k = engineKinds.find((x) => x.name === name);
        assert.ok(k, `kind ${name} is not registered`);
        return k;
      };

      test('JSON parses and has the id, version, initial and every top-level state', () => {
        const { machine, version } = kind();
        const json = readJson(join(dir, `${name}.json`));
        assert.equal(json.id, machine.id);
        assert.equal(json.version, version);
        assert.equal(json.initial, machine.root.initial.target[0].key);
        assert.equal(json.initial, machine.config.initial);
        const states = json.states;
        assert.ok(typeof states === 'object' && states !== null);
        for (const key of Object.keys(machine.root.states)) assert.ok(Object.hasOwn(states, key), `state ${key} missing`);
        assert.deepEqual(Object.keys(states), Object.keys(machine.root.states));
      });

      test('JSON holds no functions or placeholders of them, only names', () => {
        const text = readFileSync(join(dir, `${name}.json`), 'utf8');
        assert.doesNotMatch(text, /=>|function|\[object Object\]|null/);
      });

      test('JSON loads back into xstate with the same graph for @xstate/graph', () => {
        const { machine } = kind();
        const reloaded = reimport(readJson(join(dir, `${name}.json`)));
        assert.deepEqual(edges(reloaded), edges(machine));
        assert.deepEqual(Object.keys(reloaded.root.states), Object.keys(machine.root.states));
      });

      test('Mermaid is a stateDiagram-v2 with the known transitions and sanitised ids', () => {
        const text = readFileSync(join(dir, `${name}.mmd`), 'utf8');
        assert.ok(text.startsWith('stateDiagram-v2\n'), 'must start with stateDiagram-v2');
        const lines = text.split('\n').filter((l) => l.trim() !== '');
        for (const known of KNOWN_LINES[name]) assert.ok(lines.some((l) => l.trim() === known), `missing line: ${known}\n${text}`);
        for (const line of lines) assert.match(line, LINE);
      });
    });
  }

  test('conversation JSON keeps guards, actions and targets by name', () => {
    const json = machineToJson(engineKinds.find((k) => k.name === 'conversation')!.machine, 1);
    assert.deepEqual(json.states?.closed.on?.['customer.message'], [
      { target: 'queued', guard: 'withinReopenWindow', actions: ['publishReopened', 'customerSpoke', 'restartFirstSla', 'xstate.assign', 'xstate.emit'] },
    ]);
    assert.deepEqual(json.states?.queued.entry, ['enqueue', 'xstate.emit']);
  });

  test('queue and ivr JSON keep `after` delays, `always` and final states; the after-timers are not doubled in entry', () => {
    const queue = machineToJson(engineKinds.find((k) => k.name === 'queue')!.machine, 1);
    assert.deepEqual(queue.states?.waiting, {
      after: { tick: [{ target: 'waiting', actions: ['onTick', 'route'], reenter: true }] },
      always: [{ target: 'idle', guard: '<inline>' }],
    });
    // An arrival adds its task without leaving waiting (re-entering it would restart the tick); idle moves on by itself.
    assert.deepEqual(queue.on?.['task.add'].map((t) => t.target), [undefined, undefined]);
    assert.deepEqual(queue.states?.idle, { always: [{ target: 'waiting', guard: 'hasTasks' }] });
    const ivr = machineToJson(engineKinds.find((k) => k.name === 'ivr')!.machine, 1);
    assert.deepEqual(Object.keys(ivr.states?.menu.after ?? {}), ['nodeTimeout']);
    assert.equal(ivr.states?.done.type, 'final');
    assert.deepEqual(ivr.states?.done.entry, ['routed']);
  });

  test('nested, parallel, final and numeric delays: JSON round-trips and Mermaid nests blocks', () => {
    const isReady = () => true;
    const machine = createMachine({
      id: 'demo',
      initial: 'idle',
      states: {
        idle: { on: { GO: { target: 'busy', guard: isReady }, 'go-both': 'both' } },
        busy: {
          initial: 'step-1',
          states: { 'step-1': { after: { 500: 'step2' } }, step2: { type: 'final' } },
          onDone: 'idle',
        },
        both: {
          type: 'parallel',
          states: {
            left: { initial: 'a', states: { a: { on: { NEXT: 'b' } }, b: {} } },
            right: { initial: 'a', states: { a: { on: { NEXT: 'b' } }, b: { on: { BACK: '#demo.idle' } } } },
          },
        },
      },
    });
    const json = machineToJson(machine, 7);
    assert.equal(json.version, 7);
    assert.deepEqual(json.states?.idle.on?.GO, [{ target: 'busy', guard: 'isReady' }]);
    assert.deepEqual(json.states?.busy.states?.['step-1'].after, { 500: [{ target: 'step2' }] });
    assert.deepEqual(json.states?.busy.onDone, [{ target: 'idle' }]);
    assert.deepEqual(json.states?.both.states?.right.states?.b.on?.BACK, [{ target: '#demo.idle' }]);
    assert.deepEqual(edges(reimport(json)), edges(machine));

    const mmd = machineToMermaid(machine);
    const lines = mmd.split('\n').map((l) => l.trim());
    for (const known of [
      '[*] --> idle',
      'idle --> busy : GO [isReady]',
      'idle --> both : go-both',
      'state busy {',
      'state "step-1" as busy_step_1',
      '[*] --> busy_step_1',
      'busy_step_1 --> busy_step2 : after 500ms',
      'busy_step2 --> [*]',
      'busy --> idle : done',
      'state both {',
      '--',
      'both_left_a --> both_left_b : NEXT',
      // Mermaid cannot join inner states of different composites: drawn from the composite, labelled.
      'both --> idle : BACK (from both.right.b)',
    ]) {
      assert.ok(lines.includes(known), `missing line: ${known}\n${mmd}`);
    }
    for (const line of mmd.split('\n').filter((l) => l.trim() !== '')) assert.match(line, LINE);
    // `step2 --> [*]` sits inside busy's block, not at the top level.
    const busyBlock = mmd.slice(mmd.indexOf('state busy {'), mmd.indexOf('}', mmd.indexOf('state busy {')));
    assert.match(busyBlock, /busy_step2 --> \[\*\]/);
  });
});
