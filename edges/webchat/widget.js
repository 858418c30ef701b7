/* cc web chat widget, protocol v3 (edges/webchat/PROTOCOL.md). Include with
   <script src="https://ENGINE/webchat/v1/widget.js" data-site="KEY" async></script>
   Optional: data-lang="zh-CN|en", data-title="…", data-voice="on" (a Call button when the engine offers
   voice; the call module /v1/call.js is fetched only when pressed). window.CCWebchat exposes createClient
   (no DOM) and mountUi. */
(function () {
  'use strict';
  var STRINGS = {
    en: { open: 'Chat with us', close: 'Close chat', title: 'Chat', input: 'Type your message', send: 'Send', attach: 'Attach a file', typing: 'Agent is typing…', sent: 'Sent', read: 'Read', failed: 'Not sent', queue: 'You are number {p} in the queue. Estimated wait: {w} min.', joined: '{a} joined the chat', closed: 'The conversation has ended.', offline: 'Reconnecting…', log: 'Messages', tooLarge: 'File too large or not accepted', call: 'Call', hangUp: 'Hang up', calling: 'Calling…', ringing: 'Waiting for an agent to answer…', inCall: 'On the call', callEnded: 'Call ended', incoming: 'The agent is calling you', accept: 'Accept call', decline: 'Decline call', rate: 'How was your chat?', score: '{s} out of 5', comment: 'Comment (optional)', thanks: 'Thank you for rating us {s} of 5.' },
    'zh-CN': { open: '在线咨询', close: '关闭对话', title: '在线客服', input: '输入消息', send: '发送', attach: '添加文件', typing: '客服正在输入…', sent: '已发送', read: '已读', failed: '发送失败', queue: '您前面还有 {p} 位，预计等待 {w} 分钟。', joined: '{a} 已加入对话', closed: '对话已结束。', offline: '正在重新连接…', log: '消息', tooLarge: '文件过大或类型不支持', call: '语音通话', hangUp: '挂断', calling: '正在呼叫…', ringing: '正在等待客服接听…', inCall: '通话中', callEnded: '通话已结束', incoming: '客服正在呼叫您', accept: '接听', decline: '拒绝', rate: '您对本次服务满意吗？', score: '{s} 分（满分 5 分）', comment: '留言（可选）', thanks: '感谢您的评价：{s} 分（满分 5 分）。' },
  };
  function pickStrings(lang) {
    return /^zh/i.test(lang || '') ? STRINGS['zh-CN'] : STRINGS.en;
  }
  function fmt(s, vars) {
    return s.replace(/\{(\w)\}/g, function (_, k) { return vars[k] == null ? '' : String(vars[k]); });
  }
  function rid() {
    var a = new Uint8Array(12);
    (globalThis.crypto || crypto).getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ('0' + b.toString(16)).slice(-2); }).join('');
  }

  /* The protocol client: hello with resume, acks, de-duplication by seq, re-sending unacknowledged
     messages after a reconnect, backoff. Storage is localStorage-like; nothing here touches the DOM. */
  function createClient(o) {
    var WS = o.WebSocket || globalThis.WebSocket;
    var store = o.storage || globalThis.localStorage;
    var timer = o.setTimeout || globalThis.setTimeout;
    var ns = 'ccwc:' + (o.site || o.app) + ':' + (o.user ? o.user.id : '') + ':';
    function load(k, d) { try { var v = store.getItem(ns + k); return v == null ? d : JSON.parse(v); } catch (e) { return d; } }
    function save(k, v) { try { store.setItem(ns + k, JSON.stringify(v)); } catch (e) { /* private mode: memory only */ } }
    var s = { visitorId: load('visitor', null), conversationId: load('conversation', null), lastSeq: load('seq', 0), pending: load('pending', []), history: load('history', []), voice: false };
    var ws = null, attempts = 0, stopped = false, online = false, listeners = [];
    function emit(f) { listeners.forEach(function (l) { try { l(f); } catch (e) { /* a listener's bug is not the client's */ } }); }
    function raw(f) { if (ws && online && ws.readyState === 1) { ws.send(JSON.stringify(f)); return true; } return false; }
    function remember(f) {
      s.history.push(f);
      if (s.history.length > 200) s.history.splice(0, s.history.length - 200);
      save('history', s.history);
    }
    function connect() {
      if (stopped) return;
      ws = new WS(o.url);
      ws.onopen = function () {
        var hello = { type: 'hello', v: 3 };
        if (s.visitorId) hello.visitorId = s.visitorId;
        if (o.name) hello.name = o.name;
        if (o.user) { hello.user = o.user; hello.token = o.token; }
        if (s.conversationId) hello.resume = { conversationId: s.conversationId, lastSeq: s.lastSeq };
        if (o.ring) hello.ring = true;
        if (o.link) { hello.link = o.link; o.link = null; } /* a chat link joins its conversation once */
        ws.send(JSON.stringify(hello));
      };
      ws.onmessage = function (ev) {
        var f;
        try { f = JSON.parse(ev.data); } catch (e) { return; }
        if (f.type === 'welcome') {
          online = true; attempts = 0; s.voice = f.voice === true;
          if (f.visitorId) { s.visitorId = f.visitorId; save('visitor', f.visitorId); }
          if (f.conversationId !== s.conversationId) {
            // Another conversation than the one we knew: the server sends it from its start.
            s.conversationId = f.conversationId; s.lastSeq = f.lastSeq; s.history = [];
            save('conversation', s.conversationId); save('seq', s.lastSeq); save('history', []);
          }
          s.pending.forEach(function (p) { raw(p); });
          emit({ type: 'state', state: 'online' });
        } else if (f.type === 'conversation') {
          s.conversationId = f.conversationId; save('conversation', f.conversationId);
        } else if (typeof f.seq === 'number' && f.type !== 'ack') {
          if (f.seq <= s.lastSeq) return; // already seen: a resume never shows a frame twice
          s.lastSeq = f.seq; save('seq', f.seq); remember(f);
        } else if (f.type === 'ack') {
          s.pending = s.pending.filter(function (p) { return p.clientMessageId !== f.clientMessageId; });
          save('pending', s.pending);
        } else if (f.type === 'error' && (f.code === 'rate_limited' || f.code === 'unavailable')) {
          timer(function () { s.pending.forEach(function (p) { raw(p); }); }, f.retryAfterMs || 2000);
        }
        emit(f);
      };
      ws.onclose = function (ev) {
        var was = online; online = false; ws = null;
        if (ev && (ev.code === 4400 || ev.code === 4401 || ev.code === 4403)) { stopped = true; emit({ type: 'state', state: 'failed', code: ev.code, reason: ev.reason }); return; }
        if (was) emit({ type: 'state', state: 'offline' });
        if (stopped) return;
        var delay = Math.min(30000, 500 * Math.pow(2, attempts++)) * (0.75 + Math.random() * 0.5);
        timer(connect, o.backoffMs != null ? o.backoffMs : delay);
      };
      ws.onerror = function () { /* onclose follows */ };
    }
    connect();
    return {
      on: function (l) { listeners.push(l); return function () { listeners = listeners.filter(function (x) { return x !== l; }); }; },
      get state() { return { visitorId: s.visitorId, conversationId: s.conversationId, lastSeq: s.lastSeq, pending: s.pending.slice(), history: s.history.slice(), online: online, voice: s.voice }; },
      /* A raw frame (the call module's signalling); false when offline. */
      call: function (f) { return raw(f); },
      send: function (text, attachments) {
        var f = { type: 'message', clientMessageId: rid() };
        if (text) f.text = text;
        if (attachments && attachments.length) f.attachments = attachments;
        s.pending.push(f); save('pending', s.pending); raw(f);
        return f.clientMessageId;
      },
      typing: function (on) { raw({ type: 'typing', typing: on !== false }); },
      /* Rates a closed conversation 1-5: csat.ack, or an error with ref = conversationId; false when offline. */
      rate: function (cid, score, comment) { var f = { type: 'csat', conversationId: cid, score: score }; if (comment) f.comment = comment; return raw(f); },
      read: function (seq) { raw({ type: 'read', seq: seq }); },
      delivered: function (seq) { raw({ type: 'delivered', seq: seq }); },
      /* Drops the socket without stopping (as a network loss would): it reconnects and resumes. */
      drop: function () { if (ws) ws.close(); },
      close: function () { stopped = true; if (ws) ws.close(1000, 'bye'); },
    };
  }

  var CSS = ':host{all:initial;font:14px/1.4 system-ui,sans-serif;color:#1c1c1c}' +
    '.l{position:fixed;right:20px;bottom:20px;border:0;border-radius:24px;padding:12px 18px;background:#0b5fff;color:#fff;font:inherit;cursor:pointer;box-shadow:0 2px 8px #0004}' +
    '.p{position:fixed;right:20px;bottom:76px;width:340px;max-width:calc(100vw - 40px);height:460px;max-height:calc(100vh - 100px);display:flex;flex-direction:column;background:#fff;border-radius:10px;box-shadow:0 4px 20px #0004;overflow:hidden}' +
    '.p[hidden]{display:none}.h{display:flex;justify-content:space-between;align-items:center;padding:10px 12px;background:#0b5fff;color:#fff}' +
    '.h button{background:none;border:0;color:#fff;font-size:20px;cursor:pointer}.m{flex:1;overflow:auto;padding:10px;display:flex;flex-direction:column;gap:6px}' +
    '.b{max-width:80%;padding:6px 10px;border-radius:10px;background:#eef1f6;align-self:flex-start;white-space:pre-wrap;word-break:break-word}' +
    '.b.c{align-self:flex-end;background:#dce8ff}.b small{display:block;font-size:11px;color:#555;text-align:right}.b img{max-width:100%}' +
    '.n{align-self:center;font-size:12px;color:#555;text-align:center}.t{font-size:12px;color:#555;padding:0 10px;min-height:16px}' +
    'form{display:flex;gap:6px;padding:8px;border-top:1px solid #ddd}textarea{flex:1;resize:none;font:inherit;padding:6px;border:1px solid #bbb;border-radius:6px}' +
    'form button,label.f{border:0;border-radius:6px;padding:0 10px;background:#0b5fff;color:#fff;font:inherit;cursor:pointer;display:flex;align-items:center}' +
    '.h .cb{font-size:14px;border:1px solid #fff8;border-radius:6px;padding:2px 8px;margin-left:auto;margin-right:8px}.h .cb[hidden],.cs[hidden]{display:none}' +
    '.cs{display:flex;gap:8px;align-items:center;justify-content:space-between;padding:6px 10px;background:#e9f7ef;font-size:13px}.cs button{border:0;border-radius:6px;padding:4px 10px;background:#c62828;color:#fff;font:inherit;cursor:pointer}.cs .ac{background:#2e7d32}' +
    '.r{display:flex;flex-direction:column;gap:4px;margin-top:6px;padding:8px;border:1px solid #ccd;border-radius:8px;font-size:14px;color:#1c1c1c}.r div{display:flex;gap:4px;justify-content:center}' +
    '.r button{border:0;border-radius:6px;padding:4px 10px;background:#0b5fff;color:#fff;font:inherit;cursor:pointer}.r [aria-pressed=true]{background:#062a80;box-shadow:0 0 0 2px #ffb300}' +
    ':focus-visible{outline:2px solid #ffb300;outline-offset:2px}.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}';

  /* The panel: launcher, message list, typing, notices, receipts, uploads. */
  function mountUi(client, o) {
    var doc = o.document || document, T = o.strings || pickStrings(o.lang);
    var host = doc.createElement('div'); host.setAttribute('data-cc-webchat', '');
    doc.body.appendChild(host);
    var root = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;
    root.innerHTML = '<style>' + CSS + '</style>' +
      '<button class="l" type="button" aria-haspopup="dialog" aria-expanded="false"></button>' +
      '<div class="p" role="dialog" aria-modal="false" hidden><div class="h"><strong></strong><button type="button" class="cb" hidden></button><button type="button" class="x">×</button></div>' +
      '<div class="cs" role="status" data-call="idle" hidden><span></span><button type="button" class="ac" hidden></button><button type="button" class="dc" hidden></button><button type="button" class="hu" hidden></button></div>' +
      '<div class="m" role="log" aria-live="polite"></div><div class="t" aria-live="polite"></div>' +
      '<form><label class="sr" for="cc-in"></label><textarea id="cc-in" rows="2"></textarea>' +
      '<label class="f" tabindex="0"><span aria-hidden="true">📎</span><span class="sr"></span><input type="file" hidden></label><button type="submit"></button></form></div>';
    function q(sel) { return root.querySelector(sel); }
    var launcher = q('.l'), panel = q('.p'), list = q('.m'), typingEl = q('.t'), form = q('form'), input = q('textarea'), file = q('input[type=file]');
    launcher.textContent = T.open; q('.h strong').textContent = o.title || T.title; q('.x').setAttribute('aria-label', T.close);
    panel.setAttribute('aria-label', o.title || T.title); list.setAttribute('aria-label', T.log);
    q('label.sr').textContent = T.input; input.placeholder = T.input; q('label.f .sr').textContent = T.attach; q('form button').textContent = T.send;
    var mine = {}, readUpTo = 0, lastAgentSeq = 0, typingOff = null, lastTyping = 0;
    /* Voice: the Call button shows when the page asks for it (data-voice="on") and the engine offers it. */
    var callBtn = q('.cb'), callBar = q('.cs'), callText = q('.cs span'), hangBtn = q('.hu'), call = null, figures = null, acBtn = q('.ac'), dcBtn = q('.dc'), invite = null;
    callBtn.textContent = '📞 ' + T.call; hangBtn.textContent = T.hangUp; acBtn.textContent = T.accept; dcBtn.textContent = T.decline;
    function showCallButton() { callBtn.hidden = !(o.voice && client.state.voice) || !!call; }
    function phase(p, detail) {
      callBar.hidden = false; callBar.setAttribute('data-call', p);
      callText.textContent = p === 'incoming' ? T.incoming : p === 'starting' ? T.calling : p === 'ringing' ? T.ringing : p === 'live' ? T.inCall : T.callEnded + (detail ? ' (' + detail + ')' : '');
      hangBtn.hidden = p === 'ended' || p === 'incoming';
      if (!(acBtn.hidden = dcBtn.hidden = p !== 'incoming')) return;
      invite = null;
      clearInterval(figures);
      if (p === 'live') figures = setInterval(function () {
        if (call) call.figures().then(function (x) { callBar.setAttribute('data-rtp-in', x.packetsReceived); callBar.setAttribute('data-rtp-out', x.packetsSent); }, function () {});
      }, 1000);
      if (p === 'ended') { call = null; showCallButton(); }
    }
    /* Calling, or accepting the agent's call (its invite). */
    function startCall(inv) {
      if (call) return;
      callBtn.hidden = true; phase('starting');
      var signal = { send: client.call, on: client.on };
      import(o.base + '/v1/call.js')
        .then(function (m) { return m.startCall(signal, { phase: function (p, d) { if (call || p !== 'ended') phase(p, d); } }, { invite: inv }); })
        .then(function (c) { call = c; if (callBar.getAttribute('data-call') === 'ended') { call = null; showCallButton(); } })
        .catch(function (err) { call = null; phase('ended', err && err.message); });
    }
    callBtn.onclick = function () { startCall(); };
    acBtn.onclick = function () { if (invite) startCall(invite); };
    dcBtn.onclick = function () { if (invite) client.call({ type: 'call.decline', invite: invite }); phase('ended'); };
    hangBtn.addEventListener('click', function () { if (call) call.hangup(); });
    /* The rating asked for when an agent closes the chat: 5 buttons, an optional comment, Send. */
    var rating = null;
    function rateForm(cid) {
      if (rating) rating.remove();
      var r = rating = doc.createElement('div'), picked = 0;
      r.className = 'r'; r.setAttribute('role', 'group'); r.setAttribute('aria-label', T.rate); r.cid = cid;
      r.innerHTML = '<span></span><div></div><label for="cc-rc"></label><textarea id="cc-rc" rows="2" maxlength="1000"></textarea><button type="button"></button><small role="status"></small>';
      var c = r.children, send = c[4];
      c[0].textContent = T.rate; c[2].textContent = T.comment; send.textContent = T.send;
      [1, 2, 3, 4, 5].forEach(function (n) {
        var b = doc.createElement('button'); b.type = 'button'; b.textContent = n; b.setAttribute('aria-label', fmt(T.score, { s: n })); b.setAttribute('aria-pressed', 'false');
        b.onclick = function () { picked = n; [].forEach.call(c[1].children, function (x) { x.setAttribute('aria-pressed', String(x === b)); }); };
        c[1].appendChild(b);
      });
      send.onclick = function () { c[5].textContent = !picked ? T.rate : client.rate(cid, picked, c[3].value.trim()) ? '…' : T.offline; };
      return r;
    }
    function rated() { if (rating) rating.remove(); rating = null; }
    function fileUrl(key) { return o.base + '/v1/files?key=' + encodeURIComponent(key); }
    function bubble(f) {
      var el = doc.createElement('div');
      if (f.type === 'notice') {
        el.className = 'n';
        el.textContent = f.kind === 'queue.position' ? fmt(T.queue, { p: f.position, w: Math.max(1, Math.round((f.estimatedWaitSec || 0) / 60)) })
          : f.kind === 'agent.joined' ? fmt(T.joined, { a: f.agentName || '' }) : f.kind === 'conversation.closed' ? T.closed : f.kind === 'csat.rated' ? fmt(T.thanks, { s: f.score }) : f.text || '';
        if (f.kind === 'conversation.closed' && f.csat) el.appendChild(rateForm(f.conversationId));
        if (f.kind === 'csat.rated') rated();
      } else {
        el.className = 'b' + (f.from === 'customer' ? ' c' : '');
        if (f.text) el.appendChild(doc.createTextNode(f.text));
        (f.attachments || []).forEach(function (a) {
          var link = doc.createElement(/^image\//.test(a.contentType) ? 'img' : 'a');
          if (link.tagName === 'IMG') { link.src = fileUrl(a.key); link.alt = a.name; } else { link.href = fileUrl(a.key); link.textContent = a.name; link.target = '_blank'; link.rel = 'noopener'; }
          el.appendChild(doc.createElement('br')); el.appendChild(link);
        });
        if (f.from === 'customer') { var st = doc.createElement('small'); el.appendChild(st); mine[f.clientMessageId] = { el: st, seq: f.seq }; status(f.clientMessageId); }
      }
      list.appendChild(el); list.scrollTop = list.scrollHeight;
    }
    function status(id) { var m = mine[id]; if (m) m.el.textContent = m.failed ? T.failed : m.seq && m.seq <= readUpTo ? T.read : m.seq ? T.sent : '…'; }
    function seen() {
      if (!lastAgentSeq) return;
      if (!panel.hidden && doc.visibilityState !== 'hidden') client.read(lastAgentSeq); else client.delivered(lastAgentSeq);
    }
    client.state.history.forEach(function (f) { if (f.type === 'receipt') readUpTo = Math.max(readUpTo, f.upToSeq); });
    client.state.history.forEach(function (f) { if (f.type !== 'receipt') bubble(f); });
    client.on(function (f) {
      if (f.type === 'message' || f.type === 'notice') {
        if (f.from === 'customer' && mine[f.clientMessageId]) { mine[f.clientMessageId].seq = f.seq; status(f.clientMessageId); return; }
        bubble(f);
        if (f.from === 'agent') { lastAgentSeq = f.seq; typingEl.textContent = ''; seen(); }
      } else if (f.type === 'ack') { if (mine[f.clientMessageId]) { mine[f.clientMessageId].seq = f.seq; status(f.clientMessageId); } }
      else if (f.type === 'receipt') { readUpTo = Math.max(readUpTo, f.upToSeq); Object.keys(mine).forEach(status); }
      else if (f.type === 'typing') {
        typingEl.textContent = f.typing ? T.typing : ''; clearTimeout(typingOff);
        if (f.typing) typingOff = setTimeout(function () { typingEl.textContent = ''; }, 8000);
      } else if (f.type === 'welcome') showCallButton();
      else if (f.type === 'call.incoming' && !call) { invite = f.invite; callBtn.hidden = true; phase('incoming'); toggle(true); acBtn.focus(); }
      else if (f.type === 'call.incoming.ended' && f.invite === invite) phase('ended');
      else if (f.type === 'state') typingEl.textContent = f.state === 'offline' ? T.offline : f.state === 'failed' ? f.reason || T.failed : '';
      else if (f.type === 'csat.ack') rated();
      else if (f.type === 'error' && rating && f.ref === rating.cid) rating.querySelector('small').textContent = f.reason;
      else if (f.type === 'error' && f.ref && mine[f.ref] && f.code !== 'rate_limited' && f.code !== 'unavailable') { mine[f.ref].failed = true; status(f.ref); }
    });
    function toggle(open) {
      panel.hidden = !open; launcher.setAttribute('aria-expanded', String(open));
      if (open) { input.focus(); seen(); } else launcher.focus();
    }
    launcher.addEventListener('click', function () { toggle(panel.hidden); });
    q('.x').addEventListener('click', function () { toggle(false); });
    panel.addEventListener('keydown', function (e) { if (e.key === 'Escape') toggle(false); });
    doc.addEventListener('visibilitychange', seen);
    function sendNow(text, atts) {
      var id = client.send(text, atts);
      bubble({ type: 'message', from: 'customer', clientMessageId: id, text: text, attachments: atts || [] });
    }
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var text = input.value.trim(); if (!text) return;
      input.value = ''; sendNow(text); client.typing(false);
    });
    input.addEventListener('keydown', function (e) { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event('submit')); } });
    input.addEventListener('input', function () { var now = Date.now(); if (now - lastTyping > 2000) { lastTyping = now; client.typing(true); } });
    q('label.f').addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); file.click(); } });
    file.addEventListener('change', function () {
      var f = file.files && file.files[0]; if (!f) return; file.value = '';
      var h = { 'content-type': f.type || 'application/octet-stream', 'x-filename': encodeURIComponent(f.name) };
      if (client.state.visitorId) h['x-cc-visitor'] = client.state.visitorId;
      fetch(o.base + '/v1/upload?' + o.account, { method: 'POST', headers: h, body: f })
        .then(function (r) { return r.ok ? r.json() : r.json().then(function (b) { throw new Error(b.error); }); })
        .then(function (a) { sendNow('', [a]); })
        .catch(function (err) { var n = doc.createElement('div'); n.className = 'n'; n.setAttribute('role', 'alert'); n.textContent = T.tooLarge + (err && err.message ? ': ' + err.message : ''); list.appendChild(n); });
    });
    return { host: host, open: function () { toggle(true); } };
  }

  var api = { createClient: createClient, mountUi: mountUi, strings: STRINGS, pickStrings: pickStrings, version: 1 };
  globalThis.CCWebchat = api;
  var script = typeof document !== 'undefined' && document.currentScript;
  if (script && script.getAttribute('data-site')) {
    var site = script.getAttribute('data-site');
    var base = script.src.replace(/\/v1\/widget\.js.*$/, '');
    var start = function () {
      var voice = script.getAttribute('data-voice') === 'on', client = createClient({ url: base.replace(/^http/, 'ws') + '/v1/ws?site=' + encodeURIComponent(site), site: site, link: new URLSearchParams(location.search).get('cc_link'), ring: voice });
      mountUi(client, { base: base, account: 'site=' + encodeURIComponent(site), lang: script.getAttribute('data-lang') || navigator.language, title: script.getAttribute('data-title'), voice: voice });
    };
    if (document.body) start(); else document.addEventListener('DOMContentLoaded', start);
  }
})();
