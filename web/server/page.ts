// The one HTML page: the shell the client renders into, with the styles (checked for contrast in the e2e test).
export const STYLES = `
:root{--fg:#1b1f24;--muted:#4a5360;--bg:#ffffff;--panel:#f4f6f8;--line:#c9d1d9;--accent:#0a4fd6;--accent-fg:#ffffff;--warn:#9a3412;--ok:#166534}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,"Noto Sans CJK SC",sans-serif;color:var(--fg);background:var(--bg)}
button,input,select,textarea{font:inherit;color:var(--fg)}
button{background:var(--accent);color:var(--accent-fg);border:0;border-radius:6px;padding:6px 12px;cursor:pointer}
button.secondary{background:var(--panel);color:var(--fg);border:1px solid var(--line)}
button:focus-visible,input:focus-visible,select:focus-visible,textarea:focus-visible,a:focus-visible,li:focus-visible{outline:3px solid #f59e0b;outline-offset:1px}
input,select,textarea{border:1px solid #6b7280;border-radius:6px;padding:6px;background:#fff}
label{display:block;font-weight:600;margin:8px 0 4px}
header{display:flex;gap:12px;align-items:center;padding:8px 16px;background:#10243f;color:#fff}
header h1{font-size:17px;margin:0 12px 0 0}header nav{display:flex;gap:8px;flex:1}header a{color:#fff}
header label{display:inline;color:#fff;margin:0 4px 0 0;font-weight:400}
main{display:grid;grid-template-columns:320px 1fr;min-height:calc(100vh - 52px)}
.login{max-width:360px;margin:10vh auto;padding:24px;border:1px solid var(--line);border-radius:10px}
.inbox{border-right:1px solid var(--line);overflow:auto;max-height:calc(100vh - 52px);background:var(--panel)}
.inbox ul{list-style:none;margin:0;padding:0}.inbox li{padding:10px 12px;border-bottom:1px solid var(--line);cursor:pointer}
.inbox li[aria-current=true]{background:#dbe7ff}.badge{display:inline-block;min-width:20px;padding:0 6px;border-radius:10px;background:var(--accent);color:#fff;font-size:13px;text-align:center}
.muted{color:var(--muted)}.sla-breach{color:var(--warn);font-weight:600}
.offers{padding:8px;border-bottom:2px solid var(--accent);background:#fff}
.conv{display:flex;flex-direction:column;max-height:calc(100vh - 52px)}
.history{flex:1;overflow:auto;padding:12px}.msg{max-width:70%;margin:6px 0;padding:8px 10px;border-radius:8px;background:var(--panel)}
.msg.out{margin-left:auto;background:#e3ecff}.profile{padding:8px 12px;border-bottom:1px solid var(--line);display:flex;gap:16px;flex-wrap:wrap}
.replybox{border-top:1px solid var(--line);padding:8px 12px}.replybox textarea{width:100%}
.row{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin-top:6px}
dialog{border:1px solid var(--line);border-radius:10px;padding:16px;min-width:320px}
table{border-collapse:collapse;width:100%}th,td{border:1px solid var(--line);padding:6px 8px;text-align:left}
.board{padding:16px;grid-column:1/3}.board section{margin-bottom:20px}.error{color:#b91c1c;font-weight:600}
.call{padding:8px 12px;border-bottom:1px solid var(--line);background:#eef6ee}
.keypad{display:grid;grid-template-columns:repeat(3,2.6em);gap:4px;margin-top:6px}
.form-grid{max-width:480px;margin-top:16px}.form-grid input,.form-grid select,.form-grid textarea{width:100%}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
`;

export function page(lang: string): string {
  return `<!doctype html><html lang="${lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>cc workspace</title><style>${STYLES}</style></head><body><div id="root"></div><script type="module" src="/app.js"></script></body></html>`;
}
