// What a customer writing on a text channel (SMS, email, messaging apps) is told about their place in
// the queue. Webchat and in-app chat show the live notice in their own log; callers hear IVR prompts.
import type { Channel } from './routing.ts';

export type TextNoticePolicy = { once: true } | { everySec: number };

/**
 * How often each text channel is told, on top of the queue's own pacing (reminders, big moves):
 * an email gets one acknowledgement; an SMS costs money and interrupts, so at most one in 10 minutes;
 * messaging apps at most one in 2 minutes.
 */
export const TEXT_NOTICES: Partial<Record<Channel, TextNoticePolicy>> = {
  email: { once: true },
  sms: { everySec: 600 },
  wecom: { everySec: 120 },
  dingtalk: { everySec: 120 },
  wechat: { everySec: 120 },
  douyin: { everySec: 120 },
  xiaohongshu: { everySec: 120 },
};

/** Whether a notice is due on this channel, given when the customer was last texted one for this request. */
export function textNoticeDue(channel: Channel, lastAt: number | undefined, at: number): boolean {
  const policy = TEXT_NOTICES[channel];
  if (!policy) return false;
  if (lastAt === undefined) return true;
  return 'everySec' in policy && at - lastAt >= policy.everySec * 1000;
}

/**
 * The sentence, in Chinese for a zh/cmn language tag and English otherwise (as the IVR prompts). The wait
 * is in whole minutes rounded up, "less than a minute" under 60 s; an unknown wait (negative) is left out.
 */
export function positionText(o: { position: number; estimatedWaitSec: number; language?: string }): string {
  const zh = !!o.language && /^(zh|cmn)\b/i.test(o.language);
  const wait = o.estimatedWaitSec >= 0 ? o.estimatedWaitSec : undefined;
  const minutes = wait === undefined ? 0 : Math.max(1, Math.ceil(wait / 60));
  if (zh) {
    const place = `您目前排在第 ${o.position} 位`;
    if (wait === undefined) return `${place}，客服人员会尽快回复您。`;
    return `${place}，预计等待${wait < 60 ? '不到 1 分钟' : `约 ${minutes} 分钟`}。`;
  }
  const place = `You are number ${o.position} in the queue`;
  if (wait === undefined) return `${place}; an agent will reply as soon as possible.`;
  return `${place}. Estimated wait: ${wait < 60 ? 'less than a minute' : `about ${minutes} minute${minutes === 1 ? '' : 's'}`}.`;
}
