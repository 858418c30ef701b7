// One WebSocket per tab: events carry a per-tab seq; after a drop the tab reconnects (backoff up to 5 s)
// naming its tab id and last seq, and the server replays what it missed or says `reset` (reload lists).
export type LiveFrame = { type: string; seq?: number } & Record<string, unknown>;

export function connectLive(onFrame: (f: LiveFrame) => void, onState: (online: boolean) => void): () => void {
  let tab = sessionStorage.getItem('cc.tab') ?? '';
  let last = Number(sessionStorage.getItem('cc.seq') ?? '-1');
  let ws: WebSocket | undefined;
  let stopped = false;
  let attempts = 0;
  const open = () => {
    if (stopped) return;
    const q = new URLSearchParams();
    if (tab) q.set('tab', tab);
    if (tab && last >= 0) q.set('since', String(last));
    ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws?${q}`);
    ws.onopen = () => {
      attempts = 0;
      onState(true);
    };
    ws.onmessage = (ev) => {
      let f: LiveFrame;
      try {
        f = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      if (f.type === 'hello') {
        if (f.tab !== tab) last = -1; // a new tab on the server: nothing to resume
        tab = String(f.tab);
        sessionStorage.setItem('cc.tab', tab);
        if (last < 0) last = Number(f.seq);
      } else if (typeof f.seq === 'number') {
        if (f.seq <= last) return; // already seen (a replay overlapping what arrived)
        last = f.seq;
      }
      sessionStorage.setItem('cc.seq', String(last));
      onFrame(f);
    };
    ws.onclose = () => {
      onState(false);
      if (!stopped) setTimeout(open, Math.min(5000, 250 * 2 ** attempts++));
    };
  };
  open();
  return () => {
    stopped = true;
    ws?.close();
  };
}
