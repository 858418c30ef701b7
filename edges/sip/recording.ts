// Call recording on the SIP edge (RECORD_CALLS=on|announce): the edge's RTP relay sees both directions
// of every call (the caller's packets, and everything the caller hears: prompts, music, the agent), in
// the trunk's G.711, so it taps them there. That needs no extra mediasoup consumers, transports or
// ports, and records exactly what the caller heard. (An opus trunk call is not recorded: the recorder
// decodes G.711 only.)
//
// When the call ends: the Ogg/Opus file (media/recording.ts) goes to the object store under
// recordings/<conversation>/<call>.opus, a 'system' message with it as an attachment joins the
// conversation's history, and then, when a speech-to-text engine is there and speaks the call's
// language, a second 'system' message carries the transcript, linked to the same recording. A call that
// ends before it became a conversation (hung up in the IVR) keeps no recording.
import { mkdirSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readOggOpus } from '../../media/ogg.ts';
import { CallRecorder, opusencAvailable, type Leg } from '../../media/recording.ts';
import type { RtpPacket } from '../../media/rtp.ts';
import type { SpeechToText, Transcript } from '../../media/speech.ts';
import type { StoreClient } from '../../storage/client.ts';
import type { BlobStore } from '../../storage/blobs/store.ts';

export const RECORD_MODES = ['off', 'on', 'announce'] as const;
export type RecordMode = (typeof RECORD_MODES)[number];

/** The prompt RECORD_CALLS=announce plays before the menu (scripts/setup-voice.sh speaks it). */
export const noticePrompt = (language: string | null | undefined) => `recording.notice.${language && /^(zh|cmn)/i.test(language) ? 'zh' : 'en'}`;

interface Log {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
}

export interface ActiveRecording {
  callId: string;
  /** Hand every RTP packet of the call's codec here: the caller's, and what is sent to the caller. */
  tap(leg: Leg, p: RtpPacket): void;
}

export interface CallLink {
  conversationId?: string;
  /** The caller's customer and identity records (customer:…, identity:…). */
  customerId?: string;
  identityId?: string;
  language: string | null;
}

export interface CallRecordings {
  readonly mode: 'on' | 'announce';
  /** Starts recording a G.711 call. */
  start(callId: string, codec: 'PCMU' | 'PCMA'): ActiveRecording;
  /** Ends it: stored, linked, then transcribed. Resolves when all that is done (or failed, logged). */
  finish(rec: ActiveRecording, link: CallLink): Promise<void>;
  /** Waits for the recordings still being stored or transcribed. */
  settled(): Promise<void>;
}

export interface CallRecordingsOptions {
  mode: RecordMode;
  blobs: Pick<BlobStore, 'put'>;
  store: Pick<StoreClient, 'append'>;
  /** Transcribes recordings after the call; without it, none are. */
  stt?: SpeechToText;
  /** Where recordings are written while the call lasts (default: the system's temp directory). */
  dir?: string;
  log?: Log;
}

/** The recorder for an edge, or undefined (with a log line saying why) when calls are not recorded. */
export function callRecordings(o: CallRecordingsOptions): CallRecordings | undefined {
  if (o.mode === 'off') return undefined;
  const tool = opusencAvailable();
  if (!tool.ok) {
    o.log?.warn({ reason: tool.reason }, `call recording is off although RECORD_CALLS=${o.mode}`);
    return undefined;
  }
  const dir = o.dir ?? join(tmpdir(), 'cc-recordings');
  mkdirSync(dir, { recursive: true });
  const recorders = new Map<ActiveRecording, { recorder: CallRecorder; path: string }>();
  const inFlight = new Set<Promise<void>>();
  const log = o.log;

  async function store(rec: ActiveRecording, link: CallLink): Promise<void> {
    const r = recorders.get(rec)!;
    recorders.delete(rec);
    try {
      const result = await r.recorder.stop();
      if (!link.conversationId || !link.customerId) {
        log?.info({ callId: rec.callId, seconds: result.durationSec }, 'recording not kept: the call ended before it became a conversation');
        return;
      }
      const bytes = new Uint8Array(await readFile(r.path));
      const info = readOggOpus(bytes); // never store a file that is not a whole Ogg/Opus stream
      const conversation = link.conversationId.replace(/^conversation:/, '');
      const rid = recordingId(rec.callId);
      const objectKey = `recordings/${conversation}/${rid}.opus`;
      await o.blobs.put(objectKey, bytes, { contentType: 'audio/ogg', size: bytes.length, meta: { call: rid, seconds: info.durationSec.toFixed(1) } });
      const recording = { objectKey, contentType: 'audio/ogg', size: bytes.length, name: `${rid}.opus` };
      const common = { customerId: link.customerId, identityId: link.identityId, conversationId: `conversation:${conversation}`, channel: 'voice' as const, direction: 'system' as const, attachments: [recording] };
      await o.store.append({ ...common, channelMessageId: `recording:${rec.callId}`, author: 'recording', text: `Call recording (${clock(info.durationSec)})`, at: Date.now() });
      log?.info({ callId: rec.callId, key: objectKey, seconds: info.durationSec, bytes: bytes.length, packets: result.packets, late: result.late }, 'call recorded');

      const language = link.language ?? 'en';
      if (!o.stt) return;
      if (!o.stt.languages.includes(language.toLowerCase().split('-')[0])) {
        log?.info({ callId: rec.callId, language, engine: o.stt.name }, `no transcript: ${o.stt.name} does not transcribe ${language}`);
        return;
      }
      const started = Date.now();
      const transcript = await o.stt.transcribe({ bytes, contentType: 'audio/ogg' }, language);
      await o.store.append({ ...common, channelMessageId: `transcript:${rec.callId}`, author: 'transcript', text: transcriptText(transcript), at: Date.now() });
      log?.info({ callId: rec.callId, engine: o.stt.name, segments: transcript.segments.length, ms: Date.now() - started }, 'call transcribed');
    } catch (e) {
      log?.warn({ callId: rec.callId, err: (e as Error).message }, 'call recording not stored');
    } finally {
      await rm(r.path, { force: true });
    }
  }

  return {
    mode: o.mode,
    start(callId, codec) {
      const path = join(dir, `${recordingId(callId)}-${crypto.randomUUID().slice(0, 8)}.opus`);
      const recorder = new CallRecorder({ codec, path });
      const rec: ActiveRecording = { callId, tap: (leg, p) => recorder.push(leg, p) };
      recorders.set(rec, { recorder, path });
      return rec;
    },
    finish(rec, link) {
      if (!recorders.has(rec)) return Promise.resolve();
      const p = store(rec, link).finally(() => inFlight.delete(p));
      inFlight.add(p);
      return p;
    },
    async settled() {
      while (inFlight.size) await Promise.all([...inFlight]);
    },
  };
}

/** A call's recording id: its Call-ID made safe for object keys and URLs (letters, digits, . _ = + -). */
export function recordingId(callId: string): string {
  return callId.replace(/[^A-Za-z0-9._=+-]/g, '_').replace(/^\.+/, '_').slice(0, 120) || 'call';
}

const clock = (sec: number) => {
  const s = Math.round(sec);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

/** One line per segment, in time order, with who spoke: "[0:03] caller: call me back tomorrow". */
export function transcriptText(t: Transcript): string {
  if (!t.segments.length) return t.text.trim() || '(no speech recognized)';
  return t.segments.map((s) => `[${clock(s.start)}] ${s.speaker ? `${s.speaker}: ` : ''}${s.text}`).join('\n');
}
