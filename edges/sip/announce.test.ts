// Queue position and wait for voice callers. The sentence composed from prompt pieces (English and Chinese
// numbers, "less than" / "more than"), every piece made by scripts/setup-voice.sh; and a real call: sipp
// presses 1, waits in queue (the only agent does not speak English), and hears, byte for byte, the
// position prompt pieces between stretches of hold music, while the conversation holds its position.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { ActorClient } from '../../actors/client.ts';
import { loadConfig } from '../../engine/config.ts';
import { freePort } from '../../engine/nats-server.ts';
import { startEngine, type Engine } from '../../engine/start.ts';
import { DEFAULT_MENU } from '../../engine/voice.ts';
import type { ConversationContext } from '../../machines/conversation.ts';
import { parseMenu } from '../../machines/ivr.ts';
import { startMediaService, type MediaService } from '../../media/service.ts';
import { StoreClient } from '../../storage/client.ts';
import { startTestNats, tempDir, waitFor, type TestNats } from '../../tests/support/nats.ts';
import { announceLanguage, numberPieces, positionAnnouncement } from './announce.ts';
import { startSipEdge, type SipEdge } from './edge.ts';
import { ear, keysPcap, promptHeard, PROMPTS, sipp } from './sipp.testing.ts';
import { engineVoice } from './voice.ts';

const words = (pieces: string[]) => pieces.map((p) => p.replace(/^(num|ann)\.|\.(en|zh)$/g, '')).join(' ');

describe('the position sentence from pieces', () => {
  test('English numbers: 0-19 are one piece, then tens and ones; over 99 is "more than 99"', () => {
    assert.deepEqual(numberPieces(1, 'en'), ['num.1.en']);
    assert.deepEqual(numberPieces(12, 'en'), ['num.12.en']);
    assert.deepEqual(numberPieces(20, 'en'), ['num.20.en']);
    assert.deepEqual(numberPieces(45, 'en'), ['num.40.en', 'num.5.en']);
    assert.deepEqual(numberPieces(99, 'en'), ['num.90.en', 'num.9.en']);
    assert.deepEqual(numberPieces(100, 'en'), ['ann.more.en', 'num.90.en', 'num.9.en']);
    assert.deepEqual(numberPieces(2500, 'en'), ['ann.more.en', 'num.90.en', 'num.9.en']);
  });

  test('Chinese numbers: 十二, 二十, 四十五, 两 when counting; over 99 is 超过九十九', () => {
    assert.deepEqual(numberPieces(1, 'zh'), ['num.1.zh']);
    assert.deepEqual(numberPieces(10, 'zh'), ['num.10.zh']);
    assert.deepEqual(numberPieces(12, 'zh'), ['num.10.zh', 'num.2.zh'], '十二, not 一十二');
    assert.deepEqual(numberPieces(20, 'zh'), ['num.2.zh', 'num.10.zh']);
    assert.deepEqual(numberPieces(45, 'zh'), ['num.4.zh', 'num.10.zh', 'num.5.zh']);
    assert.deepEqual(numberPieces(2, 'zh'), ['num.2.zh'], '第二位');
    assert.deepEqual(numberPieces(2, 'zh', { count: true }), ['num.liang.zh'], '两分钟');
    assert.deepEqual(numberPieces(22, 'zh', { count: true }), ['num.2.zh', 'num.10.zh', 'num.2.zh'], '二十二分钟');
    assert.deepEqual(numberPieces(120, 'zh'), ['ann.more.zh', 'num.9.zh', 'num.10.zh', 'num.9.zh']);
  });

  test('sentences: position, then the wait in whole minutes rounded up; unknown wait left out', () => {
    assert.equal(words(positionAnnouncement({ position: 12, estimatedWaitSec: 150, language: 'en' })), 'position 12 in-queue wait 3 minutes');
    assert.equal(words(positionAnnouncement({ position: 1, estimatedWaitSec: 20, language: 'en' })), 'position 1 in-queue wait less 1 minute');
    assert.equal(words(positionAnnouncement({ position: 1, estimatedWaitSec: 60, language: 'en' })), 'position 1 in-queue wait 1 minute');
    assert.equal(words(positionAnnouncement({ position: 45, language: 'en' })), 'position 40 5 in-queue');
    assert.equal(words(positionAnnouncement({ position: 150, estimatedWaitSec: 7200, language: 'en' })), 'position more 90 9 in-queue wait more 90 9 minutes');
    assert.equal(words(positionAnnouncement({ position: 20, estimatedWaitSec: 110, language: 'zh' })), 'position 2 10 place wait liang minutes', '您现在排在第二十位。预计等待两分钟。');
    assert.equal(words(positionAnnouncement({ position: 3, estimatedWaitSec: 30, language: 'zh-CN' })), 'position 3 place wait less 1 minute', '不到一分钟');
    assert.equal(words(positionAnnouncement({ position: 101, language: 'zh' })), 'position 9 10 9 place-after', '第九十九位以后');
    assert.deepEqual([announceLanguage('zh'), announceLanguage('cmn'), announceLanguage('en-GB'), announceLanguage(null), announceLanguage('fr')], ['zh', 'zh', 'en', 'en', 'en']);
  });

  test('every piece the sentences use is spoken by scripts/setup-voice.sh, and made in the prompts folder', () => {
    const script = readFileSync(join(import.meta.dirname, '../../scripts/setup-voice.sh'), 'utf8');
    const used = new Set<string>();
    for (const language of ['en', 'zh']) {
      for (let position = 1; position <= 120; position++) {
        for (const estimatedWaitSec of [undefined, 0, 59, 60, 61, 119, 121, 2700, 6000, 9000]) for (const p of positionAnnouncement({ position, estimatedWaitSec, language })) used.add(p);
      }
    }
    const numbers = new Set<string>();
    for (const m of script.matchAll(/piece "num\.\$n\.(en|zh)"[^\n]*\n/g)) numbers.add(m[1]);
    const spoken = (id: string) => new RegExp(`(speak|piece) ${id.replace(/\./g, '\\.')} `).test(script) || (/^num\.\d+\.(en|zh)$/.test(id) && numbers.has(id.slice(-2)));
    const missing = [...used].filter((id) => !spoken(id));
    assert.deepEqual(missing, [], 'pieces the script does not speak');
    assert.deepEqual([...used].filter((id) => !existsSync(join(PROMPTS, `${id}.ul`)) || !existsSync(join(PROMPTS, `${id}.al`))), [], `pieces missing in ${PROMPTS}: run sh scripts/setup-voice.sh`);
    assert.ok(used.size > 40, `${used.size} pieces`);
  });
});

describe('a waiting caller hears their place', () => {
  let nats: TestNats;
  let engine: Engine;
  let media: MediaService;
  let edge: SipEdge;
  let actors: ActorClient;
  let dir: string;

  before(async () => {
    assert.ok(existsSync(join(PROMPTS, 'ann.position.en.ul')), `prompts missing in ${PROMPTS}: run sh scripts/setup-voice.sh`);
    nats = await startTestNats();
    dir = tempDir('sip-announce');
    const env = { NATS_URL: nats.urls[0], DATA_DIR: dir, SURREAL_URL: 'mem://', PORT: String(await freePort()), SMTP_PORT: String(await freePort()), ACTOR_SHARDS: '4', ROLE: 'core,edge,store', SIP_PORT: String(await freePort()) };
    engine = await startEngine(loadConfig(env), pino({ level: 'warn' }), env);
    const nc = await nats.connect();
    actors = new ActorClient(nc, 4);
    media = await startMediaService(nc, { pool: { size: 1, logLevel: 'error' }, promptsDir: PROMPTS, listenIp: '127.0.0.1' });
    edge = await startSipEdge({ port: 0, host: '127.0.0.1', nc, voice: engineVoice({ store: new StoreClient(nc), actors }), menu: parseMenu(DEFAULT_MENU), account: '+862100000000', holdPrompt: 'music.hold' });
    // On duty in the queue, but Chinese only: the English caller waits.
    await actors.tell('agent/zoe', { type: 'profile.set', skills: { zh: 1 }, queues: ['support'] });
    await actors.tell('agent/zoe', { type: 'login' });
  });

  after(async () => {
    await edge?.stop();
    await media?.stop();
    await engine?.stop();
    await nats?.stop();
  });

  test('queued after pressing 1: music, "You are number one in the queue." byte for byte, then music again', { timeout: 60_000 }, async (t) => {
    const caller = await ear();
    keysPcap(join(dir, 'dtmf-1.pcap'), [{ digit: '1', atMs: 0 }]);
    const run = sipp({ port: edge.port, scenario: 'uac-ivr.xml', args: ['-key', 'rtp_port', String(caller.port), '-key', 'caller', '+8613800138111', '-mi', '127.0.0.1', '-mp', String(await freePort())], timeoutMs: 45_000, cwd: dir });

    const callId = await waitFor('call set up', () => [...edge.calls.keys()][0], 10_000, 50);
    const conversationId = await waitFor('queued after DTMF 1', () => edge.calls.get(callId)?.conversationId, 15_000, 50);
    const pieces = positionAnnouncement({ position: 1, language: 'en' });
    assert.deepEqual(pieces, ['ann.position.en', 'num.1.en', 'ann.in-queue.en']);
    // Heard in full: the sentence is about 2 s, then the music comes back.
    const heard = await waitFor(
      'the position sentence, then music',
      () => {
        const last = promptHeard(caller.heard, 'ann.in-queue.en');
        return last.share >= 0.9 && promptHeard(caller.heard, 'music.hold', last.lastIndex + 1).share > 0.05 ? caller.heard : undefined;
      },
      15_000,
      100,
    );
    const at = pieces.map((p) => ({ p, ...promptHeard(heard, p) }));
    for (const x of at) assert.ok(x.share >= 0.9, `${x.p}: ${Math.round(x.share * 100)}% of its ${x.frames} packets heard`);
    assert.ok(at[0].lastIndex < at[1].lastIndex && at[1].lastIndex < at[2].lastIndex, 'the pieces in order');
    const musicBefore = promptHeard(heard.slice(0, at[0].lastIndex), 'music.hold');
    assert.ok(musicBefore.lastIndex >= 0, 'hold music before the announcement');
    assert.ok(heard.every((h) => h.pt === 0 && h.payload.length === 160), 'PCMU, 20 ms packets, as negotiated');

    const c = await actors.ask<{ value: string; context: ConversationContext }>(`conversation/${conversationId}`, { type: 'get' });
    assert.equal(c.value, 'queued');
    assert.deepEqual(c.context.position, { position: 1, estimatedWaitSec: -1 }, 'the queue told the conversation its place (no wait estimate yet: nobody was assigned)');
    t.diagnostic(`packets heard: ${heard.length}; position sentence ${at.map((x) => `${x.p} ${Math.round(x.share * 100)}%`).join(', ')}`);

    const r = await run;
    assert.equal(r.code, 0, `sipp failed:\n${r.out.slice(-2000)}`);
    await waitFor('abandoned', async () => (await actors.ask<{ value: string }>(`conversation/${conversationId}`, { type: 'get' })).value === 'closed', 10_000, 100);
    caller.close();
  });
});
