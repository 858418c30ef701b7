// The reports page: per channel answer rate, first response and handle times, and customer satisfaction
// (mean rating 1-5 and how many rated) for a period, charted with chart.js.
import { useEffect, useRef, useState } from 'hono/jsx/dom';
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from 'chart.js';
import { api } from './api.ts';
import type { Words } from './i18n.ts';
import type { ChannelReport } from '../server/conversations.ts';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

type Row = ChannelReport;

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

export function Reports({ t }: { t: Words }) {
  const [rows, setRows] = useState<Row[]>([]);
  const [error, setError] = useState('');
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart | null>(null);
  const load = async (from: number, to: number) => {
    try {
      setRows((await api<{ channels: Row[] }>(`/api/reports?from=${from}&to=${to}`)).channels);
      setError('');
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => void load(Date.now() - 7 * 86400_000, Date.now() + 60_000), []);
  useEffect(() => {
    if (!canvas.current) return;
    chart.current?.destroy();
    chart.current = new Chart(canvas.current, {
      type: 'bar',
      data: {
        labels: rows.map((r) => r.channel),
        datasets: [
          { label: t.answerRate, data: rows.map((r) => r.answerRate), backgroundColor: '#0a4fd6' },
          { label: t.firstResponse, data: rows.map((r) => r.firstResponseSec ?? 0), backgroundColor: '#b45309' },
          { label: t.handleTime, data: rows.map((r) => r.handleSec ?? 0), backgroundColor: '#166534' },
        ],
      },
      options: { animation: false, responsive: true, maintainAspectRatio: false },
    });
    return () => chart.current?.destroy();
  }, [rows, t]);
  const submit = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    void load(Date.parse(String(f.get('from'))), Date.parse(String(f.get('to'))) + 86400_000);
  };
  return (
    <section class="board" aria-label={t.reports}>
      <form class="row" onSubmit={submit}>
        <label for="report-from">{t.from}</label>
        <input id="report-from" name="from" type="date" value={day(Date.now() - 7 * 86400_000)} />
        <label for="report-to">{t.to}</label>
        <input id="report-to" name="to" type="date" value={day(Date.now())} />
        <button type="submit">{t.show}</button>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
      <div style="height:280px;margin:12px 0"><canvas ref={canvas} role="img" aria-label={t.reports} /></div>
      <table>
        <thead><tr><th scope="col">{t.channel}</th><th scope="col">{t.conversations}</th><th scope="col">{t.answerRate}</th><th scope="col">{t.firstResponse}</th><th scope="col">{t.handleTime}</th><th scope="col">{t.csat}</th><th scope="col">{t.ratings}</th></tr></thead>
        <tbody>{rows.map((r) => <tr data-channel={r.channel}><td>{r.channel}</td><td>{r.conversations}</td><td>{r.answerRate}</td><td>{r.firstResponseSec ?? '—'}</td><td>{r.handleSec ?? '—'}</td><td>{r.csat === null ? t.notCollected : r.csat.toFixed(1)}</td><td>{r.ratings}</td></tr>)}</tbody>
      </table>
    </section>
  );
}
