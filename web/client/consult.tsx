// Warm transfer in the workspace. The agent on a call invites a colleague (ConsultControls, inside the call
// panel): the caller hears music while the two talk, then the agent completes the transfer or cancels. The
// colleague sees the request (ConsultRequests, beside the offers), joins or declines; once the transfer
// completes, their consult leg becomes the call (handed to the call panel of the conversation, now theirs).
import { useEffect, useRef, useState } from 'hono/jsx/dom';
import { api } from './api.ts';
import { BrowserCall, handedOver, type CallFigures } from './call.ts';
import { fill, type Words } from './i18n.ts';
import type { LiveFrame } from './live.ts';

/** What the server tells each agent of a consult (web/server/calls.ts, live `consult` frames). */
export interface ConsultNews {
  event: 'invited' | 'joined' | 'declined' | 'cancelled' | 'completed' | 'ended';
  conversationId: string;
  from: string;
  to: string;
  note: string;
}
type OnLive = (fn: (f: LiveFrame) => void) => () => void;

const EVENTS = ['invited', 'joined', 'declined', 'cancelled', 'completed', 'ended'];
function newsOf(f: LiveFrame): ConsultNews | undefined {
  const c = f.consult as Partial<ConsultNews> | undefined;
  if (f.type !== 'consult' || !c || typeof c.conversationId !== 'string' || !EVENTS.includes(String(c.event))) return undefined;
  return { event: c.event!, conversationId: c.conversationId, from: String(c.from ?? ''), to: String(c.to ?? ''), note: String(c.note ?? '') };
}

/** The call's agent: Consult… → a colleague and a note → waiting / talking → Complete transfer or Cancel consult. */
export function ConsultControls({ t, id, self, call, onLive, onCompleted }: { t: Words; id: string; self?: string; call: () => BrowserCall | null; onLive: OnLive; onCompleted: () => void }) {
  const [phase, setPhase] = useState<'none' | 'choosing' | 'invited' | 'joined'>('none');
  const [to, setTo] = useState('');
  const [agents, setAgents] = useState<{ id: string; name: string }[]>([]);
  const [news, setNews] = useState('');
  const [error, setError] = useState('');
  useEffect(
    () =>
      onLive((f) => {
        const n = newsOf(f);
        if (!n || n.conversationId !== id) return;
        if (n.event === 'joined') {
          call()?.hearPeer().then(() => setPhase('joined'), (x: Error) => setError(x.message));
        } else if (n.event === 'declined' || n.event === 'cancelled' || n.event === 'ended') {
          call()?.dropPeer();
          setPhase('none');
          setNews(n.event === 'declined' ? fill(t.consultDeclined, { agent: n.to }) : t.consultEnded);
        }
      }),
    [id],
  );
  const act = (fn: () => Promise<void>) => fn().then(() => setError(''), (x: Error) => setError(x.message));
  const choose = () => act(async () => {
    const r = await api<{ agents: { id: string; name: string }[] }>('/api/agents');
    setAgents(r.agents.filter((a) => a.id !== self));
    setNews('');
    setPhase('choosing');
  });
  const start = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    const agent = String(f.get('agent') ?? '');
    void act(async () => {
      await call()!.consult(agent, String(f.get('note') ?? ''));
      setTo(agent);
      setPhase('invited');
    });
  };
  const complete = () => act(async () => {
    await call()!.completeConsult();
    onCompleted();
  });
  const cancel = () => act(async () => {
    await call()!.cancelConsult();
    setPhase('none');
  });
  return (
    <div class="consult" data-consult={phase}>
      {phase === 'none' && <button type="button" class="secondary" id="call-consult" onClick={choose}>{t.consult}</button>}
      {phase === 'choosing' && (
        <form class="row" onSubmit={start} aria-label={t.consult}>
          <label for="consult-agent">{t.consultWith}</label>
          <select id="consult-agent" name="agent" required>
            {agents.map((a) => <option value={a.id}>{a.name}</option>)}
          </select>
          <label for="consult-note">{t.consultNote}</label>
          <input id="consult-note" name="note" maxLength={1000} />
          <button type="submit" id="consult-start">{t.startConsult}</button>
          <button type="button" class="secondary" onClick={() => setPhase('none')}>{t.cancel}</button>
        </form>
      )}
      {(phase === 'invited' || phase === 'joined') && (
        <div class="row">
          <span role="status">{fill(phase === 'joined' ? t.consultTalking : t.consultInvited, { agent: to })}</span>
          <button type="button" id="consult-complete" disabled={phase !== 'joined'} onClick={complete}>{t.completeTransfer}</button>
          <button type="button" class="secondary" id="consult-cancel" onClick={cancel}>{t.cancelConsult}</button>
        </div>
      )}
      {news && <p role="status" class="muted" data-consult-news>{news}</p>}
      {error && <p class="error" role="alert">{error}</p>}
    </div>
  );
}

interface Request {
  conversationId: string;
  from: string;
  note: string;
}

/** The invited agent: each request with Join / Decline; joined, the colleague's voice and Leave consult. */
export function ConsultRequests({ t, onLive, onTakeOver }: { t: Words; onLive: OnLive; onTakeOver: (id: string) => void }) {
  const [requests, setRequests] = useState<Request[]>([]);
  // The consult leg this page joined (at most one at a time); the ref serves the live listener.
  const joined = useRef<{ id: string; call: BrowserCall } | null>(null);
  const [joinedId, setJoinedId] = useState<string | null>(null);
  const [fig, setFig] = useState<CallFigures>({ packetsReceived: 0, packetsSent: 0, peerPacketsReceived: 0 });
  const [error, setError] = useState('');
  const setJoined = (j: { id: string; call: BrowserCall } | null) => {
    joined.current = j;
    setJoinedId(j?.id ?? null);
  };
  const drop = (id: string) => setRequests((rs) => rs.filter((r) => r.conversationId !== id));
  const load = () => api<{ consults: Request[] }>('/api/calls/consults').then((r) => setRequests(r.consults), () => {});
  useEffect(() => {
    void load();
    const off = onLive((f) => {
      if (f.type === 'reset') return void load();
      const n = newsOf(f);
      if (!n || n.event === 'joined') return;
      if (n.event === 'invited') return setRequests((rs) => [...rs.filter((r) => r.conversationId !== n.conversationId), { conversationId: n.conversationId, from: n.from, note: n.note }]);
      drop(n.conversationId);
      const j = joined.current;
      if (j?.id !== n.conversationId) return;
      setJoined(null);
      if (n.event !== 'completed') return j.call.close();
      // The consult leg is the call now: the caller's voice joins it and the call panel takes it over.
      j.call.takeOver().then(() => {
        handedOver.set(j.id, j.call);
        onTakeOver(j.id);
      }, (x: Error) => setError(x.message));
    });
    return () => {
      off();
      joined.current?.call.close(); // leaving the page closes a consult leg that was not handed over
    };
  }, []);
  useEffect(() => {
    if (!joinedId) return;
    const i = setInterval(() => joined.current?.call.figures().then(setFig, () => {}), 1000);
    return () => clearInterval(i);
  }, [joinedId]);
  const act = (fn: () => Promise<void>) => fn().then(() => setError(''), (x: Error) => setError(x.message));
  const join = (id: string) => act(async () => setJoined({ id, call: await BrowserCall.joinConsult(id) }));
  const decline = (id: string) => act(async () => {
    await api(`/api/calls/${encodeURIComponent(id)}/consult/decline`, {});
    drop(id);
  });
  const leave = () => act(async () => {
    const j = joined.current;
    if (!j) return;
    setJoined(null);
    drop(j.id);
    await j.call.leaveConsult();
  });
  if (!requests.length && !error) return <></>;
  return (
    <section class="offers" aria-label={t.consultInvites}>
      <h2 class="sr">{t.consultInvites}</h2>
      {requests.map((r) => (
        <div class="row" key={r.conversationId} data-consult-request={r.conversationId}>
          <span aria-hidden="true">📞</span>
          <strong>{fill(t.consultInvite, { agent: r.from })}</strong>
          {r.note && <span class="muted">{r.note}</span>}
          {joinedId === r.conversationId ? (
            <>
              <span role="status" data-consult-call="live" data-peer-in={fig.peerPacketsReceived} data-rtp-out={fig.packetsSent}>{fill(t.consultPeerAudio, { in: fig.peerPacketsReceived })}</span>
              <button type="button" class="secondary" id="consult-leave" onClick={leave}>{t.leaveConsult}</button>
            </>
          ) : (
            <>
              <button type="button" data-consult-join={r.conversationId} disabled={Boolean(joinedId)} onClick={() => join(r.conversationId)}>{t.join}</button>
              <button type="button" class="secondary" data-consult-decline={r.conversationId} onClick={() => decline(r.conversationId)}>{t.decline}</button>
            </>
          )}
        </div>
      ))}
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}
