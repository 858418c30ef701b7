// Canned responses as supervisors and admins keep them (KV cc_canned): add or replace one by its id,
// delete one. Agents pick them in the reply box.
import { useEffect, useState } from 'hono/jsx/dom';
import { api } from './api.ts';
import type { Words } from './i18n.ts';

export interface Canned {
  id: string;
  title: string;
  text: string;
  lang?: 'en' | 'zh-CN';
}

export function CannedEditor({ t }: { t: Words }) {
  const [items, setItems] = useState<Canned[]>([]);
  const [error, setError] = useState('');
  const load = () => api<{ canned: Canned[] }>('/api/canned').then((r) => setItems(r.canned.sort((a, b) => a.id.localeCompare(b.id))), (e: Error) => setError(e.message));
  useEffect(() => void load(), []);
  const act = (fn: () => Promise<unknown>) => fn().then(() => {
    setError('');
    return load();
  }, (e: Error) => setError(e.message));
  const add = (e: Event) => {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const f = new FormData(form);
    void act(async () => {
      await api('/api/canned', { id: f.get('id'), title: f.get('title'), text: f.get('text'), lang: f.get('lang') || undefined });
      form.reset();
    });
  };
  return (
    <section class="board" aria-labelledby="canned-title">
      <h2 id="canned-title">{t.cannedAdmin}</h2>
      <table>
        <thead><tr><th scope="col">{t.cannedId}</th><th scope="col">{t.cannedTitle}</th><th scope="col">{t.cannedText}</th><th scope="col">{t.cannedLang}</th><th scope="col">{t.actions}</th></tr></thead>
        <tbody>
          {items.map((c) => (
            <tr key={c.id} data-canned={c.id}>
              <td>{c.id}</td><td>{c.title}</td><td>{c.text}</td><td>{c.lang ?? t.anyLang}</td>
              <td><button type="button" class="secondary" onClick={() => void act(() => api(`/api/canned/${c.id}`, undefined, { method: 'DELETE' }))}>{t.delete}</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      {error && <p class="error" role="alert">{error}</p>}
      <form onSubmit={add} aria-labelledby="new-canned-title" class="form-grid">
        <h3 id="new-canned-title">{t.add}</h3>
        <label for="canned-id">{t.cannedId}</label>
        <input id="canned-id" name="id" required pattern="[A-Za-z0-9_=\-]{1,64}" autocomplete="off" />
        <label for="canned-title-input">{t.cannedTitle}</label>
        <input id="canned-title-input" name="title" required maxLength={100} />
        <label for="canned-text">{t.cannedText}</label>
        <textarea id="canned-text" name="text" required rows={3} maxLength={5000} />
        <label for="canned-lang">{t.cannedLang}</label>
        <select id="canned-lang" name="lang">
          <option value="">{t.anyLang}</option>
          <option value="en">English</option>
          <option value="zh-CN">中文</option>
        </select>
        <div class="row">
          <button type="submit">{t.add}</button>
        </div>
      </form>
    </section>
  );
}
