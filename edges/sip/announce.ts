// What a caller waiting in queue hears of their place: "You are number 12 in the queue. Your estimated
// wait is 3 minutes." (or 您现在排在第十二位。预计等待三分钟。), composed from prompt pieces that
// scripts/setup-voice.sh speaks once (sentence parts and number words), so no text-to-speech runs per call.
// Numbers are built the way each language says them: English from 0-19 and the tens ("forty" "five"),
// Chinese from 零-十 (十二 = 十 二, 四十五 = 四 十 五, 两分钟). Beyond 99 the caller hears "more than 99".

export type AnnounceLanguage = 'en' | 'zh';

/** The largest number spoken as such; anything above is "more than" it. */
export const MAX_SPOKEN = 99;

/** The call's language as the IVR left it ('zh', 'zh-CN', 'cmn' …); English otherwise. */
export function announceLanguage(language: string | null | undefined): AnnounceLanguage {
  return language && /^(zh|cmn)\b/i.test(language) ? 'zh' : 'en';
}

const num = (n: number | string, lang: AnnounceLanguage) => `num.${n}.${lang}`;

/** The number words for 0-99 in English: 0-19 are single pieces, then the tens and the ones. */
function englishNumber(n: number): string[] {
  if (n < 20) return [num(n, 'en')];
  const tens = Math.floor(n / 10) * 10;
  return n % 10 ? [num(tens, 'en'), num(n % 10, 'en')] : [num(tens, 'en')];
}

/**
 * The number words for 0-99 in Chinese: 十 for 10-19 (not 一十), 二十 …; `count` says 两 for 2 alone
 * (两分钟, but 第二位).
 */
function chineseNumber(n: number, count = false): string[] {
  if (n === 2 && count) return [num('liang', 'zh')];
  if (n <= 10) return [num(n, 'zh')];
  const tens = Math.floor(n / 10);
  const ones = n % 10;
  return [...(tens > 1 ? [num(tens, 'zh')] : []), num(10, 'zh'), ...(ones ? [num(ones, 'zh')] : [])];
}

/** A whole number as prompt pieces, "more than 99" beyond MAX_SPOKEN. */
export function numberPieces(n: number, lang: AnnounceLanguage, o: { count?: boolean } = {}): string[] {
  const whole = Math.max(0, Math.floor(n));
  if (whole > MAX_SPOKEN) return [`ann.more.${lang}`, ...numberPieces(MAX_SPOKEN, lang)];
  return lang === 'en' ? englishNumber(whole) : chineseNumber(whole, o.count);
}

/**
 * The sentence for a position notice as prompt ids, in playing order. The wait is in whole minutes rounded
 * up ("less than one minute" under 60 s); an unknown wait (the queue has no rate yet) is left out.
 */
export function positionAnnouncement(o: { position: number; estimatedWaitSec?: number; language?: string | null }): string[] {
  const lang = announceLanguage(o.language);
  const out: string[] = [];
  if (lang === 'en') out.push('ann.position.en', ...numberPieces(o.position, 'en'), 'ann.in-queue.en');
  else if (o.position > MAX_SPOKEN) out.push('ann.position.zh', ...numberPieces(MAX_SPOKEN, 'zh'), 'ann.place-after.zh');
  else out.push('ann.position.zh', ...numberPieces(o.position, 'zh'), 'ann.place.zh');
  if (o.estimatedWaitSec === undefined || !(o.estimatedWaitSec >= 0)) return out;
  const minutes = Math.ceil(o.estimatedWaitSec / 60);
  out.push(`ann.wait.${lang}`);
  if (minutes <= 1) {
    // 0-60 s: "less than one minute" / "不到一分钟"; exactly a minute is "one minute".
    if (o.estimatedWaitSec < 60) out.push(`ann.less.${lang}`);
    out.push(...numberPieces(1, lang, { count: true }), `ann.minute.${lang}`);
  } else {
    out.push(...numberPieces(minutes, lang, { count: true }), `ann.minutes.${lang}`);
  }
  return out;
}
