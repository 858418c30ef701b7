import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DATA_CODING_GSM, DATA_CODING_UCS2, ESM_UDHI, SmsTooLong, concatInfo, encodeSms, gsmSeptets, parseReceipt, receiptOutcome } from './encoding.ts';

const payload = (p: { bytes: Uint8Array; esmClass: number }) => (p.esmClass & ESM_UDHI ? p.bytes.slice(6) : p.bytes);
const ucs2 = (b: Uint8Array) => String.fromCharCode(...Array.from({ length: b.length / 2 }, (_, i) => (b[2 * i] << 8) | b[2 * i + 1]));

test('GSM-7: 160 septets fit one SMS, 161 take two parts of 153 + 8 with a concatenation UDH', () => {
  const one = encodeSms('a'.repeat(160), { ref: 7 });
  assert.equal(one.length, 1);
  assert.equal(one[0].dataCoding, DATA_CODING_GSM);
  assert.equal(one[0].esmClass, 0);
  assert.equal(one[0].bytes.length, 160);
  const two = encodeSms('a'.repeat(161), { ref: 7 });
  assert.deepEqual(two.map((p) => payload(p).length), [153, 8]);
  assert.deepEqual(Array.from(two[1].bytes.slice(0, 6)), [0x05, 0x00, 0x03, 7, 2, 2]);
  // Extension characters take two septets, and an escape is never cut from its character.
  assert.deepEqual(gsmSeptets('€['), [0x1b, 0x65, 0x1b, 0x3c]);
  const esc = encodeSms('a'.repeat(152) + '€' + 'b'.repeat(10), { ref: 1 });
  assert.equal(payload(esc[0]).length, 152);
  assert.deepEqual(Array.from(payload(esc[1]).slice(0, 2)), [0x1b, 0x65]);
});

test('UCS-2 for Chinese: 70 characters fit one SMS, longer texts 67 per part, surrogate pairs kept whole', () => {
  const zh = '您好，您的订单已发货，请注意查收。';
  const one = encodeSms(zh, { ref: 1 });
  assert.equal(one.length, 1);
  assert.equal(one[0].dataCoding, DATA_CODING_UCS2);
  assert.equal(ucs2(one[0].bytes), zh);
  assert.equal(encodeSms('中'.repeat(70), { ref: 1 }).length, 1);
  const long = '中'.repeat(71);
  const parts = encodeSms(long, { ref: 200 });
  assert.deepEqual(parts.map((p) => payload(p).length / 2), [67, 4]);
  assert.equal(parts.map((p) => ucs2(payload(p))).join(''), long);
  const emoji = '中'.repeat(66) + '😀' + '中'.repeat(10);
  const ep = encodeSms(emoji, { ref: 3 });
  assert.equal(payload(ep[0]).length / 2, 66, 'the pair moved whole to the next part');
  assert.equal(ep.map((p) => ucs2(payload(p))).join(''), emoji);
  assert.throws(() => encodeSms('中'.repeat(67 * 3 + 1), { ref: 1, maxParts: 3 }), SmsTooLong);
});

test('concatenation headers (8- and 16-bit references) and receipts', () => {
  assert.deepEqual(concatInfo([Uint8Array.from([0x00, 3, 9, 3, 2])]), { ref: 9, total: 3, seq: 2 });
  assert.deepEqual(concatInfo([Uint8Array.from([0x08, 4, 1, 2, 2, 1])]), { ref: 258, total: 2, seq: 1 });
  assert.equal(concatInfo([Uint8Array.from([0x00, 3, 9, 2, 3])]), undefined, 'seq beyond total');
  assert.equal(concatInfo(undefined), undefined);
  const r = parseReceipt('id:0A1B sub:001 dlvrd:000 submit date:2401011200 done date:2401011201 stat:UNDELIV err:011 text:hello');
  assert.deepEqual(r, { id: '0A1B', stat: 'UNDELIV', err: '011' });
  assert.equal(parseReceipt('just a text'), undefined);
  assert.deepEqual(receiptOutcome('DELIVRD'), { state: 'delivered' });
  assert.deepEqual(receiptOutcome('REJECTD'), { state: 'failed', permanent: true });
  assert.deepEqual(receiptOutcome('EXPIRED'), { state: 'failed', permanent: false });
  assert.equal(receiptOutcome('ENROUTE'), undefined);
});
