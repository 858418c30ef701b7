import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { canSee, logRedaction, maskAddress, maskEmail, maskPhone, maskText, redactForLog, show, type Sensitive, type Viewer } from './mask.ts';

test('maskPhone', () => {
  assert.equal(maskPhone('13812345678'), '138****5678');
  assert.equal(maskPhone('+8613812345678'), '+86138****5678');
  assert.equal(maskPhone('+86 138-1234-5678'), '+86138****5678');
  assert.equal(maskPhone('+1 (415) 555-2671'), '+141****2671');
  assert.equal(maskPhone('(+86) 138 1234 5678'), '+86138****5678');
  assert.equal(maskPhone('010-65529988'), '010****9988');
  assert.equal(maskPhone('65529988'), '****9988', '8 digits keep the last 4');
  assert.equal(maskPhone('5552671'), '****671', '7 digits keep the last 3');
  assert.equal(maskPhone('10086'), '***86', 'short numbers keep the last 2');
  assert.equal(maskPhone('12'), '***');
  assert.equal(maskPhone(''), '***');
  assert.equal(maskPhone('138****5678'), '138****5678', 'masking twice changes nothing');
  assert.equal(maskPhone('+86138****5678'), '+86138****5678');
  for (const p of ['13812345678', '+8613812345678', '5552671', '95588']) {
    const masked = maskPhone(p);
    assert.ok(masked.replace(/\D/g, '').length <= Math.ceil(p.replace(/\D/g, '').length * 0.7), `${masked} hides enough of ${p}`);
  }
});

test('maskEmail', () => {
  assert.equal(maskEmail('alice@example.com'), 'a***@example.com');
  assert.equal(maskEmail(' Bob.Smith+tag@mail.example.org '), 'B***@mail.example.org');
  assert.equal(maskEmail('张三@例子.中国'), '张***@例子.中国');
  assert.equal(maskEmail('@example.com'), '***@example.com');
  assert.equal(maskEmail('not an email'), '***');
  assert.equal(maskEmail('alice@'), '***');
});

test('maskAddress reduces to the city', () => {
  assert.equal(maskAddress({ city: '深圳市', line1: '南山区科技园科苑路15号' }), '深圳市');
  assert.equal(maskAddress({ line1: '1 Main St' }), '***', 'structured without a city');
  assert.equal(maskAddress('广东省深圳市南山区科技园科苑路15号'), '深圳市');
  assert.equal(maskAddress('中国广东省广州市天河区天河路385号'), '广州市');
  assert.equal(maskAddress('北京市朝阳区建国路88号'), '北京市');
  assert.equal(maskAddress('上海浦东新区世纪大道100号'), '上海市');
  assert.equal(maskAddress('新疆维吾尔自治区乌鲁木齐市天山区'), '乌鲁木齐市');
  assert.equal(maskAddress('广西壮族自治区南宁市青秀区'), '南宁市');
  assert.equal(maskAddress('浙江杭州市西湖区文三路'), '杭州市', 'province without 省');
  assert.equal(maskAddress('四川省阿坝藏族羌族自治州马尔康市'), '阿坝藏族羌族自治州');
  assert.equal(maskAddress('南山区科技园'), '***', 'no city in the text');
  assert.equal(maskAddress('1 Main St, Springfield, IL 62704, USA'), 'Springfield');
  assert.equal(maskAddress('10 Downing Street, London SW1A 2AA, UK'), 'London');
  assert.equal(maskAddress('Hauptstraße 5, 10115 Berlin, Germany'), 'Berlin');
  assert.equal(maskAddress('Flat 2, 5 High St, Cambridge, CB2 1TN'), 'Cambridge');
  assert.equal(maskAddress('221B Baker Street'), '***', 'one line: no city can be told apart');
  assert.equal(maskAddress(''), '***');
});

test('canSee: the policy table', () => {
  const fields: Sensitive[] = ['phone', 'email', 'address', 'text'];
  const table = Object.fromEntries((['agent', 'supervisor', 'admin', 'system'] as Viewer[]).map((v) => [v, fields.filter((f) => canSee(v, f))]));
  assert.deepEqual(table, {
    agent: [],
    supervisor: ['phone', 'email'],
    admin: ['phone', 'email', 'address', 'text'],
    system: ['phone', 'email', 'address', 'text'],
  });
  // Fail closed on values that slipped past the types (e.g. from a request).
  assert.equal(canSee('root' as Viewer, 'phone'), false);
  assert.equal(canSee('admin', 'ssn' as Sensitive), false);
  assert.equal(canSee('__proto__' as Viewer, 'phone'), false);
});

test('show: clear or masked by role', () => {
  assert.equal(show('agent', 'phone', '13812345678'), '138****5678');
  assert.equal(show('supervisor', 'phone', '13812345678'), '13812345678');
  assert.equal(show('agent', 'email', 'alice@example.com'), 'a***@example.com');
  assert.equal(show('supervisor', 'email', 'alice@example.com'), 'alice@example.com');
  assert.equal(show('supervisor', 'address', '广东省深圳市南山区科技园'), '深圳市');
  assert.equal(show('agent', 'address', { city: 'Springfield', line1: '1 Main St' }), 'Springfield');
  assert.equal(show('admin', 'address', { line1: '1 Main St', city: 'Springfield', postcode: '62704' }), '1 Main St, Springfield, 62704');
  assert.equal(show('agent', 'text', 'my card number is 4111 1111 1111 1111'), '***');
  assert.equal(show('supervisor', 'text', 'secret'), '***');
  assert.equal(show('system', 'text', 'secret'), 'secret');
  assert.equal(show('admin', 'phone', 'enc1.k1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA'), '***', 'a sealed value is never shown as data');
});

test('show and maskAddress take structured addresses declared as interfaces', () => {
  interface PostalAddress { line1: string; district?: string; city?: string }
  const a: PostalAddress = { line1: '科苑路15号', district: '南山区', city: '深圳市' };
  assert.equal(show('agent', 'address', a), '深圳市');
  assert.equal(show('admin', 'address', a), '科苑路15号, 南山区, 深圳市');
  assert.equal(maskAddress(a), '深圳市');
});

test('maskText finds emails and phone numbers in free text and leaves other numbers', () => {
  assert.equal(
    maskText('customer alice@example.com called from +86 138-1234-5678 and 13912345678'),
    'customer a***@example.com called from +86138****5678 and 139****5678',
  );
  assert.equal(maskText('客户地址：广东省深圳市南山区科技园科苑路15号，请核对'), '客户地址：深圳市，请核对');
  assert.equal(maskText('寄到北京市朝阳区建国路88号'), '寄到北京市');
  const plain = 'order 1732573680000 took 12345678 ms, id 01J9ZX, at 2025-11-25T10:00:00Z';
  assert.equal(maskText(plain), plain);
});

test('redactForLog masks by field name and by content, deeply', () => {
  const err = new Error('cannot reach bob@example.com');
  const out = redactForLog({
    phone: '+8613812345678',
    customer: { email: 'alice@example.com', mobile: 13812345678, address: '广东省深圳市南山区科技园', name: 'Alice' },
    list: [{ tel: '65529988' }],
    note: 'call 13812345678 please',
    sealed: { phone: 'enc1.k1.AAAAAAAAAAAAAAAA.BBBB' },
    count: 3,
    phoneCount: 2,
    remoteAddress: '127.0.0.1:4222',
    err,
  }) as Record<string, unknown> & { customer: object; sealed: { phone: string }; err: Error };
  assert.equal(out.phone, '+86138****5678');
  assert.deepEqual(out.customer, { email: 'a***@example.com', mobile: '138****5678', address: '深圳市', name: 'Alice' });
  assert.deepEqual(out.list, [{ tel: '****9988' }]);
  assert.equal(out.note, 'call 138****5678 please');
  assert.equal(out.sealed.phone, 'enc1.k1.AAAAAAAAAAAAAAAA.BBBB');
  assert.equal(out.count, 3);
  assert.equal(out.phoneCount, 2, 'small numbers under a phone-like key are counts');
  assert.equal(out.remoteAddress, '127.0.0.1:4222', 'network addresses stay readable');
  assert.ok(out.err instanceof Error);
  assert.equal(out.err.message, 'cannot reach b***@example.com');
  assert.equal(err.message, 'cannot reach bob@example.com', 'the original is not changed');
  const cyclic: Record<string, unknown> = { email: 'a@b.co' };
  cyclic.self = cyclic;
  assert.deepEqual(redactForLog(cyclic), { email: 'a***@b.co', self: '[Circular]' });
});

test('a real pino logger with logRedaction never writes phone, email or address in clear', async () => {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const log = pino({ level: 'debug', ...logRedaction }, stream);
  log.info({ phone: '13812345678', customer: { email: 'alice@example.com', address: { city: '深圳市', line1: '科苑路15号' } } }, 'inbound');
  log.warn('message from %s about %s', 'alice@example.com', '+86 138 1234 5678');
  log.error(new Error('SMTP rejected carol@example.org'), 'send failed');
  log.error({ err: new Error('no route to 13912345678') }, 'call failed');
  log.child({ email: 'dave@example.com' }).child({ conversation: 'c1', who: 'erin@example.com' }).info({ mobile: '+442079460958' }, 'child');
  log.info('address 广东省深圳市南山区科技园 on file');
  log.debug({ address: '广东省深圳市南山区科技园科苑路15号' }, 'moved');
  await new Promise((r) => setImmediate(r));
  assert.equal(lines.length, 7);
  const all = lines.join('\n');
  for (const secret of ['13812345678', '138 1234 5678', 'alice@example.com', 'carol@example.org', '13912345678', 'dave@example.com', 'erin@example.com', '2079460958', '科苑路']) {
    assert.ok(!all.includes(secret), `"${secret}" leaked: ${all}`);
  }
  const [first, second, third, fourth, fifth, sixth, seventh] = lines.map((l) => JSON.parse(l));
  assert.equal(first.phone, '138****5678');
  assert.deepEqual(first.customer, { email: 'a***@example.com', address: '深圳市' });
  assert.equal(second.msg, 'message from a***@example.com about +86138****5678');
  assert.equal(third.err.message, 'SMTP rejected c***@example.org');
  assert.equal(third.err.type, 'Error', "pino's err serializer still runs");
  assert.equal(fourth.err.message, 'no route to 139****5678');
  assert.equal(fifth.email, 'd***@example.com');
  assert.equal(fifth.who, 'e***@example.com');
  assert.equal(fifth.conversation, 'c1');
  assert.equal(typeof fifth.pid, 'number', "the root's bindings stay");
  assert.equal(fifth.mobile, '+4420****0958');
  assert.equal(sixth.msg, 'address 深圳市 on file');
  assert.equal(seventh.address, '深圳市');
});
