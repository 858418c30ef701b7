// Test-only: a local S3-protocol server on loopback for the S3 backend's tests, run in its own
// process (`node --import tsx storage/blobs/testing-s3-server.ts '<json>'`). It is s3rver (the
// S3 REST API over a folder) behind a front that checks every request's AWS SigV4 signature
// against the one key pair it was given: s3rver 3.7 checks only that a V4 request's access key
// exists and never computes the signature, so without this front a wrong secret would pass.
// Prints {"port":…} on its first line, then one line per request: "REQ <method> <path?query> <status>".
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';

// s3rver ships no types: the little used here, typed by hand.
const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as new (o: object) => { configureBuckets(): Promise<unknown>; callback(): (req: IncomingMessage, res: ServerResponse) => void };
// Its account registry is how it knows access keys.
const Account = require('s3rver/lib/models/account.js') as { DUMMY_ACCOUNT: { createKeyPair(a: string, s: string): void } };

const cfg = JSON.parse(process.argv[2] ?? '{}') as { dir: string; bucket: string; region: string; accessKey: string; secretKey: string };

Account.DUMMY_ACCOUNT.createKeyPair(cfg.accessKey, cfg.secretKey);

const uriEncode = (s: string, keepSlash = false) => {
  const e = encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
  return keepSlash ? e.replaceAll('%2F', '/') : e;
};
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** Why the request's signature is not acceptable, or undefined when it is. */
function refuse(req: IncomingMessage): { code: string; message: string } | undefined {
  const auth = req.headers.authorization;
  if (!auth) return { code: 'AccessDenied', message: 'Access Denied (anonymous requests are not allowed)' };
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return { code: 'AuthorizationHeaderMalformed', message: 'The authorization header is malformed' };
  const [, accessKey, day, region, signed, signature] = m;
  if (accessKey !== cfg.accessKey) return { code: 'InvalidAccessKeyId', message: 'The AWS Access Key Id you provided does not exist in our records.' };
  if (region !== cfg.region) return { code: 'AuthorizationHeaderMalformed', message: `the region '${region}' is wrong; expecting '${cfg.region}'` };
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  if (!amzDate.startsWith(day)) return { code: 'AccessDenied', message: 'x-amz-date does not match the credential scope' };
  const signedNames = signed.split(';');
  if (!signedNames.includes('host')) return { code: 'AccessDenied', message: 'the host header must be signed' };
  const [rawPath, rawQuery = ''] = (req.url ?? '/').split('?', 2);
  const canonicalUri = rawPath.split('/').map((s) => uriEncode(decodeURIComponent(s))).join('/');
  const canonicalQuery = rawQuery
    .split('&')
    .filter(Boolean)
    .map((kv) => {
      const [k, val = ''] = kv.split('=', 2);
      return `${uriEncode(decodeURIComponent(k))}=${uriEncode(decodeURIComponent(val))}`;
    })
    .sort()
    .join('&');
  const canonicalHeaders = signedNames.map((h) => `${h}:${String(req.headers[h] ?? '').trim().replace(/ +/g, ' ')}\n`).join('');
  const canonical = [req.method, canonicalUri, canonicalQuery, canonicalHeaders, signed, String(req.headers['x-amz-content-sha256'] ?? '')].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, `${day}/${region}/s3/aws4_request`, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${cfg.secretKey}`, day), region), 's3'), 'aws4_request');
  const expected = hmac(key, toSign);
  if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) {
    return { code: 'SignatureDoesNotMatch', message: 'The request signature we calculated does not match the signature you provided. Check your key and signing method.' };
  }
  return undefined;
}

const s3 = new S3rver({ directory: cfg.dir, silent: true, vhostBuckets: false, configureBuckets: [{ name: cfg.bucket, configs: [] }] });
await s3.configureBuckets();
const handle = s3.callback();

const server = createServer((req, res) => {
  res.on('finish', () => process.stdout.write(`REQ ${req.method} ${req.url} ${res.statusCode}\n`));
  const no = refuse(req);
  if (no) {
    req.resume();
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${no.code}</Code><Message>${no.message}</Message></Error>`;
    res.writeHead(403, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
    res.end(req.method === 'HEAD' ? undefined : xml);
    return;
  }
  handle(req, res);
});
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
