// What an agent may attach to a reply: checked in the page before uploading (a clear message, no wasted
// upload) and again by POST /api/uploads (413 / 415 with the same reason).
export const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;
export const UPLOAD_TYPES: readonly string[] = [
  'image/png', 'image/jpeg', 'image/gif', 'image/webp', 'application/pdf', 'text/plain', 'text/csv',
  'audio/mpeg', 'audio/ogg', 'video/mp4', 'application/zip',
  'application/msword', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.ms-excel', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
];

/** Why this file may not be attached (status and reason), or undefined when it may. */
export function uploadRefusal(file: { name: string; type: string; size: number }): { status: 413 | 415; reason: string } | undefined {
  if (file.size > MAX_UPLOAD_BYTES) return { status: 413, reason: `${file.name} is ${file.size} bytes; files are limited to ${MAX_UPLOAD_BYTES} bytes (10 MB)` };
  const type = file.type.toLowerCase() || '(unknown type)';
  if (!UPLOAD_TYPES.includes(type)) return { status: 415, reason: `${file.name}: ${type} files cannot be attached; accepted: images, PDF, text, CSV, audio, MP4, ZIP and Office documents` };
  return undefined;
}
