// The administrators' users page: every user, create one (role, queues, skills, initial password),
// change a role, disable or enable, delete. The server enforces who may (admins only, 403 otherwise).
import { useEffect, useState } from 'hono/jsx/dom';
import { api } from './api.ts';
import { fill, type Words } from './i18n.ts';

type Role = 'agent' | 'supervisor' | 'admin';
const ROLES: Role[] = ['agent', 'supervisor', 'admin'];
interface UserRow {
  id: string;
  name: string;
  role: Role;
  queues: string[];
  skills: Record<string, number>;
  disabled: boolean;
}

const list = (s: FormDataEntryValue | null) => String(s ?? '').split(',').map((x) => x.trim()).filter(Boolean);
/** "en:2, zh:1" → { en: 2, zh: 1 }; a skill without a level is level 1. */
const skillsOf = (s: FormDataEntryValue | null) => Object.fromEntries(list(s).map((x) => {
  const [k, n] = x.split(':').map((y) => y.trim());
  return [k, n === undefined ? 1 : Number(n)];
}));

export function Users({ t, me }: { t: Words; me: string }) {
  const [users, setUsers] = useState<UserRow[]>([]);
  const [error, setError] = useState('');
  const [note, setNote] = useState('');
  const load = () => api<{ users: UserRow[] }>('/api/users').then((r) => setUsers(r.users), (e: Error) => setError(e.message));
  useEffect(() => void load(), []);
  const act = (fn: () => Promise<unknown>, done: string) => fn().then(() => {
    setError('');
    setNote(done);
    return load();
  }, (e: Error) => {
    setNote('');
    setError(e.message);
  });
  const create = (e: Event) => {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const f = new FormData(form);
    const body = { id: String(f.get('id') ?? ''), name: String(f.get('name') ?? '') || undefined, role: f.get('role'), password: f.get('password'), queues: list(f.get('queues')), skills: skillsOf(f.get('skills')) };
    void act(async () => {
      await api('/api/users', body);
      form.reset();
    }, `${t.saved}: ${body.id}`);
  };
  const patch = (id: string, change: Record<string, unknown>) => act(() => api(`/api/users/${id}`, change, { method: 'PATCH' }), `${t.saved}: ${id}`);
  const remove = (id: string) => {
    if (confirm(fill(t.confirmDelete, { id }))) void act(() => api(`/api/users/${id}`, undefined, { method: 'DELETE' }), `${t.delete}: ${id}`);
  };
  return (
    <section class="board" aria-labelledby="users-title">
      <h2 id="users-title">{t.users}</h2>
      <table>
        <thead><tr><th scope="col">{t.userId}</th><th scope="col">{t.name}</th><th scope="col">{t.role}</th><th scope="col">{t.queues}</th><th scope="col">{t.skills}</th><th scope="col">{t.status}</th><th scope="col">{t.actions}</th></tr></thead>
        <tbody>
          {users.map((u) => (
            <tr key={u.id} data-user={u.id} data-role={u.role} data-disabled={String(u.disabled)}>
              <td>{u.id}</td>
              <td>{u.name}</td>
              <td>
                <select aria-label={fill(t.changeRoleOf, { id: u.id })} value={u.role} disabled={u.id === me} onChange={(e: Event) => void patch(u.id, { role: (e.target as HTMLSelectElement).value })}>
                  {ROLES.map((r) => <option value={r}>{t[`roles_${r}`]}</option>)}
                </select>
              </td>
              <td>{u.queues.join(', ')}</td>
              <td>{Object.entries(u.skills).map(([k, n]) => `${k}:${n}`).join(', ')}</td>
              <td>{u.disabled ? t.disabled : t.enabled}</td>
              <td>
                {u.id !== me && (
                  <div class="row" style="margin:0">
                    <button type="button" class="secondary" data-action="toggle" onClick={() => void patch(u.id, { disabled: !u.disabled })}>{u.disabled ? t.enable : t.disable}</button>
                    <button type="button" class="secondary" data-action="delete" onClick={() => remove(u.id)}>{t.delete}</button>
                  </div>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {note && <p role="status">{note}</p>}
      {error && <p class="error" role="alert">{error}</p>}
      <form onSubmit={create} aria-labelledby="new-user-title" class="form-grid">
        <h3 id="new-user-title">{t.createUser}</h3>
        <label for="new-user-id">{t.userId}</label>
        <input id="new-user-id" name="id" required pattern="[a-z0-9][a-z0-9_\-]{1,31}" autocomplete="off" />
        <label for="new-user-name">{t.name}</label>
        <input id="new-user-name" name="name" autocomplete="off" />
        <label for="new-user-role">{t.role}</label>
        <select id="new-user-role" name="role">
          {ROLES.map((r) => <option value={r}>{t[`roles_${r}`]}</option>)}
        </select>
        <label for="new-user-queues">{t.queuesField}</label>
        <input id="new-user-queues" name="queues" value="support" />
        <label for="new-user-skills">{t.skills}</label>
        <input id="new-user-skills" name="skills" value="en:1, zh:1" />
        <label for="new-user-password">{t.initialPassword}</label>
        <input id="new-user-password" name="password" type="password" required minLength={10} autocomplete="new-password" />
        <div class="row">
          <button type="submit">{t.createUser}</button>
        </div>
      </form>
    </section>
  );
}
