// The physical layer under the tiered store: objects at paths like "hot/recordings/x.wav",
// "_moves/<id>" or "_access/<key>". The files and S3 backends implement it; tiers, access records
// and the move journal are built once on top of it (tiered.ts, tiers.ts).
import type { Body } from './store.ts';

export interface ShelfMeta {
  contentType: string;
  size: number;
  sha256: string;
  createdAt: number;
  meta: Record<string, string>;
  /** The S3 storage class the object is in, when the backend has one. */
  storageClass?: string;
}

export interface ShelfWrite {
  contentType: string;
  size?: number;
  meta: Record<string, string>;
  createdAt: number;
  storageClass?: string;
}

export interface Shelf {
  readonly kind: 'files' | 's3';
  /** Where it is, for logs (never with credentials). */
  readonly location: string;
  /** Atomic: readers see the previous object (or none) until the whole new one is there. */
  write(path: string, body: Body, opts: ShelfWrite): Promise<{ size: number; sha256: string }>;
  /** undefined when there is no object at path. The body holds the object even if it is deleted meanwhile. */
  read(path: string): Promise<{ body: ReadableStream<Uint8Array>; info: ShelfMeta } | undefined>;
  stat(path: string): Promise<ShelfMeta | undefined>;
  /** Copies with its metadata (createdAt, sha256, user meta); throws BlobNotFound if src is missing. */
  copy(src: string, dst: string, opts?: { storageClass?: string }): Promise<void>;
  /** Removing a missing path is not an error. */
  remove(path: string): Promise<void>;
  /** Paths under prefix in byte order of the path. */
  list(prefix: string): AsyncIterable<{ path: string; size: number }>;
  /** Cheap reachability and credentials check. */
  check(): Promise<void>;
}
