// Masking of personal data for viewers without the right to see it, and for logs.
// The policy (who sees which field in clear) lives in one table here; everything that shows or logs
// a sensitive field goes through `show` or the log redaction below.
import pino, { type LoggerOptions } from 'pino';

export type Viewer = 'agent' | 'supervisor' | 'admin' | 'system';
export type Sensitive = 'phone' | 'email' | 'address' | 'text';

/**
 * Who sees what in clear (everything else is masked):
 * - agent: nothing; the workspace shows 138****5678, a***@example.com, the city, and *** for text marked sensitive;
 * - supervisor: phone and email (to call back or audit), not addresses or sensitive text;
 * - admin and system (internal processing, e.g. sending the SMS): everything.
 * An unknown viewer or field sees nothing (fail closed).
 */
const POLICY: Readonly<Record<Viewer, readonly Sensitive[]>> = {
  agent: [],
  supervisor: ['phone', 'email'],
  admin: ['phone', 'email', 'address', 'text'],
  system: ['phone', 'email', 'address', 'text'],
};

export function canSee(viewer: Viewer, field: Sensitive): boolean {
  return Object.hasOwn(POLICY, viewer) && POLICY[viewer].includes(field);
}

/** An address: free text, or structured with a `city` among its parts (line1, district, postcode…). */
export type AddressValue = string | { city?: string } | object;

/** The value in clear if the viewer may see it, else masked. */
export function show(viewer: Viewer, field: Sensitive, value: AddressValue): string {
  if (value === null || value === undefined) return '';
  // Ciphertext is never shown as if it were the value (a caller forgot to open it): masked for everyone.
  if (typeof value === 'string' && value.startsWith('enc1.')) return MASK;
  if (canSee(viewer, field)) return typeof value === 'string' ? value : formatAddress(value);
  switch (field) {
    case 'phone':
      return maskPhone(typeof value === 'string' ? value : '');
    case 'email':
      return maskEmail(typeof value === 'string' ? value : '');
    case 'address':
      return maskAddress(value);
    default:
      return MASK;
  }
}

const MASK = '***';
const ALREADY_MASKED_PHONE = /^\+?(?:\d{1,7}\*{4}\d{4}|\*{1,6}\d{2,4})$/; // exactly maskPhone's output shapes

/**
 * Keeps a leading '+' and the digits; hides four digits before the last four:
 * '13812345678' → '138****5678', '+8613812345678' → '+86138****5678'.
 * Numbers of 8 digits or fewer show only their last 2-4 digits (about half): '10086' → '***86'.
 */
export function maskPhone(p: string): string {
  if (typeof p !== 'string') return MASK;
  if (ALREADY_MASKED_PHONE.test(p)) return p; // masking twice (a log of a shown value) keeps it
  const plus = /^[^\d]*\+/.test(p) ? '+' : '';
  const d = p.replace(/\D/g, '');
  if (d.length < 3) return MASK;
  if (d.length <= 8) {
    const keep = Math.min(4, Math.max(2, Math.floor(d.length / 2)));
    return `${plus}${'*'.repeat(d.length - keep)}${d.slice(-keep)}`;
  }
  return `${plus}${d.slice(0, d.length - 8)}****${d.slice(-4)}`;
}

/** 'alice@example.com' → 'a***@example.com'; anything that is not an email → '***'. */
export function maskEmail(e: string): string {
  if (typeof e !== 'string') return MASK;
  const s = e.trim();
  const at = s.lastIndexOf('@');
  if (at < 0 || at === s.length - 1) return MASK;
  const first = at > 0 ? [...s.slice(0, at)][0] : '';
  return `${first}${MASK}@${s.slice(at + 1)}`;
}

/**
 * An address reduced to its city. A structured address gives its `city`; free text is read best
 * effort: Chinese addresses by their administrative suffixes ('广东省深圳市南山区科技园…' → '深圳市'),
 * comma-separated ones by dropping the street line, postcodes, state codes and countries
 * ('1 Main St, Springfield, IL 62704, USA' → 'Springfield'). When no city can be told apart: '***'.
 */
export function maskAddress(a: AddressValue): string {
  if (a && typeof a === 'object') {
    const c = (a as { city?: unknown }).city;
    const city = typeof c === 'string' ? c.trim() : '';
    return city || MASK;
  }
  if (typeof a !== 'string') return MASK;
  const s = a.normalize('NFKC').trim();
  if (!s) return MASK;
  return (HAN.test(s) ? chineseCity(s) : latinCity(s)) ?? MASK;
}

const HAN = /[\u4e00-\u9fff]/;
const MUNICIPALITIES = ['北京', '上海', '天津', '重庆'];
const PROVINCES =
  '河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南|湖北|湖南|广东|海南|四川|贵州|云南|陕西|甘肃|青海|台湾|内蒙古|广西|西藏|宁夏|新疆';
const PROVINCE_PREFIX = new RegExp(
  `^(?:中国|中华人民共和国)?\\s*(?:(?:${PROVINCES})(?:省|壮族自治区|回族自治区|维吾尔自治区|自治区)?|[\\u4e00-\\u9fff]{2,7}?(?:省|自治区))\\s*`,
);

function chineseCity(s: string): string | undefined {
  const rest = s.replace(/^(?:中国|中华人民共和国)\s*/, '');
  for (const m of MUNICIPALITIES) if (rest.startsWith(m)) return `${m}市`;
  const afterProvince = rest.replace(PROVINCE_PREFIX, '');
  const city = /^[\u4e00-\u9fff]{1,10}?(?:市|自治州|地区|盟)/.exec(afterProvince);
  return city?.[0];
}

const STREET = /\b(?:st|street|rd|road|ave|avenue|blvd|boulevard|lane|ln|dr|drive|way|apt|apartment|flat|suite|unit|floor|po box|house|building)\b\.?/i;
const COUNTRIES = new Set(
  ['usa', 'us', 'united states', 'united states of america', 'uk', 'united kingdom', 'england', 'china', 'prc', 'germany', 'deutschland',
    'france', 'canada', 'australia', 'japan', 'singapore', 'india', 'spain', 'italy', 'netherlands', 'hong kong', 'taiwan'],
);

function latinCity(s: string): string | undefined {
  const parts = s.split(/[,\n;]/).map((p) => p.trim()).filter(Boolean);
  if (parts.length < 2) return undefined; // one line: cannot tell the city from the street
  const candidates = parts
    .slice(1)
    .map((p) => p.split(/\s+/).filter((t) => !/\d/.test(t)).join(' ')) // postcodes, house numbers
    .filter((p) => p && !STREET.test(p) && !/^[A-Z]{2,3}$/.test(p) && !COUNTRIES.has(p.toLowerCase()));
  return candidates.at(-1);
}

// In clear: the structured address's parts in their order (line1, district, city, postcode…).
function formatAddress(a: object): string {
  return Object.values(a)
    .filter((v): v is string | number => (typeof v === 'string' && v.trim() !== '') || typeof v === 'number')
    .join(', ');
}

// ---- logs -------------------------------------------------------------------------------------

const EMAIL_IN_TEXT = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
// '+' followed by 8-15 digits with separators, or a Chinese mobile number; not inside a longer number
// (so ids, timestamps and counts are left alone).
const PHONE_IN_TEXT = /(?<![\w+])(?:\+\d[\d\s().-]{6,18}\d|(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2})(?![\w])/g;

// A Chinese address inside text: [province] city, then street-level parts (district, road, number…).
// Over-matching a few words before it is fine: the whole run is replaced by its city.
const CN_ADDRESS_IN_TEXT =
  /(?:[\u4e00-\u9fff]{2,8}?(?:省|自治区))?[\u4e00-\u9fff]{1,8}?(?:市|自治州)[\u4e00-\u9fff\dA-Za-z#-]*?(?:区|县|镇|乡|街|路|道|巷|弄|号|村|室|栋|楼)[\u4e00-\u9fff\dA-Za-z#-]*/g;

/** Masks emails, phone numbers and Chinese street addresses found inside free text (log and error messages). */
export function maskText(s: string): string {
  return s
    .replace(EMAIL_IN_TEXT, (m) => maskEmail(m))
    .replace(PHONE_IN_TEXT, (m) => {
      const digits = m.replace(/\D/g, '').length;
      return digits >= 8 && digits <= 15 ? maskPhone(m) : m;
    })
    .replace(CN_ADDRESS_IN_TEXT, (m) => chineseCity(m) ?? MASK);
}

type FieldKind = 'phone' | 'email' | 'address';
const KEY_KIND: [RegExp, FieldKind][] = [
  [/phone|mobile|msisdn|^tel$|telephone|^cell$|^from_number$|^to_number$/i, 'phone'],
  [/e-?mail/i, 'email'],
  [/address|^addr$|street/i, 'address'],
];

// Network addresses are not postal ones: keep them readable for operations.
const NETWORK_KEY = /ip|remote|local|server|listen|bind|host|url|mac|socket|peer/i;

function kindOfKey(key: string): FieldKind | undefined {
  for (const [re, kind] of KEY_KIND) if (re.test(key)) return kind === 'address' && NETWORK_KEY.test(key) ? undefined : kind;
  return undefined;
}

const MAX_DEPTH = 8;

/**
 * A copy of a log object in which fields named like phone/email/address are masked (whatever their
 * value's shape) and every other string has emails and phone numbers masked inside it. Sealed values
 * (enc1.…) are left as they are: they are ciphertext.
 */
export function redactForLog(value: unknown, key = '', depth = 0, seen = new WeakSet<object>()): unknown {
  const kind = key ? kindOfKey(key) : undefined;
  if (typeof value === 'string') {
    if (value.startsWith('enc1.')) return value;
    if (kind === 'phone') return maskPhone(value);
    if (kind === 'email') return maskEmail(value);
    if (kind === 'address') return maskAddress(value);
    return maskText(value);
  }
  if (typeof value === 'number' && kind === 'phone' && Math.abs(value) >= 1_000_000) return maskPhone(String(value)); // not counts
  if (value === null || typeof value !== 'object') return value;
  if (kind === 'address' && !Array.isArray(value)) return maskAddress(value);
  if (seen.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Depth]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => redactForLog(v, key, depth + 1, seen));
  if (value instanceof Error) {
    // Stays an Error (pino's err serializer runs after formatters.log), with its text masked.
    const copy = new Error(maskText(value.message));
    copy.name = value.name;
    copy.stack = value.stack === undefined ? undefined : maskText(value.stack);
    for (const [k, v] of Object.entries(value)) (copy as unknown as Record<string, unknown>)[k] = redactForLog(v, k, depth + 1, seen);
    if (value.cause !== undefined) copy.cause = redactForLog(value.cause, 'cause', depth + 1, seen);
    return copy;
  }
  if (value instanceof Date || value instanceof Uint8Array) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactForLog(v, k, depth + 1, seen);
  return out;
}

/**
 * Spread into pino's options so logs never carry phone, email or address in clear:
 *   pino({ level, ...logRedaction })
 * `formatters.log` masks the logged object, `formatters.bindings` a child logger's bindings, and
 * `hooks.logMethod` the message and its interpolation arguments (pino builds `msg` before formatters run).
 */
export const logRedaction: Pick<LoggerOptions, 'formatters' | 'hooks' | 'onChild'> = {
  formatters: {
    log: (obj) => redactForLog(obj) as Record<string, unknown>,
    bindings: (bindings) => redactForLog(bindings) as Record<string, unknown>,
  },
  hooks: {
    logMethod(args, method) {
      const masked = (args as unknown[]).map((a) => (typeof a === 'string' ? maskText(a) : a));
      // An object first argument goes through formatters.log; later ones are interpolated into msg.
      for (let i = 1; i < masked.length; i++) {
        if (masked[i] && typeof masked[i] === 'object') masked[i] = redactForLog(masked[i]);
      }
      return method.apply(this, masked as Parameters<typeof method>);
    },
  },
  // pino resets formatters.bindings for children and serializes their bindings once, at child(), into
  // a JSON fragment; this masks the part the child added (its parent's part is masked already).
  onChild(child) {
    const sym = pino.symbols.chindingsSym;
    const holder = child as unknown as Record<symbol, unknown>;
    const mine = holder[sym];
    const parents = (Object.getPrototypeOf(child) as Record<symbol, unknown>)[sym] ?? '';
    if (typeof mine !== 'string' || typeof parents !== 'string' || !mine.startsWith(parents) || mine === parents) return;
    const added = mine.slice(parents.length); // ',"key":value,…'
    try {
      const masked = JSON.stringify(redactForLog(JSON.parse(`{${added.slice(1)}}`)));
      holder[sym] = masked === '{}' ? parents : `${parents},${masked.slice(1, -1)}`;
    } catch {
      holder[sym] = `${parents},"bindings":"[unreadable]"`; // never let unmasked bindings through
    }
  },
};
