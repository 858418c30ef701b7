// The SMTP listener's STARTTLS certificate: the operator's PEM files (SMTP_TLS_CERT / SMTP_TLS_KEY), or a
// self-signed one made at start-up for the listener's host name, so STARTTLS is offered by default.
// Sending MTAs do not verify certificates on opportunistic STARTTLS (RFC 3207, RFC 7435), so a
// self-signed certificate already encrypts mail in transit; a CA-signed one is needed only for MTA-STS.
//
// node:crypto makes keys and signs but cannot write an X.509 certificate, and no library for it is
// installed, so the certificate (ECDSA P-256, SHA-256) is encoded here in DER by hand: a few TLVs.
import { createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';

export interface TlsMaterial {
  key: string;
  cert: string;
  /** Where it came from: the operator's files, or made at start-up. */
  source: 'files' | 'self-signed';
}

// ---- DER, only what a certificate needs ----

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let x = n; x > 0; x = Math.floor(x / 256)) bytes.unshift(x & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, ...parts: Buffer[]) => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
};
const seq = (...parts: Buffer[]) => tlv(0x30, ...parts);
const set = (...parts: Buffer[]) => tlv(0x31, ...parts);
const explicit = (n: number, ...parts: Buffer[]) => tlv(0xa0 + n, ...parts);
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer, unused = 0) => tlv(0x03, Buffer.from([unused]), b);
const bool = (x: boolean) => tlv(0x01, Buffer.from([x ? 0xff : 0]));
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a + b];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let x = Math.floor(arc / 128); x > 0; x = Math.floor(x / 128)) chunk.unshift(0x80 | (x & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime until 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'; // YYYYMMDDHHMMSSZ
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // IPv6: expand "::" and write eight 16-bit groups.
  const [head, tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = ip.includes('::') && tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return Buffer.concat(groups.map((g) => Buffer.from([parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff])));
}

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

/**
 * A self-signed certificate (and its key, PKCS#8 PEM) for these host names and addresses: the first is
 * the subject's CN, all go in subjectAltName. Valid from an hour ago for `days` (default 825).
 */
export function selfSignedCert(names: string[], opts: { days?: number; now?: number } = {}): { key: string; cert: string } {
  if (!names.length) throw new Error('a certificate needs at least one host name');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const now = opts.now ?? Date.now();
  const serial = randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x40; // positive and minimal
  const name = seq(set(seq(oid('2.5.4.3'), utf8(names[0]))));
  const san = seq(...names.map((n) => (isIP(n) ? tlv(0x87, ipBytes(n)) : tlv(0x82, Buffer.from(n.toLowerCase(), 'ascii')))));
  const extensions = explicit(
    3,
    seq(
      // CA:TRUE as `openssl req -x509` makes it: a client may then pin it as its own trust anchor.
      seq(oid('2.5.29.19'), bool(true), octets(seq(bool(true)))),
      // digitalSignature (for ECDHE) and keyCertSign (it signs itself).
      seq(oid('2.5.29.15'), bool(true), octets(bits(Buffer.from([0x84]), 2))),
      seq(oid('2.5.29.37'), octets(seq(oid('1.3.6.1.5.5.7.3.1')))),
      seq(oid('2.5.29.17'), octets(san)),
    ),
  );
  const tbs = seq(
    explicit(0, tlv(0x02, Buffer.from([2]))), // v3
    tlv(0x02, serial),
    ECDSA_SHA256,
    name,
    seq(time(new Date(now - 3600_000)), time(new Date(now + (opts.days ?? 825) * 86_400_000))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    extensions,
  );
  const der = seq(tbs, ECDSA_SHA256, bits(sign('sha256', tbs, privateKey)));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return { key: String(privateKey.export({ type: 'pkcs8', format: 'pem' })), cert: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n` };
}

/**
 * The listener's certificate: read from the two PEM files when given (checked: a certificate, a key, and
 * the key is the certificate's), else self-signed for `hostname` (plus localhost and the loopback
 * addresses, for local submission). A problem is an Error naming the variable.
 */
export async function smtpTls(o: { certFile?: string; keyFile?: string; hostname: string }): Promise<TlsMaterial> {
  if (Boolean(o.certFile) !== Boolean(o.keyFile)) throw new Error('SMTP_TLS_CERT and SMTP_TLS_KEY go together');
  if (!o.certFile || !o.keyFile) {
    const names = [...new Set([o.hostname, 'localhost', '127.0.0.1', '::1'])];
    return { ...selfSignedCert(names), source: 'self-signed' };
  }
  const read = (file: string, name: string) =>
    readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new Error(`${name} cannot be read (${e.code ?? e.message}): ${file}`);
    });
  const [cert, key] = await Promise.all([read(o.certFile, 'SMTP_TLS_CERT'), read(o.keyFile, 'SMTP_TLS_KEY')]);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new Error(`SMTP_TLS_CERT is not a PEM certificate: ${o.certFile}`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new Error(`SMTP_TLS_KEY is not a PEM private key (an encrypted key is not supported): ${o.keyFile}`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new Error('SMTP_TLS_KEY is not the key of the certificate in SMTP_TLS_CERT');
  return { key, cert, source: 'files' };
}
