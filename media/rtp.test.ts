import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DtmfDetector, buildRtp, keyPressEvents, parseRtp, parseTelephoneEvent } from './rtp.ts';

test('a key press is RFC 4733 events: growing duration, the end three times, one digit for the detector', () => {
  const events = keyPressEvents('7', { clockRate: 8000 });
  const parsed = events.map((e) => parseTelephoneEvent(e.payload)!);
  assert.deepEqual(parsed.map((e) => e.duration), [160, 320, 480, 640, 800, 800, 800]);
  assert.deepEqual(parsed.map((e) => e.end), [false, false, false, false, true, true, true]);
  assert.ok(parsed.every((e) => e.digit === '7' && e.volume === 10));
  assert.deepEqual(events.map((e) => e.marker), [true, false, false, false, false, false, false]);
  // At opus's clock the durations scale; the detector counts each key once however many packets carry it.
  assert.equal(parseTelephoneEvent(keyPressEvents('#', { clockRate: 48000 }).at(-1)!.payload)!.duration, 4800);
  const detector = new DtmfDetector();
  const heard: string[] = [];
  let seq = 1;
  for (const [digit, timestamp] of [['1', 1000], ['#', 3000]] as const) {
    for (const e of keyPressEvents(digit, { clockRate: 8000 })) {
      const d = detector.push(parseRtp(buildRtp({ payloadType: 101, seq: seq++, timestamp, ssrc: 1, marker: e.marker, payload: e.payload }))!);
      if (d) heard.push(d);
    }
  }
  assert.deepEqual(heard, ['1', '#']);
  assert.throws(() => keyPressEvents('x', { clockRate: 8000 }), /not a DTMF key/);
});
