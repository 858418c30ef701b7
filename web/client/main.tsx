// The workspace client: Hono JSX rendering into the DOM. One screen for agents (offers, inbox,
// conversation, reply, transfer, wrap-up) and supervisors (wallboard, reports).
import { render, useEffect, useRef, useState } from 'hono/jsx/dom';
import { api } from './api.ts';
import { BrowserCall, handedOver } from './call.ts';
import { ConsultControls, ConsultRequests } from './consult.tsx';
import { CHANNEL_ICONS, fill, initialLang, STRINGS, type Lang, type Words } from './i18n.ts';
import { connectLive, type LiveFrame } from './live.ts';
import { Reports } from './reports.tsx';
import { CannedEditor, type Canned } from './canned.tsx';
import { uploadRefusal } from './upload-limits.ts';
import { Users } from './users.tsx';

interface Me {
  user: string;
  name: string;
  role: 'agent' | 'supervisor' | 'admin';
  presence: string;
  offers: { reservationId: string; task: { id: string; channel: string; customer: string }; expiresAt: number }[];
}
interface Item {
  id: string;
  state: string;
  channel: string;
  customer: string;
  unread: number;
  slaDue?: number;
  breached: boolean;
  lastAt: number;
  agent?: string;
}
interface Message {
  id: string;
  conversationId: string;
  channel: string;
  /** 'system': written by the engine (a call's recording, its transcript). */
  direction: 'in' | 'out' | 'system';
  author?: string;
  text?: string;
  at: number;
  attachments: { objectKey: string; name?: string }[];
}
interface Detail {
  conversation: Item & { deliveries: Record<string, { state: string }>; transfers: { to: string; note: string }[] };
  customer: {
    customer: { id: string; name?: string; phone?: string; email?: string; address?: string; tags: string[] };
    identities: { id: string; channel: string; handle: string }[];
    messages: Message[];
  };
}

/** The channel an identity of the graph is written to (edges/inbound.ts IDENTITY_OF, backwards; phone → SMS). */
const REACHED_ON: Record<string, string> = { phone: 'sms', email: 'email', web: 'webchat', app: 'app', wecom: 'wecom', wechat_openid: 'wechat', dingtalk: 'dingtalk', douyin: 'douyin', xiaohongshu: 'xiaohongshu' };

const listeners = new Set<(f: LiveFrame) => void>();
const onLive = (fn: (f: LiveFrame) => void) => {
  listeners.add(fn);
  return () => void listeners.delete(fn);
};

/** Calls fn at most once per `ms`, with the latest call winning. */
function debounce(fn: () => void, ms: number) {
  let t: ReturnType<typeof setTimeout> | undefined;
  return () => {
    clearTimeout(t);
    t = setTimeout(fn, ms);
  };
}

function useNow(every = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const i = setInterval(() => setNow(Date.now()), every);
    return () => clearInterval(i);
  }, []);
  return now;
}

function Login({ t, onIn }: { t: Words; onIn: () => void }) {
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    try {
      await api('/api/login', { user: f.get('user'), password: f.get('password') });
      onIn();
    } catch (x) {
      setError((x as Error).message);
    }
  };
  return (
    <form class="login" onSubmit={submit} aria-labelledby="login-title">
      <h1 id="login-title">{t.title}</h1>
      <label for="login-user">{t.user}</label>
      <input id="login-user" name="user" autocomplete="username" required />
      <label for="login-password">{t.password}</label>
      <input id="login-password" name="password" type="password" autocomplete="current-password" required />
      <div class="row">
        <button type="submit">{t.signIn}</button>
      </div>
      {error && <p class="error" role="alert">{error}</p>}
    </form>
  );
}

function Offers({ t, me, onChange }: { t: Words; me: Me; onChange: () => void }) {
  // The ticking clock re-renders each second; an offer that just arrived is measured against this instant.
  const now = Math.max(useNow(), Date.now());
  // An offer whose countdown ran out leaves at once; the agent actor's timer re-queues the task.
  const open = me.offers.filter((o) => o.expiresAt > now);
  if (!open.length) return <></>;
  return (
    <section class="offers" aria-label={t.offers}>
      <h2 class="sr">{t.offers}</h2>
      {open.map((o) => (
        <div class="row" key={o.reservationId} data-offer={o.reservationId}>
          <span aria-hidden="true">{CHANNEL_ICONS[o.task.channel] ?? '•'}</span>
          <strong>{o.task.channel}</strong>
          <span class="muted" role="timer">{fill(t.expiresIn, { s: Math.max(0, Math.ceil((o.expiresAt - now) / 1000)) })}</span>
          <button type="button" onClick={() => api(`/api/offers/${o.reservationId}/accept`, {}).then(onChange)}>{t.accept}</button>
          <button type="button" class="secondary" onClick={() => api(`/api/offers/${o.reservationId}/reject`, {}).then(onChange)}>{t.reject}</button>
        </div>
      ))}
    </section>
  );
}

function Inbox({ t, items, selected, onPick }: { t: Words; items: Item[]; selected?: string; onPick: (id: string) => void }) {
  const now = useNow();
  // Conversations in wrap-up leave the open list for their own, below it, until their disposition closes them.
  const open = items.filter((c) => c.state !== 'wrapup');
  const wrapping = items.filter((c) => c.state === 'wrapup');
  return (
    <nav class="inbox" aria-label={t.inbox}>
      <h2 class="sr">{t.inbox}</h2>
      {!open.length && <p class="muted" style="padding:12px">{t.noConversations}</p>}
      <ul data-list="open">
        {open.map((c) => (
          <li key={c.id} tabIndex={0} aria-current={c.id === selected ? 'true' : 'false'} data-conversation={c.id} onClick={() => onPick(c.id)} onKeyDown={(e: KeyboardEvent) => e.key === 'Enter' && onPick(c.id)}>
            <span aria-label={c.channel} role="img">{CHANNEL_ICONS[c.channel] ?? '•'}</span> <strong>{c.customer.slice(0, 10)}</strong> <span class="muted">{c.state}</span>{' '}
            {c.unread > 0 && <span class="badge" aria-label={`${c.unread} ${t.unread}`}>{c.unread}</span>}
            <div class={c.breached ? 'sla-breach' : 'muted'}>{c.breached ? t.slaBreached : c.slaDue ? fill(t.slaIn, { s: Math.max(0, Math.round((c.slaDue - now) / 1000)) }) : ''}</div>
          </li>
        ))}
      </ul>
      {wrapping.length > 0 && (
        <section aria-labelledby="wrapup-list-title">
          <h3 id="wrapup-list-title" style="margin:12px 12px 4px;font-size:15px">{t.inWrapup}</h3>
          <ul data-list="wrapup">
            {wrapping.map((c) => (
              <li key={c.id} tabIndex={0} aria-current={c.id === selected ? 'true' : 'false'} data-conversation={c.id} data-state="wrapup" onClick={() => onPick(c.id)} onKeyDown={(e: KeyboardEvent) => e.key === 'Enter' && onPick(c.id)}>
                <span aria-label={c.channel} role="img">{CHANNEL_ICONS[c.channel] ?? '•'}</span> <strong>{c.customer.slice(0, 10)}</strong> <span class="muted">{t.wrapup}</span>
              </li>
            ))}
          </ul>
        </section>
      )}
    </nav>
  );
}

/** The call controls of a voice conversation: answer (microphone on, caller heard), mute, hold, consult, hang up. */
function CallPanel({ t, id, state, self, onDone }: { t: Words; id: string; state: string; self?: string; onDone: () => void }) {
  const call = useRef<BrowserCall | null>(null);
  const [status, setStatus] = useState<'idle' | 'joining' | 'live'>('idle');
  const [muted, setMuted] = useState(false);
  const [fig, setFig] = useState({ packetsReceived: 0, packetsSent: 0, peerPacketsReceived: 0 });
  const [error, setError] = useState('');
  const held = state === 'onHold';
  useEffect(() => {
    // A warm transfer to this agent completed: the consult leg they joined is this call, already live.
    const handed = handedOver.get(id);
    if (handed) {
      handedOver.delete(id);
      call.current = handed;
      setStatus('live');
    }
    // Leaving the conversation (or the call ending: this panel unmounts) closes the browser's side.
    return () => call.current?.close();
  }, [id]);
  useEffect(() => {
    if (status !== 'live') return;
    const i = setInterval(() => call.current?.figures().then(setFig, () => {}), 1000);
    return () => clearInterval(i);
  }, [status]);
  const act = (fn: () => Promise<void>) => fn().then(() => setError(''), (x: Error) => setError(x.message));
  const answer = () => act(async () => {
    setStatus('joining');
    try {
      call.current = await BrowserCall.join(id);
      setStatus('live');
    } catch (e) {
      setStatus('idle');
      throw e;
    }
  });
  const label = status === 'live' ? (held ? t.callHeld : t.callLive) : status === 'joining' ? t.callJoining : t.callIdle;
  return (
    <section class="call" aria-label={t.voiceCall}>
      <div class="row" style="margin:0">
        <strong>📞 {t.voiceCall}</strong>
        <span role="status" data-call={status} data-held={String(held)} data-rtp-in={fig.packetsReceived} data-rtp-out={fig.packetsSent} data-peer-in={fig.peerPacketsReceived}>
          {label}{status === 'live' ? ` · ${fill(t.callAudio, { in: fig.packetsReceived, out: fig.packetsSent })}` : ''}
          {fig.peerPacketsReceived > 0 ? ` · ${fill(t.consultPeerAudio, { in: fig.peerPacketsReceived })}` : ''}
        </span>
        {status === 'idle' && <button type="button" id="call-answer" onClick={answer}>{t.answerCall}</button>}
        {status === 'live' && (
          <>
            <button type="button" class="secondary" id="call-mute" aria-pressed={muted ? 'true' : 'false'} onClick={() => act(async () => {
              await call.current!.mute(!muted);
              setMuted(!muted);
            })}>{muted ? t.unmute : t.mute}</button>
            <button type="button" class="secondary" id="call-hold" aria-pressed={held ? 'true' : 'false'} onClick={() => act(() => call.current!.hold(!held))}>{held ? t.resume : t.hold}</button>
            <button type="button" id="call-hangup" onClick={() => act(async () => {
              await call.current!.hangup();
              call.current = null;
              setStatus('idle');
            })}>{t.hangUp}</button>
          </>
        )}
      </div>
      {status === 'live' && <ConsultControls t={t} id={id} self={self} call={() => call.current} onLive={onLive} onCompleted={onDone} />}
      {status === 'live' && (
        <div class="keypad" role="group" aria-label={t.keypad}>
          {['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'].map((k) => (
            <button type="button" class="secondary" data-key={k} aria-label={fill(t.pressKey, { key: k })} onClick={() => act(() => call.current!.dtmf(k))}>{k}</button>
          ))}
        </div>
      )}
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}

function Conversation({ t, id, onDone, onRead }: { t: Words; id: string; onDone: () => void; onRead: () => void }) {
  const [d, setD] = useState<Detail | undefined>();
  const [error, setError] = useState('');
  const [dialog, setDialog] = useState<'' | 'transfer' | 'outreach'>('');
  const [dialogError, setDialogError] = useState('');
  const [note, setNote] = useState('');
  const [agents, setAgents] = useState<{ id: string; name: string }[]>([]);
  const [canned, setCanned] = useState<Canned[]>([]);
  const [files, setFiles] = useState<{ key: string; name: string; contentType: string; size: number }[]>([]);
  const reply = useRef<HTMLTextAreaElement>(null);
  const load = () => api<Detail>(`/api/conversations/${id}`).then((x) => {
    // Wrap-up is one way: an index that has not yet caught up with the actor's answer does not undo it.
    setD((was) => (was?.conversation.state === 'wrapup' && ['active', 'onHold'].includes(x.conversation.state) ? { ...x, conversation: { ...x.conversation, state: 'wrapup' } } : x));
    onRead(); // opening marks it read: the inbox badge follows
  }, (e: Error) => setError(e.message));
  useEffect(() => {
    setD(undefined);
    void load();
    api<{ canned: typeof canned }>('/api/canned').then((r) => setCanned(r.canned), () => {});
    const refresh = debounce(load, 150);
    const off = onLive((f) => {
      const c = f.conversation as { id?: string } | undefined;
      if (f.conversationId === id || c?.id === id || f.type === 'reset') refresh();
    });
    const keys = (e: KeyboardEvent) => {
      if ((e.target as HTMLElement).closest('input,textarea,select,dialog')) return;
      if (e.key === 'r') {
        e.preventDefault();
        reply.current?.focus();
      } else if (e.key === 't') {
        e.preventDefault();
        openTransfer();
      }
    };
    document.addEventListener('keydown', keys);
    return () => {
      off();
      document.removeEventListener('keydown', keys);
    };
  }, [id]);
  const openTransfer = () => {
    api<{ agents: typeof agents }>('/api/agents').then((r) => setAgents(r.agents));
    setDialogError('');
    setDialog('transfer');
  };
  const send = async (e: Event) => {
    e.preventDefault();
    const text = reply.current?.value ?? '';
    try {
      await api(`/api/conversations/${id}/reply`, { text, attachments: files });
      if (reply.current) reply.current.value = '';
      setFiles([]);
      setError('');
      await load();
    } catch (x) {
      setError((x as Error).message);
    }
  };
  const upload = async (e: Event) => {
    const input = e.target as HTMLInputElement;
    for (const f of Array.from(input.files ?? [])) {
      // Too big or not an accepted type: say so here, before sending megabytes the server would refuse.
      const refused = uploadRefusal(f);
      if (refused) {
        setError(refused.reason);
        continue;
      }
      setError('');
      const fd = new FormData();
      fd.set('file', f);
      const r = await api<{ key: string; name: string; contentType: string; size: number }>('/api/uploads', fd).catch((x: Error) => setError(x.message));
      if (r) setFiles((xs) => [...xs, r]);
    }
    input.value = '';
  };
  const submitDialog = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    try {
      if (dialog === 'transfer') {
        await api(`/api/conversations/${id}/transfer`, { to: f.get('to'), note: f.get('note') });
        setDialog('');
        onDone();
      } else {
        const [channel, identity] = String(f.get('via') ?? '').split('|');
        const r = await api<{ conversationId: string; note: string }>('/api/outreach', { customerId: d?.customer.customer.id, channel, identity, text: f.get('text') });
        setDialog('');
        setNote(fill(t.outreachDone, { id: r.conversationId, note: r.note }));
      }
      setDialogError('');
    } catch (x) {
      setDialogError((x as Error).message);
    }
  };
  const act = (fn: () => Promise<unknown>) => fn().then(() => setError(''), (x: Error) => setError(x.message));
  // Wrap-up first (the conversation leaves the open list), then the disposition closes it.
  // The answer is the actor's own state: the form shows now, whatever this node's index has seen yet.
  const startWrapUp = () => act(async () => {
    const r = await api<{ state: string }>(`/api/conversations/${id}/wrapup`, {});
    setD((x) => x && { ...x, conversation: { ...x.conversation, state: r.state } });
  });
  const closeWith = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    void act(async () => {
      await api(`/api/conversations/${id}/wrapup`, { disposition: f.get('disposition') });
      onDone();
    });
  };
  const openDialog = (which: 'outreach') => {
    setDialogError('');
    setDialog(which);
  };
  if (!d) return <section class="conv" aria-busy="true">{error && <p class="error" role="alert">{error}</p>}</section>;
  const p = d.customer.customer;
  const deliveries = d.conversation.deliveries ?? {};
  return (
    <section class="conv" aria-label={t.history} data-open={id} data-state={d.conversation.state}>
      <div class="profile">
        <div>
          <h2 style="margin:0;font-size:16px">{p.name ?? p.id}</h2>
          <span class="muted">{[p.phone, p.email, p.address].filter(Boolean).join(' · ')}</span>
        </div>
        <div>
          <strong>{t.identities}:</strong> {d.customer.identities.map((i) => `${CHANNEL_ICONS[i.channel] ?? ''} ${i.handle}`).join(', ')}
        </div>
        <div>
          <strong>{t.tags}:</strong> {p.tags.join(', ') || '—'}
        </div>
        <div class="row">
          <button type="button" class="secondary" onClick={openTransfer}>{t.transfer}</button>
          {d.conversation.state !== 'wrapup' && <button type="button" class="secondary" id="wrapup-start" onClick={startWrapUp}>{t.wrapUp}</button>}
          <button type="button" class="secondary" onClick={() => api(`/api/conversations/${id}/call`, {}).then(load, (x: Error) => setError(x.message))}>📞 {t.call}</button>
          <button type="button" class="secondary" id="outreach-open" onClick={() => openDialog('outreach')}>{t.outreach}</button>
        </div>
      </div>
      {note && <p role="status" class="muted" data-outreach-note style="margin:4px 12px">{note}</p>}
      {d.conversation.channel === 'voice' && (d.conversation.state === 'active' || d.conversation.state === 'onHold') && <CallPanel t={t} id={id} state={d.conversation.state} self={d.conversation.agent} onDone={onDone} />}
      <div class="history" role="log" aria-label={t.history}>
        {[...d.customer.messages].reverse().map((m) => {
          const state = m.direction === 'out' ? Object.entries(deliveries).find(([k]) => m.id.includes(k) || k === m.id)?.[1]?.state : undefined;
          return (
            <div key={m.id} class={`msg ${m.direction}`} data-direction={m.direction} style={m.direction === 'system' ? 'white-space:pre-line' : undefined}>
              <span aria-label={m.channel} role="img">{CHANNEL_ICONS[m.channel] ?? ''}</span> {m.text}
              {m.attachments.map((a) => {
                // A call recording (recordings/<conversation>/<rid>.opus) plays here, through its access-checked route.
                const rec = /^recordings\/([A-Za-z0-9_]+)\/([^/]+)\.opus$/.exec(a.objectKey);
                return rec ? (
                  <div>
                    <audio controls preload="none" data-recording={rec[2]} src={`/api/conversations/${rec[1]}/recordings/${encodeURIComponent(rec[2])}`} />
                  </div>
                ) : (
                  <div>
                    <a href={`/api/files?key=${encodeURIComponent(a.objectKey)}`}>📎 {a.name ?? a.objectKey.split('/').pop()}</a>
                  </div>
                );
              })}
              <div class="muted" style="font-size:13px">
                {m.author ?? ''} {new Date(m.at).toLocaleTimeString()} {m.conversationId !== `conversation:${id}` ? `(${m.conversationId.slice(13, 21)})` : ''}
                {state ? ` · ${t[state as 'sent'] ?? state}` : ''}
              </div>
            </div>
          );
        })}
      </div>
      {(() => {
        // Delivery states are kept by the reply's id, which the stored history does not carry: show the latest.
        const last = Object.values(deliveries).sort((a, b) => ((b as { at?: number }).at ?? 0) - ((a as { at?: number }).at ?? 0))[0];
        return last ? <p class="muted" role="status" data-delivery={last.state} style="margin:0 12px">{t.delivery}: {t[last.state as 'sent'] ?? last.state}</p> : null;
      })()}
      {d.conversation.state === 'wrapup' ? (
        <form class="replybox" onSubmit={closeWith} aria-labelledby="wrapup-title" data-wrapup-form>
          <h3 id="wrapup-title" style="margin:4px 0;font-size:15px">{t.inWrapup}</h3>
          <p class="muted" style="margin:0">{t.wrapUpHint}</p>
          <label for="wrapup-disposition">{t.disposition}</label>
          <input id="wrapup-disposition" name="disposition" required maxLength={200} list="dispositions" />
          <datalist id="dispositions">
            {['resolved', 'follow-up', 'no answer', 'escalated'].map((x) => <option value={x} />)}
          </datalist>
          <div class="row">
            <button type="submit">{t.closeWith}</button>
          </div>
          {error && <p class="error" role="alert">{error}</p>}
        </form>
      ) : (
      <form class="replybox" onSubmit={send}>
        <label for="reply-text">{t.replyLabel}</label>
        <textarea id="reply-text" ref={reply} rows={3} onKeyDown={(e: KeyboardEvent) => e.key === 'Enter' && (e.ctrlKey || e.metaKey) && send(e)} />
        <div class="row">
          <label for="reply-canned" style="margin:0">{t.canned}</label>
          <select id="reply-canned" onChange={(e: Event) => {
            const c = canned.find((x) => x.id === (e.target as HTMLSelectElement).value);
            if (c && reply.current) reply.current.value = c.text;
          }}>
            <option value="">{t.none}</option>
            {canned.map((c) => <option value={c.id}>{c.title}</option>)}
          </select>
          <label for="reply-file" style="margin:0">{t.attach}</label>
          <input id="reply-file" type="file" onChange={upload} />
          {files.map((f) => <span class="muted" data-attached={f.name}>📎 {f.name}</span>)}
          <button type="submit">{t.send}</button>
        </div>
        {error && <p class="error" role="alert">{error}</p>}
      </form>
      )}
      {dialog && (
        <dialog open aria-labelledby="dialog-title">
          <form onSubmit={submitDialog}>
            <h2 id="dialog-title" style="margin-top:0;font-size:17px">{dialog === 'transfer' ? t.transfer : t.outreachTitle}</h2>
            {dialog === 'transfer' ? (
              <>
                <label for="transfer-to">{t.transferTo}</label>
                <select id="transfer-to" name="to" required>
                  {agents.filter((a) => a.id !== d.conversation.agent).map((a) => <option value={`agent/${a.id}`}>{`${t.agent}: ${a.name}`}</option>)}
                  <option value="queue/support">{`${t.queue}: support`}</option>
                </select>
                <label for="transfer-note">{t.note}</label>
                <textarea id="transfer-note" name="note" rows={2} />
              </>
            ) : (
              <>
                <label for="outreach-via">{t.via}</label>
                <select id="outreach-via" name="via" required>
                  {d.customer.identities.filter((i) => REACHED_ON[i.channel]).map((i) => <option value={`${REACHED_ON[i.channel]}|${i.id}`}>{`${CHANNEL_ICONS[REACHED_ON[i.channel]] ?? ''} ${REACHED_ON[i.channel]}: ${i.handle}`}</option>)}
                </select>
                {!d.customer.identities.length && <p class="muted">{t.noAddress}</p>}
                <label for="outreach-text">{t.message}</label>
                <textarea id="outreach-text" name="text" rows={3} required />
              </>
            )}
            <div class="row">
              <button type="submit">{t.confirm}</button>
              <button type="button" class="secondary" onClick={() => setDialog('')}>{t.cancel}</button>
            </div>
            {dialogError && <p class="error" role="alert">{dialogError}</p>}
          </form>
        </dialog>
      )}
    </section>
  );
}

function Workspace({ t, me, reloadMe }: { t: Words; me: Me; reloadMe: () => void }) {
  const [items, setItems] = useState<Item[]>([]);
  const [selected, setSelected] = useState<string | undefined>();
  const loadInbox = () => api<{ conversations: Item[] }>('/api/inbox').then((r) => setItems(r.conversations), () => {});
  useEffect(() => {
    void loadInbox();
    const inbox = debounce(loadInbox, 200);
    const mine = debounce(reloadMe, 200);
    return onLive((f) => {
      if (f.type === 'conversation' || f.type === 'reset') inbox();
      if (f.type === 'offer' || f.type === 'reset' || (f.type === 'agent' && (f.agent as { id?: string })?.id === me.user)) mine();
    });
  }, []);
  useEffect(() => {
    const keys = (e: KeyboardEvent) => {
      if ((e.target as HTMLElement).closest('input,textarea,select,dialog')) return;
      if (e.key === 'a' && me.offers[0]) {
        e.preventDefault();
        api(`/api/offers/${me.offers[0].reservationId}/accept`, {}).then(reloadMe);
      }
    };
    document.addEventListener('keydown', keys);
    return () => document.removeEventListener('keydown', keys);
  }, [me]);
  return (
    <main>
      <div class="inbox">
        <ConsultRequests t={t} onLive={onLive} onTakeOver={(id) => {
          setSelected(id);
          void loadInbox();
        }} />
        <Offers t={t} me={me} onChange={() => {
          reloadMe();
          void loadInbox();
        }} />
        <Inbox t={t} items={items} selected={selected} onPick={setSelected} />
      </div>
      {selected ? <Conversation t={t} id={selected} onRead={debounce(loadInbox, 100)} onDone={() => {
        setSelected(undefined);
        void loadInbox();
      }} /> : <section class="conv"><p class="muted" style="padding:16px">{t.pick}</p><p class="muted" style="padding:0 16px">{t.shortcuts}</p></section>}
    </main>
  );
}

interface Board {
  queues: { queue: string; waiting?: number; longestWaitSec?: number; serviceLevelPct?: number; agentsAvailable?: number }[];
  agents: { id: string; name: string; presence: string; load: Record<string, number>; tasks: number }[];
  channels: Record<string, { waiting: number; active: number; wrapup: number }>;
}

function Wallboard({ t }: { t: Words }) {
  const [b, setB] = useState<Board | undefined>();
  useEffect(() => {
    const load = () => api<Board>('/api/wallboard').then(setB, () => {});
    void load();
    const refresh = debounce(load, 300);
    return onLive((f) => ['queue', 'agent', 'conversation', 'reset'].includes(f.type) && refresh());
  }, []);
  if (!b) return <section class="board" aria-busy="true" />;
  return (
    <section class="board" aria-label={t.wallboard}>
      <section>
        <h2>{t.queues}</h2>
        <table>
          <thead><tr><th scope="col">{t.queue}</th><th scope="col">{t.waiting}</th><th scope="col">{t.longestWait}</th><th scope="col">{t.serviceLevel}</th><th scope="col">{t.available}</th></tr></thead>
          <tbody>{b.queues.map((q) => <tr data-queue={q.queue}><td>{q.queue}</td><td>{q.waiting ?? '—'}</td><td>{q.longestWaitSec ?? '—'}</td><td>{q.serviceLevelPct ?? '—'}</td><td>{q.agentsAvailable ?? '—'}</td></tr>)}</tbody>
        </table>
      </section>
      <section>
        <h2>{t.agents}</h2>
        <table>
          <thead><tr><th scope="col">{t.agent}</th><th scope="col">{t.presence}</th><th scope="col">{t.load}</th><th scope="col">{t.conversations}</th></tr></thead>
          <tbody>{b.agents.map((a) => <tr data-agent={a.id}><td>{a.name}</td><td>{t[a.presence as 'available'] ?? a.presence}</td><td>{Object.entries(a.load).map(([k, n]) => `${k} ${n}`).join(', ')}</td><td data-tasks={a.tasks}>{a.tasks}</td></tr>)}</tbody>
        </table>
      </section>
      <section>
        <h2>{t.channels}</h2>
        <table>
          <thead><tr><th scope="col">{t.channel}</th><th scope="col">{t.waiting}</th><th scope="col">{t.active}</th><th scope="col">{t.wrapup}</th></tr></thead>
          <tbody>{Object.entries(b.channels).map(([ch, n]) => <tr data-channel={ch}><td>{CHANNEL_ICONS[ch] ?? ''} {ch}</td><td>{n.waiting}</td><td>{n.active}</td><td>{n.wrapup}</td></tr>)}</tbody>
        </table>
      </section>
    </section>
  );
}

type View = 'inbox' | 'wallboard' | 'reports' | 'users' | 'canned';
const VIEWS: View[] = ['inbox', 'wallboard', 'reports', 'users', 'canned'];

function App() {
  const [lang, setLang] = useState<Lang>(initialLang());
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [view, setView] = useState<View>('inbox');
  const [online, setOnline] = useState(true);
  const t = STRINGS[lang];
  const reloadMe = () => api<Me>('/api/me').then(setMe, () => setMe(null));
  useEffect(() => void reloadMe(), []);
  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);
  // Saved at once, not after the next render: a reload right after the choice must keep it.
  const chooseLang = (l: Lang) => {
    localStorage.setItem('cc.lang', l);
    setLang(l);
  };
  useEffect(() => {
    if (!me) return;
    return connectLive((f) => listeners.forEach((l) => l(f)), setOnline);
  }, [me?.user]);
  if (me === undefined) return <p aria-busy="true" />;
  const langPicker = (
    <>
      <label for="lang">{t.language}</label>
      <select id="lang" value={lang} onChange={(e: Event) => chooseLang((e.target as HTMLSelectElement).value as Lang)}>
        <option value="en">English</option>
        <option value="zh-CN">中文</option>
      </select>
    </>
  );
  if (me === null) return <><header>{langPicker}</header><Login t={t} onIn={reloadMe} /></>;
  const supervisor = me.role !== 'agent';
  const setPresence = (p: string) => api('/api/presence', { presence: p }).then(() => setTimeout(reloadMe, 300));
  return (
    <>
      <header>
        <h1>{t.title}</h1>
        <nav aria-label="main">
          <a href="#inbox" aria-current={view === 'inbox' ? 'page' : undefined} onClick={() => setView('inbox')}>{t.inbox}</a>
          {supervisor && <a href="#wallboard" aria-current={view === 'wallboard' ? 'page' : undefined} onClick={() => setView('wallboard')}>{t.wallboard}</a>}
          {supervisor && <a href="#reports" aria-current={view === 'reports' ? 'page' : undefined} onClick={() => setView('reports')}>{t.reports}</a>}
          {supervisor && <a href="#canned" aria-current={view === 'canned' ? 'page' : undefined} onClick={() => setView('canned')}>{t.cannedAdmin}</a>}
          {me.role === 'admin' && <a href="#users" aria-current={view === 'users' ? 'page' : undefined} onClick={() => setView('users')}>{t.users}</a>}
        </nav>
        {!online && <span role="status">{t.reconnecting}</span>}
        <label for="presence">{t.presence}</label>
        <select id="presence" value={me.presence === 'busy' ? 'available' : me.presence} onChange={(e: Event) => setPresence((e.target as HTMLSelectElement).value)}>
          <option value="available">{t.available}</option>
          <option value="away">{t.away}</option>
          <option value="offline">{t.offline}</option>
          {me.presence === 'wrapup' && <option value="wrapup">{t.wrapup}</option>}
        </select>
        {me.presence === 'wrapup' && <button type="button" id="wrapup-ready" onClick={() => setPresence('available')}>{t.ready}</button>}
        <span data-presence={me.presence}>{me.name}</span>
        {langPicker}
        <button type="button" class="secondary" onClick={() => api('/api/logout', {}).then(() => setMe(null))}>{t.signOut}</button>
      </header>
      {view === 'wallboard' && supervisor ? <main><Wallboard t={t} /></main>
        : view === 'reports' && supervisor ? <main><Reports t={t} /></main>
        : view === 'canned' && supervisor ? <main><CannedEditor t={t} /></main>
        : view === 'users' && me.role === 'admin' ? <main><Users t={t} me={me.user} /></main>
        : <Workspace t={t} me={me} reloadMe={reloadMe} />}
    </>
  );
}

const root = document.getElementById('root');
if (root) {
  if (VIEWS.some((v) => v !== 'inbox' && location.hash === `#${v}`)) history.replaceState(null, '', '#inbox');
  render(<App />, root);
}
