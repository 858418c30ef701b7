// A conversation's replies: they leave for the edge of the customer's channel with the thread to keep,
// and delivery states come back in order; a reply with nowhere to go fails visibly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentKind } from './agent.ts';
import { conversationKind, type ConversationContext } from './conversation.ts';
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
