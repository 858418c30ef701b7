// What the recording tests' callers say (spoken by espeak-ng), and words of it that pocketsphinx's US
// English model gets right through G.711 and Opus. Digits, which the brief suggested, come out wrong
// with espeak-ng's voice at 8 kHz ("one two three" → "when you report"); these words survive.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const SAID = 'Hello. I would like to talk to an agent please. Please call me back tomorrow morning. Thank you very much. Goodbye.';
export const EXPECTED = ['would', 'like', 'talk', 'call', 'back', 'tomorrow', 'morning'];

/** The words of EXPECTED a transcript has. */
export const wordsHeard = (text: string) => EXPECTED.filter((w) => text.toLowerCase().split(/[^a-z']+/).includes(w));

/** SAID as raw 8 kHz G.711 μ-law bytes (espeak-ng, then sox), written beside `wav`. */
export function spokenUlaw(wav: string): Uint8Array {
  const ul = wav.replace(/\.wav$/, '') + '.ul';
  execFileSync('espeak-ng', ['-v', 'en-us', '-s', '130', '-w', wav, SAID]);
  execFileSync('sox', [wav, '-r', '8000', '-c', '1', '-t', 'ul', ul]);
  return new Uint8Array(readFileSync(ul));
}
