// Exports every engine machine (engine/kinds.ts) as
//   <name>.json  a JSON-safe machine config, in the shape Stately's editor ("import JSON") and
//                `createMachine` read, so @xstate/graph can load it too; plus the kind's `version`;
//   <name>.mmd   a Mermaid `stateDiagram-v2` diagram.
//
// `machine.definition` / `machine.toJSON()` are not usable as they are: their transitions reference
// StateNode objects, actions serialise to `null`, guards are dropped and `after` transitions are folded
// into `xstate.after.*` events. So this walks the machine's resolved StateNode tree (what `definition`
// is built from) and writes each node back in config form: function guards/actions become their names,
// the built-in action creators their type (`xstate.assign`, ...), anything anonymous `"<inline>"`.
//
// Usage: node --import tsx scripts/export-machines.ts [out-dir]   (default: machines/exported)
import { mkdirSync, realpathSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';
import type { ActorKind } from '../actors/kind.ts';
import { engineKinds } from '../engine/kinds.ts';

export const INLINE = '<inline>';
export const DEFAULT_OUT_DIR = fileURLToPath(new URL('../machines/exported', import.meta.url));

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/** A named action, or a named action with (JSON-safe) params. */
export type ActionJson = string | { type: string; params?: JsonValue };
/** A named guard (`and(a, b)` for the higher-order ones), or a named guard with params. */
export type GuardJson = string | { type: string; params?: JsonValue };

export interface TransitionJson {
  /** A sibling key, `.child`, or `#stateId`; an array only for several (parallel) targets. */
  target?: string | string[];
  guard?: GuardJson;
  actions?: ActionJson[];
  reenter?: true;
  description?: string;
  meta?: JsonValue;
}

export interface InvokeJson {
  id: string;
  src: string;
  systemId?: string;
  onDone?: TransitionJson[];
  onError?: TransitionJson[];
  onSnapshot?: TransitionJson[];
}

export interface StateJson {
  id?: string;
  type?: 'parallel' | 'final' | 'history';
  history?: 'shallow' | 'deep';
  initial?: string;
  description?: string;
  tags?: string[];
  meta?: JsonValue;
  entry?: ActionJson[];
  exit?: ActionJson[];
  invoke?: InvokeJson[];
  on?: Record<string, TransitionJson[]>;
  after?: Record<string, TransitionJson[]>;
  always?: TransitionJson[];
  onDone?: TransitionJson[];
  route?: TransitionJson;
  states?: Record<string, StateJson>;
}

export interface MachineJson extends StateJson {
  id: string;
  /** The kind's version (engine/kinds.ts), not xstate's own `version` string. */
  version: number;
}

// ---------------------------------------------------------------------------------------------------
// Names of functions

/** Names JS infers for a function written inline as a config property (`guard: () => ...`). */
const INFERRED_NAMES = new Set(['', 'anonymous', 'guard', 'actions', 'entry', 'exit', 'delay', 'target', 'src', 'input', 'output', 'params']);

type Fn = (...args: never[]) => unknown;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function functionName(f: Fn): string {
  const name = f.name.replace(/^bound /, '');
  return INFERRED_NAMES.has(name) ? INLINE : name;
}

/** `xstate.assign`, `xstate.emit`, ... for xstate's built-in action creators. */
function builtinActionType(f: Fn): string | undefined {
  const type: unknown = Reflect.get(f, 'type');
  return 'resolve' in f && typeof type === 'string' ? type : undefined;
}

/** Sub-guards of `and([...])`, `or([...])`, `not(...)`. */
function higherOrderGuards(f: Fn): unknown[] | undefined {
  const guards: unknown = Reflect.get(f, 'guards');
  return 'check' in f && Array.isArray(guards) ? guards : undefined;
}

function toList(v: unknown): unknown[] {
  return v === undefined || v === null ? [] : Array.isArray(v) ? v : [v];
}

// ---------------------------------------------------------------------------------------------------
// JSON-safe values, actions, guards

export function jsonSafe(value: unknown, seen: WeakSet<object> = new WeakSet()): JsonValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint' || typeof value === 'symbol') return value.toString();
  if (typeof value === 'function') return builtinActionType(value as Fn) ?? functionName(value as Fn);
  if (value instanceof Date) return value.toISOString();
  if (seen.has(value)) return '<circular>';
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v) => jsonSafe(v, seen));
    if (value instanceof Map) return [...value.entries()].map((e) => jsonSafe(e, seen));
    if (value instanceof Set) return [...value].map((v) => jsonSafe(v, seen));
    const out: { [key: string]: JsonValue } = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = jsonSafe(v, seen);
    return out;
  } finally {
    seen.delete(value);
  }
}

export function actionJson(action: unknown): ActionJson {
  if (typeof action === 'string') return action;
  if (typeof action === 'function') return builtinActionType(action as Fn) ?? functionName(action as Fn);
  if (isRecord(action) && typeof action.type === 'string') {
    return action.params === undefined ? action.type : { type: action.type, params: jsonSafe(action.params) };
  }
  return INLINE;
}

export function guardJson(guard: unknown): GuardJson {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const subs = higherOrderGuards(guard as Fn);
    if (subs) return `${guard.name}(${subs.map(guardLabel).join(', ')})`;
    return functionName(guard as Fn);
  }
  if (isRecord(guard) && typeof guard.type === 'string') {
    return guard.params === undefined ? guard.type : { type: guard.type, params: jsonSafe(guard.params) };
  }
  return INLINE;
}

function guardLabel(guard: unknown): string {
  const g = guardJson(guard);
  return typeof g === 'string' ? g : g.type;
}

// ---------------------------------------------------------------------------------------------------
// The transitions of one state node, by where they come from in the config

type EdgeSource =
  | { kind: 'on'; event: string }
  | { kind: 'after'; delay: string | number }
  | { kind: 'always' }
  | { kind: 'onDone' }
  | { kind: 'invoke'; id: string; on: 'onDone' | 'onError' | 'onSnapshot' }
  | { kind: 'route' };

interface Edge {
  from: EdgeSource;
  transition: AnyTransitionDefinition;
}

function edgesOf(node: AnyStateNode): Edge[] {
  const edges: Edge[] = [];
  const configOn: unknown = node.config.on;
  const invokeKeys = new Map<string, { id: string; on: 'onDone' | 'onError' | 'onSnapshot' }>();
  for (const inv of node.invoke) {
    invokeKeys.set(`xstate.done.actor.${inv.id}`, { id: inv.id, on: 'onDone' });
    invokeKeys.set(`xstate.error.actor.${inv.id}`, { id: inv.id, on: 'onError' });
    invokeKeys.set(`xstate.snapshot.${inv.id}`, { id: inv.id, on: 'onSnapshot' });
  }
  const delayed = new Set<AnyTransitionDefinition>(node.after);
  for (const [descriptor, list] of node.transitions) {
    const declared = isRecord(configOn) && Object.hasOwn(configOn, descriptor);
    const inv = invokeKeys.get(descriptor);
    for (const transition of list) {
      if (!declared && delayed.has(transition)) continue; // below, with their delays
      let from: EdgeSource;
      if (declared) from = { kind: 'on', event: descriptor };
      else if (descriptor === `xstate.done.state.${node.id}`) from = { kind: 'onDone' };
      else if (inv) from = { kind: 'invoke', ...inv };
      else if (descriptor === 'xstate.route' && !node.parent) from = { kind: 'route' };
      else from = { kind: 'on', event: descriptor };
      edges.push({ from, transition });
    }
  }
  for (const transition of node.after) {
    const delay: unknown = transition.delay;
    edges.push({ from: { kind: 'after', delay: typeof delay === 'number' || typeof delay === 'string' ? delay : INLINE }, transition });
  }
  for (const transition of node.always ?? []) edges.push({ from: { kind: 'always' }, transition });
  return edges;
}

// ---------------------------------------------------------------------------------------------------
// JSON

/** How `source`'s config would name `target`: a sibling key, `.child` or `#id`. */
function targetRef(source: AnyStateNode, target: AnyStateNode): string {
  const plain = target.key !== '' && !target.key.includes('.') && !target.key.startsWith('#');
  if (plain && target.parent === source) return `.${target.key}`;
  if (plain && source.parent && target.parent === source.parent) return target.key;
  return `#${target.id}`;
}

function transitionJson(source: AnyStateNode, t: AnyTransitionDefinition): TransitionJson {
  const out: TransitionJson = {};
  const targets: readonly AnyStateNode[] = t.target ?? [];
  if (targets.length === 1) out.target = targetRef(source, targets[0]);
  else if (targets.length > 1) out.target = targets.map((x) => targetRef(source, x));
  if (t.guard !== undefined) out.guard = guardJson(t.guard);
  const actions = t.actions.map(actionJson);
  if (actions.length > 0) out.actions = actions;
  if (t.reenter) out.reenter = true;
  if (typeof t.description === 'string') out.description = t.description;
  if (t.meta !== undefined) out.meta = jsonSafe(t.meta);
  return out;
}

/** A `route` config (XState 5.31+), written as it was declared on the state. */
function routeJson(route: unknown): TransitionJson | undefined {
  if (!isRecord(route)) return undefined;
  const out: TransitionJson = {};
  if (route.guard !== undefined) out.guard = guardJson(route.guard);
  const actions = toList(route.actions).map(actionJson);
  if (actions.length > 0) out.actions = actions;
  if (route.reenter === true) out.reenter = true;
  if (typeof route.description === 'string') out.description = route.description;
  if (route.meta !== undefined) out.meta = jsonSafe(route.meta);
  return out;
}

function push<K extends string>(map: Partial<Record<K, TransitionJson[]>>, key: K, t: TransitionJson): void {
  (map[key] ??= []).push(t);
}

export function stateJson(node: AnyStateNode): StateJson {
  const out: StateJson = {};
  // Only ids given in the config: the default ones (`machine.path.to.state`) come back by themselves.
  if (typeof node.config.id === 'string' && node.parent) out.id = node.id;
  if (node.type === 'parallel' || node.type === 'final' || node.type === 'history') out.type = node.type;
  if (node.type === 'history' && node.history) out.history = node.history;
  if (node.type === 'compound') {
    const initial = node.initial.target[0];
    if (initial) out.initial = initial.key;
  }
  if (typeof node.description === 'string') out.description = node.description;
  if (node.tags.length > 0) out.tags = [...node.tags];
  if (node.meta !== undefined) out.meta = jsonSafe(node.meta);
  // From the config: the resolved entry/exit also hold the raise/cancel that implement `after`.
  const entry = toList(node.config.entry).map(actionJson);
  if (entry.length > 0) out.entry = entry;
  const exit = toList(node.config.exit).map(actionJson);
  if (exit.length > 0) out.exit = exit;
  const route = routeJson(node.config.route);
  if (route) out.route = route;

  const invokes = new Map<string, InvokeJson>();
  for (const inv of node.invoke) {
    const src: unknown = inv.src;
    const json: InvokeJson = { id: inv.id, src: typeof src === 'string' ? src : INLINE };
    if (typeof inv.systemId === 'string') json.systemId = inv.systemId;
    invokes.set(inv.id, json);
  }

  const on: Record<string, TransitionJson[]> = {};
  const after: Record<string, TransitionJson[]> = {};
  const always: TransitionJson[] = [];
  const onDone: TransitionJson[] = [];
  for (const { from, transition } of edgesOf(node)) {
    const t = transitionJson(node, transition);
    switch (from.kind) {
      case 'on':
        push(on, from.event, t);
        break;
      case 'after':
        push(after, String(from.delay), t);
        break;
      case 'always':
        always.push(t);
        break;
      case 'onDone':
        onDone.push(t);
        break;
      case 'invoke': {
        const inv = invokes.get(from.id);
        if (inv) push(inv, from.on, t);
        break;
      }
      case 'route':
        break; // written as `route` on the state it targets
    }
  }
  if (invokes.size > 0) out.invoke = [...invokes.values()];
  if (Object.keys(on).length > 0) out.on = on;
  if (Object.keys(after).length > 0) out.after = after;
  if (always.length > 0) out.always = always;
  if (onDone.length > 0) out.onDone = onDone;

  const children = Object.values(node.states);
  if (children.length > 0) out.states = Object.fromEntries(children.map((child) => [child.key, stateJson(child)]));
  return out;
}

/** The machine as a JSON-safe config: `createMachine(machineToJson(m))` has the same states and transitions. */
export function machineToJson(machine: AnyStateMachine, version: number): MachineJson {
  const root = stateJson(machine.root);
  delete root.id;
  return { id: machine.id, version, ...root };
}

// ---------------------------------------------------------------------------------------------------
// Mermaid

const MERMAID_KEYWORDS = new Set(['state', 'note', 'end', 'as', 'direction', 'class', 'classdef', 'style', 'click', 'hide', 'scale', 'left', 'right', 'of', 'over', 'accTitle', 'accDescr'].map((k) => k.toLowerCase()));

/** Mermaid ids for every state node below the root: the key path, sanitised to [A-Za-z0-9_], unique. */
function mermaidIds(root: AnyStateNode): Map<AnyStateNode, string> {
  const ids = new Map<AnyStateNode, string>();
  const used = new Set<string>();
  const visit = (node: AnyStateNode): void => {
    for (const child of Object.values(node.states)) {
      let base = child.path.map((k) => k.replace(/[^A-Za-z0-9_]/g, '_')).join('_');
      if (base === '' || /^[0-9]/.test(base) || MERMAID_KEYWORDS.has(base.toLowerCase())) base = `s_${base}`;
      let id = base;
      for (let n = 2; used.has(id); n++) id = `${base}_${n}`;
      used.add(id);
      ids.set(child, id);
      visit(child);
    }
  };
  visit(root);
  return ids;
}

/** Label text Mermaid will not misread (no HTML, entity codes, statement separators or braces). */
function mermaidText(s: string): string {
  return s
    .replace(/[\r\n]+/g, ' ')
    .replace(/[<>]/g, '')
    .replace(/#/g, '')
    .replace(/;/g, ',')
    .replace(/"/g, "'")
    .replace(/\{/g, '(')
    .replace(/\}/g, ')')
    .trim();
}

function edgeLabel({ from, transition }: Edge): string {
  let label: string;
  switch (from.kind) {
    case 'on':
      label = from.event;
      break;
    case 'after':
      label = `after ${typeof from.delay === 'number' ? `${from.delay}ms` : from.delay}`;
      break;
    case 'always':
      label = 'always';
      break;
    case 'onDone':
      label = 'done';
      break;
    case 'invoke':
      label = `${from.on === 'onDone' ? 'done' : from.on === 'onError' ? 'error' : 'snapshot'}.${from.id}`;
      break;
    case 'route':
      label = 'route';
      break;
  }
  if (transition.guard !== undefined) label += ` [${guardLabel(transition.guard)}]`;
  return mermaidText(label);
}

function ancestors(node: AnyStateNode): AnyStateNode[] {
  const out: AnyStateNode[] = [];
  for (let n: AnyStateNode | undefined = node; n; n = n.parent) out.push(n);
  return out;
}

/** The deepest state node that contains both (either may be it). */
function commonAncestor(a: AnyStateNode, b: AnyStateNode): AnyStateNode {
  const ofB = new Set(ancestors(b));
  return ancestors(a).find((n) => ofB.has(n)) ?? a.machine.root;
}

/** The ancestor-or-self of `node` that is a direct child of `block`. */
function childOn(block: AnyStateNode, node: AnyStateNode): AnyStateNode {
  return ancestors(node).find((n) => n.parent === block) ?? node;
}

function relativePath(block: AnyStateNode, node: AnyStateNode): string {
  return node.path.slice(block.path.length).join('.');
}

export function machineToMermaid(machine: AnyStateMachine): string {
  const root = machine.root;
  const ids = mermaidIds(root);
  const idOf = (n: AnyStateNode): string => ids.get(n) ?? '[*]';
  const referenced = new Set<AnyStateNode>();
  // Lines that go inside the block of a compound/parallel state node (the root's block is the diagram).
  const transitionLines = new Map<AnyStateNode, string[]>();
  const internalLines = new Map<AnyStateNode, string[]>();
  const add = (map: Map<AnyStateNode, string[]>, block: AnyStateNode, line: string): void => {
    const lines = map.get(block);
    if (lines) lines.push(line);
    else map.set(block, [line]);
  };

  const collect = (node: AnyStateNode): void => {
    for (const edge of edgesOf(node)) {
      const label = edgeLabel(edge);
      const targets: readonly AnyStateNode[] = edge.transition.target ?? [];
      if (targets.length === 0) {
        // No target: actions only, the state stays. Kept as a comment, not drawn.
        add(internalLines, node.parent ?? root, `%% ${node.parent ? idOf(node) : `(${mermaidText(machine.id)})`} : ${label} (no target)`);
        continue;
      }
      // A root handler fires in whichever top-level state the machine is in: draw it from each.
      const sources = node.parent ? [node] : Object.values(root.states).filter((s) => s.type !== 'final');
      for (const source of sources) {
        for (const target of targets) {
          if (!target.parent) {
            add(internalLines, source.parent ?? root, `%% ${idOf(source)} : ${label} (targets the machine root)`);
            continue;
          }
          // Mermaid cannot join states inside different composite states: such a transition is drawn
          // between their ancestors in the common block, and the label says which states it joins.
          const block = commonAncestor(source.parent ?? root, target.parent);
          const from = childOn(block, source);
          const to = childOn(block, target);
          const inner = [from !== source ? `from ${relativePath(block, source)}` : '', to !== target ? `to ${relativePath(block, target)}` : ''].filter(Boolean);
          referenced.add(from);
          referenced.add(to);
          add(transitionLines, block, `${idOf(from)} --> ${idOf(to)} : ${inner.length > 0 ? mermaidText(`${label} (${inner.join(' ')})`) : label}`);
        }
      }
    }
    for (const child of Object.values(node.states)) collect(child);
  };
  collect(root);

  const block = (node: AnyStateNode, depth: number): string[] => {
    const pad = '    '.repeat(depth);
    const lines: string[] = [];
    const children = Object.values(node.states);
    const declare = (child: AnyStateNode): void => {
      const id = idOf(child);
      const label = child.type === 'history' ? (child.history === 'deep' ? 'H*' : 'H') : child.key;
      const nested = Object.keys(child.states).length > 0;
      if (label !== id) lines.push(`${pad}state "${mermaidText(label)}" as ${id}`);
      if (nested) {
        lines.push(`${pad}state ${id} {`);
        lines.push(...block(child, depth + 1));
        lines.push(`${pad}}`);
      } else if (label === id && !referenced.has(child) && child.type !== 'final' && node.initial?.target[0] !== child) {
        lines.push(`${pad}${id}`);
      }
    };
    if (node.type === 'parallel') {
      children.forEach((child, i) => {
        if (i > 0) lines.push(`${pad}--`);
        declare(child);
      });
    } else {
      children.forEach(declare);
      const initial = node.type === 'compound' ? node.initial.target[0] : undefined;
      if (initial) lines.push(`${pad}[*] --> ${idOf(initial)}`);
    }
    for (const line of transitionLines.get(node) ?? []) lines.push(pad + line);
    for (const child of children) if (child.type === 'final') lines.push(`${pad}${idOf(child)} --> [*]`);
    for (const line of internalLines.get(node) ?? []) lines.push(pad + line);
    return lines;
  };

  return ['stateDiagram-v2', ...block(root, 1), ''].join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Export

export interface KindExport {
  name: string;
  json: string;
  mermaid: string;
}

async function exportKinds(dir: string, kinds: readonly ActorKind[]): Promise<KindExport[]> {
  const out = resolve(dir);
  const names = new Set<string>();
  for (const kind of kinds) {
    if (!/^[A-Za-z0-9_.-]+$/.test(kind.name) || kind.name.startsWith('.')) throw new Error(`kind name ${JSON.stringify(kind.name)} is not usable as a file name`);
    if (names.has(kind.name)) throw new Error(`kind ${JSON.stringify(kind.name)} is registered twice`);
    names.add(kind.name);
  }
  try {
    mkdirSync(out, { recursive: true });
  } catch (err) {
    throw new Error(`cannot create output folder ${out}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const written: KindExport[] = [];
  for (const kind of kinds) {
    try {
      const json = join(out, `${kind.name}.json`);
      const mermaid = join(out, `${kind.name}.mmd`);
      await writeFile(json, `${JSON.stringify(machineToJson(kind.machine, kind.version), null, 2)}\n`);
      await writeFile(mermaid, machineToMermaid(kind.machine));
      written.push({ name: kind.name, json, mermaid });
    } catch (err) {
      throw new Error(`kind ${JSON.stringify(kind.name)}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return written;
}

/** Writes `<name>.json` and `<name>.mmd` for every engine kind into `dir`; returns the files written. */
export async function exportMachines(dir: string, kinds: readonly ActorKind[] = engineKinds): Promise<string[]> {
  return (await exportKinds(dir, kinds)).flatMap((k) => [k.json, k.mermaid]);
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  if (import.meta.url === pathToFileURL(resolve(entry)).href) return true;
  try {
    return realpathSync(fileURLToPath(import.meta.url)) === realpathSync(entry);
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const dir = process.argv[2] ? resolve(process.argv[2]) : DEFAULT_OUT_DIR;
  try {
    for (const k of await exportKinds(dir, engineKinds)) console.log(`${k.name}: ${k.json} ${k.mermaid}`);
  } catch (err) {
    console.error(`export-machines: failed to export into ${dir}: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}

if (isEntryPoint()) void main();
