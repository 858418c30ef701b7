// Files backend: each object is a plain file under the root (so operators can look at recordings
// directly) with a hidden JSON sidecar ".<name>.meta.json" beside it. Writes go to a hidden temp
// file that is fsynced and renamed into place, so a reader never sees half an object; keys never
// have segments starting with ".", so sidecars and temp files cannot collide with objects.
import { mkdir, open, readdir, rename, rm, rmdir, copyFile, readFile, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { BlobError, BlobNotFound, type Body } from './store.ts';
import { sha256Digest } from './digest.ts';
import type { Shelf, ShelfMeta, ShelfWrite } from './shelf.ts';
import * as v from 'valibot';

const SidecarSchema = v.object({
  contentType: v.string(),
  size: v.number(),
  sha256: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  createdAt: v.number(),
  meta: v.record(v.string(), v.string()),
});

const CHUNK = 256 * 1024;

const sidecarOf = (file: string) => join(dirname(file), `.${basename(file)}.meta.json`);
const tempOf = (file: string) => join(dirname(file), `.${basename(file)}.tmp-${crypto.randomUUID()}`);
const code = (e: unknown) => (e as NodeJS.ErrnoException)?.code;

export function filesShelf(root: string): Shelf {
  root = root.replace(/\/+$/, '') || '/';
  const fileOf = (path: string) => join(root, ...path.split('/'));

  function conflict(path: string, e: unknown): never {
    throw new BlobError('conflict', `blob path ${JSON.stringify(path)} clashes with another key (one is a folder of the other)`, { cause: e });
  }

  async function readSidecar(file: string): Promise<ShelfMeta | undefined> {
    let text: string;
    try {
      text = await readFile(sidecarOf(file), 'utf8');
    } catch (e) {
      if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR') return undefined;
      throw e;
    }
    const r = v.safeParse(SidecarSchema, JSON.parse(text));
    if (!r.success) throw new BlobError('integrity', `blob metadata ${sidecarOf(file)} is damaged: ${r.issues[0].message}`);
    return r.output;
  }

  async function writeAtomic(final: string, fill: (fh: FileHandle) => Promise<void>): Promise<string> {
    const tmp = tempOf(final);
    const fh = await open(tmp, 'wx');
    try {
      await fill(fh);
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    return tmp;
  }

  async function ensureDir(path: string, file: string): Promise<void> {
    try {
      await mkdir(dirname(file), { recursive: true });
    } catch (e) {
      if (code(e) === 'EEXIST' || code(e) === 'ENOTDIR') conflict(path, e);
      throw e;
    }
  }

  // Sidecar first, data second: the data file decides whether the object exists, so a crash in
  // between leaves at worst an orphan sidecar, never an object without metadata.
  async function install(path: string, file: string, dataTmp: string, info: ShelfMeta): Promise<void> {
    const metaTmp = await writeAtomic(sidecarOf(file), (fh) => fh.writeFile(JSON.stringify(info)));
    try {
      await rename(metaTmp, sidecarOf(file));
      await rename(dataTmp, file);
    } catch (e) {
      await rm(metaTmp, { force: true });
      await rm(dataTmp, { force: true });
      if (code(e) === 'EISDIR' || code(e) === 'ENOTDIR') conflict(path, e);
      throw e;
    }
  }

  async function pruneDirs(file: string): Promise<void> {
    // Empty folders left by deletes and moves would block a later key of the same name.
    for (let dir = dirname(file); dir.length > root.length && dir.startsWith(root); dir = dirname(dir)) {
      try {
        await rmdir(dir);
      } catch {
        return;
      }
    }
  }

  return {
    kind: 'files',
    location: `file://${root}`,

    async write(path, body: Body, opts: ShelfWrite) {
      const file = fileOf(path);
      await ensureDir(path, file);
      const digest = sha256Digest();
      const dataTmp = await writeAtomic(file, async (fh) => {
        const put = async (chunk: Uint8Array) => {
          if (!(chunk instanceof Uint8Array)) throw new BlobError('bad_input', 'blob put: the body stream must yield Uint8Array chunks');
          digest.update(chunk);
          if (opts.size !== undefined && digest.bytes > opts.size) throw new BlobError('bad_input', `blob put: body is longer than the declared size ${opts.size}`);
          let off = 0;
          while (off < chunk.byteLength) off += (await fh.write(chunk, off, chunk.byteLength - off)).bytesWritten;
        };
        if (body instanceof Uint8Array) await put(body);
        else for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) await put(chunk);
        if (opts.size !== undefined && digest.bytes !== opts.size) throw new BlobError('bad_input', `blob put: body has ${digest.bytes} bytes, not the declared ${opts.size}`);
      });
      const result = { size: digest.bytes, sha256: digest.hex() };
      await install(path, file, dataTmp, { contentType: opts.contentType, meta: opts.meta, createdAt: opts.createdAt, ...result });
      return result;
    },

    async read(path) {
      const file = fileOf(path);
      // Two tries: an overwrite renames the sidecar just before the data, so a read landing in
      // between sees sizes that disagree; the second look sees the finished pair.
      for (let attempt = 0; ; attempt++) {
        let fh: FileHandle;
        try {
          fh = await open(file, 'r');
        } catch (e) {
          if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR' || code(e) === 'EISDIR') return undefined;
          throw e;
        }
        // The open handle keeps the bytes readable even if a tier move deletes the file meanwhile.
        let st, info;
        try {
          [st, info] = await Promise.all([fh.stat(), readSidecar(file)]);
        } catch (e) {
          await fh.close();
          throw e;
        }
        if (info && info.size === st.size) return { body: fileStream(fh), info };
        await fh.close();
        if (attempt >= 1) {
          if (!info) throw new BlobError('integrity', `blob ${JSON.stringify(path)} has no metadata`);
          throw new BlobError('integrity', `blob ${JSON.stringify(path)} is ${st.size} bytes but its metadata says ${info.size}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },

    async stat(path) {
      const file = fileOf(path);
      try {
        const st = await stat(file);
        if (!st.isFile()) return undefined;
      } catch (e) {
        if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR') return undefined;
        throw e;
      }
      return readSidecar(file);
    },

    async copy(src, dst) {
      const from = fileOf(src);
      const to = fileOf(dst);
      const info = await readSidecar(from);
      if (!info) throw new BlobNotFound(src);
      await ensureDir(dst, to);
      const tmp = tempOf(to);
      try {
        await copyFile(from, tmp);
        const fh = await open(tmp, 'r+');
        await fh.sync().finally(() => fh.close());
      } catch (e) {
        await rm(tmp, { force: true });
        if (code(e) === 'ENOENT') throw new BlobNotFound(src);
        throw e;
      }
      await install(dst, to, tmp, info);
    },

    async remove(path) {
      const file = fileOf(path);
      await rm(file, { force: true }).catch((e) => {
        if (code(e) !== 'ENOTDIR' && code(e) !== 'EISDIR') throw e;
      });
      await rm(sidecarOf(file), { force: true }).catch(() => {});
      await pruneDirs(file);
    },

    list(prefix) {
      return walk(root, prefix);
    },

    async check() {
      await mkdir(root, { recursive: true });
      const probe = join(root, `.probe-${crypto.randomUUID()}`);
      const fh = await open(probe, 'wx');
      await fh.close();
      await rm(probe, { force: true });
    },
  };
}

/** Lists files under root whose path starts with prefix, in byte order of the whole path. */
async function* walk(root: string, prefix: string): AsyncGenerator<{ path: string; size: number }> {
  const cut = prefix.lastIndexOf('/');
  const base = cut >= 0 ? prefix.slice(0, cut + 1) : '';
  yield* walkDir(join(root, ...base.split('/').filter(Boolean)), base, prefix);
}

async function* walkDir(dir: string, rel: string, prefix: string): AsyncGenerator<{ path: string; size: number }> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR') return;
    throw e;
  }
  // A folder "a" holds paths "a/…", which sort as "a/"; ordering names that way gives the same
  // order as S3's listing of the full paths (keys are ASCII).
  const named = entries
    .filter((e) => !e.name.startsWith('.') && (e.isFile() || e.isDirectory()))
    .map((e) => ({ e, sortName: e.isDirectory() ? `${e.name}/` : e.name }))
    .sort((a, b) => (a.sortName < b.sortName ? -1 : a.sortName > b.sortName ? 1 : 0));
  for (const { e } of named) {
    const path = rel + e.name;
    if (e.isDirectory()) {
      if ((path + '/').startsWith(prefix) || prefix.startsWith(path + '/')) yield* walkDir(join(dir, e.name), path + '/', prefix);
    } else if (path.startsWith(prefix)) {
      const st = await stat(join(dir, e.name)).catch(() => undefined);
      if (st) yield { path, size: st.size };
    }
  }
}

/** A pull stream over an open file handle that closes it at the end or on cancel. */
function fileStream(fh: FileHandle): ReadableStream<Uint8Array> {
  let closed = false;
  const close = async () => {
    if (!closed) {
      closed = true;
      await fh.close();
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const buf = new Uint8Array(CHUNK);
        const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
        if (bytesRead === 0) {
          await close();
          controller.close();
        } else controller.enqueue(bytesRead === CHUNK ? buf : buf.subarray(0, bytesRead));
      } catch (e) {
        await close().catch(() => {});
        controller.error(e);
      }
    },
    cancel: close,
  });
}
