// A conversation's replies: they leave for the edge of the customer's channel with the thread to keep,
// and delivery states come back in order; a reply with nowhere to go fails visibly. An outbound call's
// progress: a chat escalated to a call stays one conversation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentKind } from './agent.ts';
import { conversationKind, type ConversationContext, type CsatAnswer } from './conversation.ts';
import { customerKind, type CustomerContext } from './customer.ts';
import { queueKind } from './queue.ts';
import { Sim } from '../tests/support/sim.ts';

function assignedConversation(sim: Sim) {
  sim.send('queue/q', { type: 'configure', config: {} });
  sim.send('agent/a1', { type: 'profile.set', skills: { en: 1 }, queues: ['q'] });
  sim.send('agent/a1', { type: 'login' });
  sim.send('conversation/c1', { type: 'open', customer: 'u1', channel: 'email', queue: 'q' });
  sim.send('conversation/c1', {
    type: 'customer.message',
    channel: 'email',
    replyTo: { account: 'support@example.test', handle: 'alice@example.test', inReplyTo: '<m1@example.test>', references: ['<m1@example.test>'], subject: 'Refund' },
  });
  const offered = sim.log.find((m) => m.to === 'agent/a1' && m.event.type === 'reserve');
  assert.ok(offered, 'the agent was offered the conversation');
  sim.send('agent/a1', { type: 'offer.accept', reservationId: (offered.event as unknown as { reservationId: string }).reservationId });
  assert.equal(sim.state('conversation/c1').value, 'active');
}

test('an agent reply is published to the channel edge with the address and thread; states move forward only', () => {
  const sim = new Sim({ agent: agentKind, conversation: conversationKind, queue: queueKind });
  assignedConversation(sim);
  sim.send('conversation/c1', { type: 'agent.reply', messageId: 'r1', agent: 'a1', text: 'Refund sent.' });
  const out = sim.notices.find((n) => n.subject === 'cc.out.email');
  assert.ok(out, 'the reply went to the email edge subject');
  assert.deepEqual(out.data, {
    channel: 'email',
    account: 'support@example.test',
    conversationId: 'c1',
    messageId: 'r1',
    to: { handle: 'alice@example.test', displayName: undefined },
    text: 'Refund sent.',
    html: undefined,
    attachments: [],
    thread: { inReplyTo: '<m1@example.test>', references: ['<m1@example.test>'], subject: 'Refund' },
  });
  const c = () => sim.state('conversation/c1').context as ConversationContext;
  assert.equal(c().deliveries?.r1.state, 'queued');
  assert.ok(c().firstResponseAt, 'the reply counts as the first response');
  sim.send('conversation/c1', { type: 'delivery', messageId: 'r1', state: 'delivered' });
  sim.send('conversation/c1', { type: 'delivery', messageId: 'r1', state: 'sent' });
  assert.equal(c().deliveries?.r1.state, 'delivered', 'a late "sent" does not hide "delivered"');
  sim.send('conversation/c1', { type: 'delivery', messageId: 'r1', state: 'failed', reason: 'mailbox full', permanent: true });
  assert.deepEqual({ ...c().deliveries?.r1, at: 0 }, { state: 'failed', reason: 'mailbox full', permanent: true, at: 0 });
  assert.ok(sim.notices.some((n) => n.subject === 'cc.conversation.c1.delivery' && (n.data as { state: string }).state === 'failed'), 'the agent sees the failure');
});

test('a reply on a channel the customer never used fails at once with the reason', () => {
  const sim = new Sim({ agent: agentKind, conversation: conversationKind, queue: queueKind });
  assignedConversation(sim);
  sim.send('conversation/c1', { type: 'agent.reply', messageId: 'r2', agent: 'a1', channel: 'sms', text: 'hi' });
  assert.equal(sim.notices.filter((n) => n.subject.startsWith('cc.out.')).length, 0);
  const d = (sim.state('conversation/c1').context as ConversationContext).deliveries?.r2;
  assert.equal(d?.state, 'failed');
  assert.equal(d?.reason, 'no sms address for this customer');
});

test('a conversation an agent opens to a customer knows where replies go without any customer message', () => {
  const sim = new Sim({ agent: agentKind, conversation: conversationKind, queue: queueKind });
  sim.send('queue/q', { type: 'configure', config: {} });
  sim.send('agent/a1', { type: 'profile.set', skills: { en: 1 }, queues: ['q'] });
  sim.send('agent/a1', { type: 'login' });
  sim.send('conversation/o1', { type: 'open', customer: 'u1', channel: 'sms', queue: 'q', replyTo: { account: '10690001', handle: '+8613812345678' } });
  const offered = sim.log.find((m) => m.to === 'agent/a1' && m.event.type === 'reserve');
  sim.send('agent/a1', { type: 'offer.accept', reservationId: (offered!.event as unknown as { reservationId: string }).reservationId });
  sim.send('conversation/o1', { type: 'agent.reply', messageId: 'p1', agent: 'a1', text: 'Your order shipped.' });
  const out = sim.notices.find((n) => n.subject === 'cc.out.sms');
  assert.equal((out?.data as { to: { handle: string } }).to.handle, '+8613812345678');
  assert.equal((sim.state('conversation/o1').context as ConversationContext).lastCustomerAt, undefined, 'no customer message was invented');
});

test('closing and reopening publish the conversation status for the identity graph; after the window nothing reopens', () => {
  const sim = new Sim({ agent: agentKind, conversation: conversationKind, queue: queueKind });
  assignedConversation(sim);
  // As the runtime sends them: JSON (fields left undefined are not sent).
  const statuses = () => sim.notices.filter((n) => n.subject === 'cc.events.conversation.c1').map((n) => JSON.parse(JSON.stringify(n.data)) as Record<string, unknown>);
  assert.equal(statuses().length, 0, 'opening publishes nothing: the store created it open');

  sim.send('conversation/c1', { type: 'wrapup' });
  sim.advance(5_000);
  const closedAt = sim.now;
  sim.send('conversation/c1', { type: 'close', disposition: 'refunded' });
  assert.equal(sim.state('conversation/c1').value, 'closed');
  assert.deepEqual(statuses(), [{ type: 'conversation.status', conversation: 'c1', customer: 'u1', channel: 'email', status: 'closed', at: closedAt, by: 'agent/a1', disposition: 'refunded', outcome: 'assigned' }]);

  // The customer writes 2 h later: reopened, and said so, at the message's time.
  sim.advance(2 * 3600_000);
  sim.send('conversation/c1', { type: 'customer.message', channel: 'email' });
  assert.equal(sim.state('conversation/c1').value, 'offered', 'back in the queue and offered again');
  assert.deepEqual(statuses()[1], { type: 'conversation.status', conversation: 'c1', customer: 'u1', channel: 'email', status: 'open', at: sim.now, by: 'customer' });

  // Abandoned while offered: closed by the customer, no disposition.
  sim.send('conversation/c1', { type: 'customer.left' });
  assert.deepEqual(statuses()[2], { type: 'conversation.status', conversation: 'c1', customer: 'u1', channel: 'email', status: 'closed', at: sim.now, by: 'customer', outcome: 'abandoned' });

  // A message after the window: the conversation stays closed and publishes nothing (the store starts a new one).
  sim.advance(24 * 3600_000 + 1);
  sim.send('conversation/c1', { type: 'customer.message', channel: 'email' });
  assert.equal(sim.state('conversation/c1').value, 'closed');
  assert.equal(statuses().length, 3);
});

test('a reopen is published no earlier than 1 ms after the close, even for a message stamped before it', () => {
  const sim = new Sim({ agent: agentKind, conversation: conversationKind, queue: queueKind });
  sim.send('queue/q', { type: 'configure', config: {} });
  sim.send('conversation/c2', { type: 'open', customer: 'u2', channel: 'sms', queue: 'q' });
  sim.send('conversation/c2', { type: 'queue.refused', queue: 'q', reason: 'no agents' });
  const closed = sim.notices.filter((n) => n.subject === 'cc.events.conversation.c2').map((n) => n.data as Record<string, unknown>);
  assert.deepEqual([closed[0].status, closed[0].by, closed[0].outcome], ['closed', 'queue/q', 'refused']);
  const closedAt = closed[0].at as number;
  // A late SMS, sent before the refusal arrived.
  sim.send('conversation/c2', { type: 'customer.message', channel: 'sms', at: closedAt - 500 });
  const reopened = sim.notices.filter((n) => n.subject === 'cc.events.conversation.c2').map((n) => n.data as Record<string, unknown>)[1];
  assert.deepEqual([reopened.status, reopened.at], ['open', closedAt + 1]);
});

test('a chat escalated to an outbound call stays one conversation: voice while the call lasts, back to the chat after', () => {
  const sim = new Sim({ agent: agentKind, conversation: conversationKind, queue: queueKind });
  assignedConversation(sim);
  const c = () => sim.state('conversation/c1').context as ConversationContext;
  const agentTold = (channel: string) => sim.log.filter((m) => m.to === 'agent/a1' && m.event.type === 'task.channel' && (m.event as unknown as { channel: string }).channel === channel).length;
  sim.send('conversation/c1', { type: 'call.progress', callId: 'k1', state: 'dialing' });
  assert.equal(c().channel, 'voice');
  assert.equal(agentTold('voice'), 1, "the agent's load moves to voice");
  sim.send('conversation/c1', { type: 'call.progress', callId: 'k1', state: 'ringing' });
  sim.send('conversation/c1', { type: 'call.progress', callId: 'k1', state: 'answered' });
  assert.equal(c().call?.state, 'answered');
  sim.send('conversation/c1', { type: 'call.progress', callId: 'old', state: 'ended', reason: 'an earlier call' });
  assert.equal(c().call?.state, 'answered', "an older call's news is ignored");
  sim.send('conversation/c1', { type: 'call.progress', callId: 'k1', state: 'ended', reason: 'callee hung up' });
  assert.equal(sim.state('conversation/c1').value, 'active', 'the conversation goes on');
  assert.deepEqual({ channel: c().channel, channels: c().channels.map((x) => x.channel), call: { ...c().call, at: 0 } }, {
    channel: 'email',
    channels: ['email', 'voice', 'email'],
    call: { callId: 'k1', state: 'ended', at: 0, reason: 'callee hung up', from: 'email' },
  });
  assert.equal(agentTold('email'), 1);
  const states = sim.notices.filter((n) => n.subject === 'cc.conversation.c1.call').map((n) => (n.data as { state: string }).state);
  assert.deepEqual(states, ['dialing', 'ringing', 'answered', 'ended'], 'the workspace sees each step');
});

test('a voice-only outbound call that fails abandons its conversation; one answered by an agent ends in wrap-up', () => {
  const sim = new Sim({ agent: agentKind, conversation: conversationKind, queue: queueKind });
  sim.send('queue/q', { type: 'configure', config: {} });
  sim.send('conversation/o1', { type: 'open', customer: 'u1', channel: 'voice', queue: 'q', attrs: { outbound: true } });
  sim.send('conversation/o1', { type: 'call.progress', callId: 'k1', state: 'dialing' });
  sim.send('conversation/o1', { type: 'call.progress', callId: 'k1', state: 'failed', reason: '486 Busy Here' });
  const o1 = sim.state('conversation/o1');
  assert.equal(o1.value, 'closed');
  assert.equal((o1.context as ConversationContext).outcome, 'abandoned');
  assert.equal((o1.context as ConversationContext).call?.reason, '486 Busy Here');

  sim.send('agent/a1', { type: 'profile.set', skills: { en: 1 }, queues: ['q'] });
  sim.send('agent/a1', { type: 'login' });
  sim.send('conversation/o2', { type: 'open', customer: 'u2', channel: 'voice', queue: 'q', attrs: { outbound: true } });
  sim.send('conversation/o2', { type: 'call.progress', callId: 'k2', state: 'dialing' });
  sim.send('conversation/o2', { type: 'call.progress', callId: 'k2', state: 'answered' });
  const offered = sim.log.find((m) => m.to === 'agent/a1' && m.event.type === 'reserve');
  sim.send('agent/a1', { type: 'offer.accept', reservationId: (offered!.event as unknown as { reservationId: string }).reservationId });
  assert.equal(sim.state('conversation/o2').value, 'active');
  sim.send('conversation/o2', { type: 'call.progress', callId: 'k2', state: 'ended', reason: 'callee hung up' });
  assert.equal(sim.state('conversation/o2').value, 'wrapup');
  assert.equal((sim.state('conversation/o2').context as ConversationContext).channels.length, 1, 'it never left voice');
});

test('a rating (csat.rated) is taken once, after an agent served the conversation, from its own customer only', () => {
  const sim = new Sim({ agent: agentKind, conversation: conversationKind, queue: queueKind });
  assignedConversation(sim);
  const c = () => sim.state('conversation/c1').context as ConversationContext;
  const rate = (score: number, extra: Record<string, unknown> = {}) => {
    sim.send('conversation/c1', { type: 'csat.rated', score, by: { channel: 'email', handle: 'alice@example.test' }, ...extra });
    return sim.replies.at(-1) as CsatAnswer;
  };
  assert.deepEqual(rate(5), { ok: false, reason: 'the conversation is still going on: rate it once it is closed' });
  assert.throws(() => rate(6), /score must be 1 to 5/, 'the schema refuses a score out of range');
  assert.throws(() => rate(3.5), /whole number/);

  sim.send('conversation/c1', { type: 'wrapup' });
  sim.advance(3000);
  sim.send('conversation/c1', { type: 'close', disposition: 'resolved' });
  const notice = sim.notices.filter((n) => n.subject === 'cc.conversation.c1.notice').at(-1);
  assert.deepEqual(notice?.data, { kind: 'conversation.closed', csat: true }, 'the customer is told it ended and asked to rate it');

  assert.deepEqual(rate(4, { by: { channel: 'email', handle: 'mallory@example.test' } }), { ok: false, reason: "only the conversation's customer may rate it" });
  assert.deepEqual(rate(4, { by: { channel: 'sms', handle: 'alice@example.test' } }), { ok: false, reason: "only the conversation's customer may rate it" }, 'nor on a channel it never used');
  assert.equal(c().csat, undefined);

  const ratedAt = sim.now;
  assert.deepEqual(rate(4, { comment: 'Quick and kind' }), { ok: true, duplicate: false, conversation: 'c1', customer: 'u1', csat: { score: 4, comment: 'Quick and kind', at: ratedAt, channel: 'email' } });
  assert.deepEqual(c().csat, { score: 4, comment: 'Quick and kind', at: ratedAt, channel: 'email' });
  sim.advance(1000);
  // The same rating sent again (a client resending after a reconnect) is answered as taken; another is refused.
  assert.deepEqual(rate(4, { comment: 'Quick and kind' }), { ok: true, duplicate: true, conversation: 'c1', customer: 'u1', csat: { score: 4, comment: 'Quick and kind', at: ratedAt, channel: 'email' } });
  assert.deepEqual(rate(1), { ok: false, reason: 'this conversation was already rated (4 of 5)' });
  assert.equal(c().csat?.score, 4);

  // Reopened by the customer and closed again: no second invitation, and the rating stays.
  sim.send('conversation/c1', { type: 'customer.message', channel: 'email' });
  assert.deepEqual(rate(2), { ok: false, reason: 'the conversation is still going on: rate it once it is closed' });
  sim.send('conversation/c1', { type: 'customer.left' });
  assert.equal(sim.state('conversation/c1').value, 'closed');
  assert.equal(c().csat?.score, 4);
});

test('a rating is taken in wrap-up; a conversation nobody served is not rated and not asked to be', () => {
  const sim = new Sim({ agent: agentKind, conversation: conversationKind, queue: queueKind });
  assignedConversation(sim);
  sim.send('conversation/c1', { type: 'wrapup' });
  sim.send('conversation/c1', { type: 'csat.rated', score: 5, by: { channel: 'email', handle: 'alice@example.test' } });
  assert.equal((sim.replies.at(-1) as CsatAnswer).ok, true);
  sim.send('conversation/c1', { type: 'close' });
  assert.deepEqual(sim.notices.filter((n) => n.subject === 'cc.conversation.c1.notice').at(-1)?.data, { kind: 'conversation.closed', csat: false }, 'already rated: not asked again');

  sim.send('conversation/c9', { type: 'open', customer: 'u9', channel: 'webchat', queue: 'nobody' });
  sim.send('conversation/c9', { type: 'customer.message', channel: 'webchat', replyTo: { account: 'shop', handle: 'visitor:x' } });
  sim.send('conversation/c9', { type: 'customer.left' });
  assert.equal(sim.state('conversation/c9').value, 'closed');
  assert.equal(sim.notices.filter((n) => n.subject === 'cc.conversation.c9.notice' && (n.data as { kind: string }).kind === 'conversation.closed').length, 0, 'an abandoned chat asks for no rating');
  sim.send('conversation/c9', { type: 'csat.rated', score: 1, by: { channel: 'webchat', handle: 'visitor:x' } });
  assert.deepEqual(sim.replies.at(-1), { ok: false, reason: 'no agent served this conversation: there is nothing to rate' });
  sim.send('conversation/c10', { type: 'csat.rated', score: 1, by: { channel: 'webchat', handle: 'visitor:x' } });
  assert.deepEqual(sim.replies.at(-1), { ok: false, reason: 'no such conversation' });
});

// ---- Answers to outreach: the customer learns which conversations we opened ----

const withCustomers = () => new Sim({ agent: agentKind, conversation: conversationKind, queue: queueKind, customer: customerKind });
/** A customer message as edges/inbound.ts tells it: the customer first (beside), then the conversation's open and message. */
function customerWrites(sim: Sim, conversation: string, channel: 'sms' | 'email' | 'webchat', queue = 'q') {
  sim.send('customer/u1', { type: 'message.inbound', channel, conversationId: conversation });
  sim.send(`conversation/${conversation}`, { type: 'open', customer: 'u1', channel, queue });
  sim.send(`conversation/${conversation}`, { type: 'customer.message', channel });
}
const usesOf = (sim: Sim) => {
  const stats = (sim.state('customer/u1').context as CustomerContext).channelStats;
  return Object.fromEntries(Object.entries(stats).map(([ch, x]) => [ch, { inbound: x.inbound, replies: x.replies }]));
};
const openedTells = (sim: Sim, conversation: string) =>
  sim.log.filter((m) => m.to === 'customer/u1' && m.event.type === 'conversation.opened' && (m.event as { conversationId?: string }).conversationId === conversation).map((m) => (m.event as { outreach?: boolean }).outreach ?? false);

test("an agent's outreach: the customer's first message there answers it, later ones are inbound", () => {
  const sim = withCustomers();
  sim.send('queue/q', { type: 'configure', config: {} });
  sim.send('conversation/o1', { type: 'open', customer: 'u1', channel: 'sms', queue: 'q', attrs: { outbound: true, by: 'a1' }, replyTo: { account: '10690001', handle: '+8613812345678' } });
  assert.equal((sim.state('conversation/o1').context as ConversationContext).outreach, true);
  assert.deepEqual(openedTells(sim, 'o1'), [true]);
  customerWrites(sim, 'o1', 'sms');
  customerWrites(sim, 'o1', 'sms');
  assert.deepEqual(usesOf(sim), { sms: { inbound: 1, replies: 1 } });
});

test("a campaign's conversation is opened by the answer: its delivery before the open marks it ours, and the answer counts once", () => {
  const sim = withCustomers();
  sim.send('queue/q', { type: 'configure', config: {} });
  // The campaign stored and sent its message; the edge reports it sent. Nothing opened the conversation.
  sim.send('conversation/cp1', { type: 'delivery', messageId: 'cp1m', state: 'sent' });
  assert.equal(sim.state('conversation/cp1').value, 'new');
  // The answer: the customer hears of it before the conversation says it opened (as the edge tells it).
  customerWrites(sim, 'cp1', 'email');
  assert.deepEqual(openedTells(sim, 'cp1'), [true]);
  assert.deepEqual(usesOf(sim), { email: { inbound: 0, replies: 1 } });
  customerWrites(sim, 'cp1', 'email');
  assert.deepEqual(usesOf(sim), { email: { inbound: 1, replies: 1 } });
});

test('a conversation the customer opened is not ours: inbound, even with deliveries of our replies; a failed send before an open marks nothing', () => {
  const sim = withCustomers();
  sim.send('queue/q', { type: 'configure', config: {} });
  customerWrites(sim, 'w1', 'webchat');
  sim.send('conversation/w1', { type: 'delivery', messageId: 'r1', state: 'sent' });
  customerWrites(sim, 'w1', 'webchat');
  assert.equal((sim.state('conversation/w1').context as ConversationContext).outreach, undefined);
  assert.deepEqual(openedTells(sim, 'w1'), [false]);
  assert.deepEqual(usesOf(sim), { webchat: { inbound: 2, replies: 0 } });
  // A campaign message that never left: its conversation is not marked.
  sim.send('conversation/cp2', { type: 'delivery', messageId: 'cp2m', state: 'failed', reason: 'no route', permanent: true });
  assert.equal((sim.state('conversation/cp2').context as ConversationContext).outreach, undefined);
});

test('a reopen says outreach only when the reopening message is the customer’s first there', () => {
  const sim = withCustomers();
  sim.send('queue/q', { type: 'configure', config: {} });
  // Opened by an agent, refused by the queue before the customer answered: closed, never answered.
  sim.send('conversation/o2', { type: 'open', customer: 'u1', channel: 'sms', queue: 'q', attrs: { outbound: true } });
  sim.send('conversation/o2', { type: 'queue.refused', queue: 'q', reason: 'no agents' });
  assert.equal(sim.state('conversation/o2').value, 'closed');
  // Their answer an hour later reopens it: an answer to our outreach.
  sim.advance(3600_000);
  sim.send('customer/u1', { type: 'message.inbound', channel: 'sms', conversationId: 'o2' });
  sim.send('conversation/o2', { type: 'customer.message', channel: 'sms' });
  assert.equal(sim.state('conversation/o2').value, 'queued');
  assert.deepEqual(openedTells(sim, 'o2'), [true, true]);
  assert.deepEqual(usesOf(sim), { sms: { inbound: 0, replies: 1 } });
  // Closed again and reopened by another message: their own use now.
  sim.send('conversation/o2', { type: 'queue.refused', queue: 'q', reason: 'no agents' });
  sim.send('customer/u1', { type: 'message.inbound', channel: 'sms', conversationId: 'o2' });
  sim.send('conversation/o2', { type: 'customer.message', channel: 'sms' });
  assert.deepEqual(openedTells(sim, 'o2'), [true, true, false]);
  assert.deepEqual(usesOf(sim), { sms: { inbound: 1, replies: 1 } });
});

test('customers on text channels are texted their place in the queue: email once, SMS at most every 10 minutes, webchat never', () => {
  // No queue: the test sends its notices itself.
  const sim = new Sim({ conversation: conversationKind });
  const texts = (channel: string) => sim.notices.filter((n) => n.subject === `cc.out.${channel}`).map((n) => n.data as { messageId: string; text: string; to: { handle: string }; thread: { subject?: string } });
  sim.send('conversation/e1', { type: 'open', customer: 'u1', channel: 'email', queue: 'q', language: 'en' });
  sim.send('conversation/e1', { type: 'customer.message', channel: 'email', replyTo: { account: 'support@example.test', handle: 'alice@example.test', subject: 'Refund' } });
  sim.send('conversation/s1', { type: 'open', customer: 'u2', channel: 'sms', queue: 'q', language: 'zh-CN' });
  sim.send('conversation/s1', { type: 'customer.message', channel: 'sms', replyTo: { account: '10690001', handle: '+8613812345678' } });
  sim.send('conversation/w1', { type: 'open', customer: 'u3', channel: 'webchat', queue: 'q' });
  sim.send('conversation/w1', { type: 'customer.message', channel: 'webchat', replyTo: { account: 'site', handle: 'v1' } });
  const position = (id: string, position: number, estimatedWaitSec: number) => sim.send(`conversation/${id}`, { type: 'queue.position', queue: 'q', position, estimatedWaitSec });

  position('e1', 3, 250);
  position('s1', 2, 30);
  position('w1', 1, -1);
  assert.deepEqual(texts('email').map((t) => [t.messageId, t.text, t.to.handle, t.thread.subject]), [['e1:position:1', 'You are number 3 in the queue. Estimated wait: about 5 minutes.', 'alice@example.test', 'Refund']]);
  assert.deepEqual(texts('sms').map((t) => [t.messageId, t.text]), [['s1:position:1', '您目前排在第 2 位，预计等待不到 1 分钟。']]);
  assert.equal(texts('webchat').length, 0, 'web chat shows the live notice instead');
  assert.ok(sim.notices.some((n) => n.subject === 'cc.conversation.w1.notice'), 'the live notice is still sent');
  const ctx = (id: string) => sim.state(`conversation/${id}`).context as ConversationContext;
  assert.equal(ctx('e1').deliveries?.['e1:position:1'].state, 'queued', 'the notice is tracked like any reply');

  // The queue's reminders and moves: the email customer is not written to again; SMS waits 10 minutes.
  sim.advance(5 * 60_000);
  position('e1', 2, 120);
  position('s1', 1, 70);
  assert.equal(texts('email').length, 1);
  assert.equal(texts('sms').length, 1);
  sim.advance(5 * 60_000);
  position('s1', 1, 90);
  position('e1', 1, 30);
  assert.equal(texts('email').length, 1);
  assert.deepEqual(texts('sms').map((t) => t.text).slice(1), ['您目前排在第 1 位，预计等待约 2 分钟。']);
  assert.deepEqual(ctx('s1').position, { position: 1, estimatedWaitSec: 90 });
});

test('a late position notice after the offer is kept but not texted; a reopened email conversation is acknowledged again', () => {
  const sim = new Sim({ agent: agentKind, conversation: conversationKind, queue: queueKind });
  sim.send('queue/q', { type: 'configure', config: {} });
  const texts = () => sim.notices.filter((n) => n.subject === 'cc.out.email').map((n) => (n.data as { messageId: string }).messageId);
  sim.send('conversation/e2', { type: 'open', customer: 'u1', channel: 'email', queue: 'q' });
  sim.send('conversation/e2', { type: 'customer.message', channel: 'email', replyTo: { account: 'support@example.test', handle: 'bob@example.test' } });
  sim.send('conversation/e2', { type: 'queue.position', queue: 'q', position: 1, estimatedWaitSec: -1 });
  assert.deepEqual(texts(), ['e2:position:1']);
  assert.match((sim.notices.find((n) => n.subject === 'cc.out.email')!.data as { text: string }).text, /^You are number 1 in the queue; an agent will reply as soon as possible\.$/);
  sim.send('agent/a1', { type: 'profile.set', skills: {}, queues: ['q'] });
  sim.send('agent/a1', { type: 'login' });
  assert.equal(sim.state('conversation/e2').value, 'offered');
  sim.send('conversation/e2', { type: 'queue.position', queue: 'q', position: 1, estimatedWaitSec: 10 });
  const reservationId = (sim.log.find((m) => m.to === 'agent/a1' && m.event.type === 'reserve')!.event as unknown as { reservationId: string }).reservationId;
  sim.send('agent/a1', { type: 'offer.accept', reservationId });
  sim.send('conversation/e2', { type: 'wrapup' });
  sim.send('conversation/e2', { type: 'close', disposition: 'answered' });
  assert.equal(sim.state('conversation/e2').value, 'closed');
  assert.deepEqual(texts(), ['e2:position:1'], 'nothing texted after the offer');
  // Nobody free now (a1 logs out): the reopened conversation waits, and its new request is acknowledged.
  sim.send('agent/a1', { type: 'logout' });
  sim.send('conversation/e2', { type: 'customer.message', channel: 'email' });
  assert.equal(sim.state('conversation/e2').value, 'queued');
  sim.send('conversation/e2', { type: 'queue.position', queue: 'q', position: 1, estimatedWaitSec: 60 });
  assert.deepEqual(texts(), ['e2:position:1', 'e2:position:2'], 'the new request is acknowledged, under a new message id');
});
