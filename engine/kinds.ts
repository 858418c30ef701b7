// The actor kinds a core node hosts.
import type { ActorKind } from '../actors/kind.ts';

export const engineKinds: ActorKind[] = [];
