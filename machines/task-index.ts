// An index beside a queue's waiting tasks, never stored: tasks by id, and tasks alike grouped so that
// routing one freed agent looks at each group's head instead of every task. It is a cache of the list
// it was built for, carried forward from the queue's previous list by what changed between them.
import { notedChanges } from '../actors/parts.ts';
import type { SharedList } from '../actors/shared-list.ts';
import { boost, workClass, type Task } from './routing.ts';

export interface TaskIndex {
  readonly list: SharedList<Task>;
  readonly byId: Map<string, Task>;
  /** Tasks with the same needs and the same boost, oldest first: within a group, an older task is never harder to place. */
  readonly groups: Map<string, Task[]>;
}

const built = new WeakMap<SharedList<Task>, TaskIndex>();
/** The latest index of each queue, to carry forward; bounded so that passivated queues fall out. */
const latest = new Map<string, TaskIndex>();
const MAX_QUEUES = 256;

const needs = new WeakMap<Task, string>();
/** What decides which agents fit a task, and how it ranks: tasks with the same key are interchangeable for routing. */
export function groupKey(t: Task): string {
  let k = needs.get(t);
  if (k === undefined) {
    k = `${workClass(t.channel)}|${t.language ?? ''}|${t.skills.map((s) => `${s.name}:${s.level}`).join(',')}|${t.excluded.join(',')}|${boost(t)}`;
    needs.set(t, k);
  }
  return k;
}

export function taskIndex(queue: string, list: SharedList<Task>): TaskIndex {
  const hit = built.get(list);
  if (hit) return hit;
  const prev = latest.get(queue);
  const index = prev ? carry(prev, list) : build(list);
  built.set(list, index);
  latest.delete(queue);
  latest.set(queue, index);
  if (latest.size > MAX_QUEUES) latest.delete(latest.keys().next().value!);
  return index;
}

function build(list: SharedList<Task>): TaskIndex {
  const index: TaskIndex = { list, byId: new Map(), groups: new Map() };
  for (const t of [...list].sort((a, b) => a.enqueuedAt - b.enqueuedAt)) add(index, t);
  return index;
}

/** The previous list's index moved onto the new list: by the changes the queue noted, else by what lies between their common head and tail. */
function carry(prev: TaskIndex, next: SharedList<Task>): TaskIndex {
  const noted = notedChanges(prev.list, next);
  // Each noted change costs a search in its group; rebuilding costs a sort of the whole list.
  if (noted && noted.length <= Math.max(64, next.length >> 3)) return moved(prev, next, noted as [string, Task | null][]);
  // No notes lead here: compare by reference what lies between the common head and tail.
  const old = prev.list.toArray();
  const list = next.toArray();
  let head = 0;
  const shorter = Math.min(old.length, list.length);
  while (head < shorter && old[head] === list[head]) head++;
  let tail = 0;
  while (tail < shorter - head && old[old.length - 1 - tail] === list[list.length - 1 - tail]) tail++;
  if (old.length - head - tail + (list.length - head - tail) > 64) return build(next);
  const changes: [string, Task | null][] = [];
  const kept = new Set(list.slice(head, list.length - tail));
  for (let i = head; i < old.length - tail; i++) if (!kept.has(old[i])) changes.push([old[i].id, null]);
  const had = new Set(old.slice(head, old.length - tail));
  for (let i = head; i < list.length - tail; i++) if (!had.has(list[i])) changes.push([list[i].id, list[i]]);
  return moved(prev, next, changes);
}

/** The previous index, changed in place for the new list. */
function moved(prev: TaskIndex, next: SharedList<Task>, changes: [string, Task | null][]): TaskIndex {
  // The previous list may be stepped again (a retried step): it gets a fresh index if so.
  built.delete(prev.list);
  const index: TaskIndex = { list: next, byId: prev.byId, groups: prev.groups };
  for (const [id, t] of changes) {
    const was = index.byId.get(id);
    if (was) remove(index, was);
    if (t) add(index, t);
  }
  return index;
}

function add(index: TaskIndex, t: Task): void {
  index.byId.set(t.id, t);
  // A task on offer waits for its agent's answer: routing a freed agent must not walk past it at a group's head.
  if (t.offer !== undefined) return;
  const key = groupKey(t);
  const g = index.groups.get(key);
  if (!g) {
    index.groups.set(key, [t]);
    return;
  }
  // Usually the newest: appended; otherwise placed by arrival.
  let i = g.length;
  while (i > 0 && g[i - 1].enqueuedAt > t.enqueuedAt) i--;
  g.splice(i, 0, t);
}

function remove(index: TaskIndex, t: Task): void {
  if (index.byId.get(t.id) === t) index.byId.delete(t.id);
  const key = groupKey(t);
  const g = index.groups.get(key);
  if (!g) return;
  // Groups are in arrival order: search by it, then look among the tasks that arrived at the same time.
  let lo = 0;
  let hi = g.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (g[mid].enqueuedAt < t.enqueuedAt) lo = mid + 1;
    else hi = mid;
  }
  let i = lo;
  while (i < g.length && g[i] !== t && g[i].enqueuedAt === t.enqueuedAt) i++;
  if (g[i] !== t) i = g.indexOf(t);
  if (i >= 0) g.splice(i, 1);
  if (!g.length) index.groups.delete(key);
}
