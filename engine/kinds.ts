// The actor kinds a core node hosts.
import type { ActorKind } from '../actors/kind.ts';
import { agentKind } from '../machines/agent.ts';
import { conversationKind } from '../machines/conversation.ts';
import { customerKind } from '../machines/customer.ts';
import { ivrKind } from '../machines/ivr.ts';
import { queueKind } from '../machines/queue.ts';

export const engineKinds: ActorKind[] = [customerKind, agentKind, conversationKind, queueKind, ivrKind];
