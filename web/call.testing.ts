// What the browser call tests share (web/call*.e2e.test.ts): a whole engine (actors, store, media node with
// one mediasoup worker, SIP edge with its IVR) and the workspace beside it, Debian's Chromium with a fake
// microphone, sipp as the trunk playing the caller (DTMF 1 for the IVR, then a 440 Hz tone), the caller's
// ear (a UDP socket counting the RTP it hears, by stream), and agents signed in to the workspace.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { CHROMIUM, loginCookie, startWorkspaceStack, type WorkspaceStack } from './browser.testing.ts';
import { buildRtp, buildTelephoneEvent, parseRtp, type RtpPacket } from '../media/rtp.ts';
import { MediaClient } from '../media/service.ts';
import { writeRtpPcap } from '../tests/support/pcap.ts';
import { waitFor } from '../tests/support/nats.ts';

const HERE = import.meta.dirname;
export const SHOTS = resolve('.test-data/screenshots');
export const PROMPTS = process.env.PROMPTS_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'cc', 'prompts');
/** The `skip` option of a browser call test: false, or why it cannot run here. */
export const CALL_SKIP: string | false = !existsSync(CHROMIUM) ? `no ${CHROMIUM}: run scripts/setup-browser.sh as root` : !existsSync(join(PROMPTS, 'welcome.en.ul')) ? `prompts missing in ${PROMPTS}: run sh scripts/setup-voice.sh` : false;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface CallStack extends WorkspaceStack {
  media: MediaClient;
}

/** The workspace stack with the voice parts on loopback, the prompts, and a Chromium with a fake microphone. */
export async function startCallStack(name: string): Promise<CallStack> {
  const stack = await startWorkspaceStack(name, { SIP_HOST: '127.0.0.1', MEDIA_LISTEN_IP: '127.0.0.1', PROMPTS_DIR: PROMPTS }, [
    // A microphone without a person: Chromium's fake device (a beep) and no permission prompt.
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
  ]);
  mkdirSync(SHOTS, { recursive: true });
  return { ...stack, media: new MediaClient(stack.actors.nc) };
}

/** A signed-in API session that answers the status and body, whatever the status (for refusals). */
export async function statusSession(base: string, user: string, password: string) {
  const cookie = await loginCookie(base, user, password);
  return async (path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, { method: body === undefined ? 'GET' : 'POST', headers: { cookie, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, data: (await res.json()) as Record<string, unknown> };
  };
}

/** Agents (role agent, queue support) with the password `<id>-password-1`. */
export async function createAgents(stack: CallStack, ids: string[]): Promise<void> {
  const admin = await statusSession(stack.base, 'admin', stack.adminPassword);
  for (const id of ids) {
    const r = await admin('/api/users', { id, name: id, role: 'agent', password: `${id}-password-1`, queues: ['support'] });
    if (r.status !== 201) throw new Error(`creating ${id}: ${r.status} ${JSON.stringify(r.data)}`);
  }
}

/** An agent's workspace page, signed in through the form; `available` puts them on duty. */
export async function agentPage(stack: CallStack, id: string, o: { available?: boolean } = {}): Promise<Page> {
  const page = await (await stack.browser.newContext({ locale: 'en-US' })).newPage();
  await page.goto(stack.base);
  await page.fill('#login-user', id);
  await page.fill('#login-password', `${id}-password-1`);
  await page.click('button[type=submit]');
  await page.waitForSelector('header nav');
  if (o.available) await goAvailable(page, id);
  return page;
}

export async function goAvailable(page: Page, id: string): Promise<void> {
  await page.selectOption('#presence', 'available');
  await waitFor(`${id} available`, async () => (await page.getAttribute('[data-presence]', 'data-presence')) === 'available', 10_000, 100);
}

/** μ-law of a 16-bit sample (G.711). */
function ulaw(sample: number): number {
  const sign = sample < 0 ? 0x80 : 0;
  let s = Math.min(Math.abs(sample), 32635) + 0x84;
  let exp = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exp > 0; mask >>= 1) exp--;
  const mantissa = (s >> (exp + 3)) & 0x0f;
  return ~(sign | (exp << 4) | mantissa) & 0xff;
}

/** The caller's side as a pcap for sipp's play_pcap_audio: DTMF 1 (RFC 4733), then `seconds` of a 440 Hz tone as PCMU. */
export function callPcap(path: string, seconds: number): void {
  const packets: { at: number; rtp: Uint8Array }[] = [];
  for (let i = 0; i < 8; i++) {
    const payload = buildTelephoneEvent({ digit: '1', end: i >= 5, volume: 10, duration: Math.min(i + 1, 6) * 160 });
    packets.push({ at: i * 20_000, rtp: buildRtp({ payloadType: 101, seq: 100 + i, timestamp: 8000, ssrc: 0x1234abcd, marker: i === 0, payload }) });
  }
  for (let i = 0; i < seconds * 50; i++) {
    const payload = new Uint8Array(160);
    for (let k = 0; k < 160; k++) payload[k] = ulaw(Math.round(8000 * Math.sin((2 * Math.PI * 440 * (i * 160 + k)) / 8000)));
    packets.push({ at: 1_000_000 + i * 20_000, rtp: buildRtp({ payloadType: 0, seq: 200 + i, timestamp: 16000 + i * 160, ssrc: 0x1234abcd, marker: i === 0, payload }) });
  }
  writeRtpPcap(path, packets);
}

/** sipp as the trunk: an inbound call (web/uac-agent-call.xml) playing `call.pcap` from the stack's dir, until our BYE. */
export function sipp(stack: CallStack, earPort: number, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((ok) => {
    const args = ['127.0.0.1:' + stack.sipPort, '-sf', join(HERE, 'uac-agent-call.xml'), '-m', '1', '-i', '127.0.0.1', '-timeout', `${Math.ceil(timeoutMs / 1000)}s`, '-timeout_error', '-key', 'rtp_port', String(earPort), '-key', 'caller', '+8613900139000', '-mi', '127.0.0.1'];
    const p = spawn('sipp', args, { cwd: stack.dir });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => ok({ code, out }));
  });
}

export interface CallerEar {
  port: number;
  /** Each RTP packet the caller hears (prompts, music and each agent arrive as their own stream, by SSRC). */
  onRtp(fn: (p: RtpPacket) => void): void;
  /** Packets heard in the next `ms`. */
  heardIn(ms: number): Promise<number>;
  /** Packets heard in the next `ms`, per stream (SSRC). */
  streamsIn(ms: number): Promise<Map<number, number>>;
  close(): void;
}

/** The caller's ear: where the trunk's SDP says the caller receives RTP. */
export async function callerEar(): Promise<CallerEar> {
  const sock = createSocket('udp4');
  await new Promise<void>((ok) => sock.bind(0, '127.0.0.1', ok));
  const listeners: ((p: RtpPacket) => void)[] = [];
  sock.on('message', (b) => {
    const p = parseRtp(new Uint8Array(b));
    if (p) for (const l of listeners) l(p);
  });
  const streamsIn = async (ms: number) => {
    const seen = new Map<number, number>();
    const count = (p: RtpPacket) => void seen.set(p.ssrc, (seen.get(p.ssrc) ?? 0) + 1);
    listeners.push(count);
    await sleep(ms);
    listeners.splice(listeners.indexOf(count), 1);
    return seen;
  };
  return {
    port: sock.address().port,
    onRtp: (fn) => void listeners.push(fn),
    streamsIn,
    heardIn: async (ms) => [...(await streamsIn(ms)).values()].reduce((a, b) => a + b, 0),
    close: () => sock.close(),
  };
}
