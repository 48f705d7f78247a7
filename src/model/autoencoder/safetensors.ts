/**
 * A small reader/writer for the safetensors format (8-byte little-endian header length, a JSON header
 * mapping names to dtype / shape / byte offsets, then the raw little-endian data). Used by the autoencoder
 * checkpoint and by the trainer's optimizer state; float16 storage goes through @petamoriken/float16.
 */
import { promises as fs } from 'node:fs';
import { getFloat16, setFloat16 } from '@petamoriken/float16';

export type SafeDtype = 'F32' | 'F16' | 'I32';

/** One named array: always handed out as float32 / int32 in memory, whatever the storage dtype. */
export interface NamedArray {
  shape: number[];
  data: Float32Array | Int32Array;
}

interface HeaderEntry {
  dtype: SafeDtype | string;
  shape: number[];
  data_offsets: [number, number];
}

const BYTES: Record<SafeDtype, number> = { F32: 4, F16: 2, I32: 4 };

/** Serialise named arrays; float arrays are stored as `floatDtype` (F32 or F16), int arrays as I32. */
export function encodeSafetensors(
  tensors: Map<string, NamedArray>,
  opts: { floatDtype?: 'F32' | 'F16'; metadata?: Record<string, string> } = {},
): Buffer {
  const floatDtype = opts.floatDtype ?? 'F32';
  const header: Record<string, HeaderEntry | Record<string, string>> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  let offset = 0;
  const names = [...tensors.keys()].sort();
  for (const name of names) {
    const t = tensors.get(name)!;
    const dtype: SafeDtype = t.data instanceof Int32Array ? 'I32' : floatDtype;
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) throw new Error(`safetensors: ${name} has ${t.data.length} values for shape [${t.shape}]`);
    const bytes = size * BYTES[dtype];
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Pad the header so the data starts 8-byte aligned, as the reference implementation does.
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const base = 8 + headerBytes.length;
  for (const name of names) {
    const t = tensors.get(name)!;
    const e = header[name] as HeaderEntry;
    let p = base + e.data_offsets[0];
    if (e.dtype === 'I32') for (const v of t.data) (view.setInt32(p, v, true), (p += 4));
    else if (e.dtype === 'F16') for (const v of t.data) (setFloat16(view, p, v, true), (p += 2));
    else for (const v of t.data) (view.setFloat32(p, v, true), (p += 4));
  }
  return out;
}

/** Parse a safetensors buffer; F16 is widened to float32. */
export function decodeSafetensors(buf: Buffer): { tensors: Map<string, NamedArray>; metadata: Record<string, string> } {
  if (buf.length < 8) throw new Error('safetensors: file too short');
  const n = Number(buf.readBigUInt64LE(0));
  if (8 + n > buf.length) throw new Error('safetensors: header length exceeds file size');
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const base = 8 + n;
  const tensors = new Map<string, NamedArray>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as HeaderEntry;
    const size = e.shape.reduce((a, b) => a * b, 1);
    const [b0, b1] = e.data_offsets;
    if (base + b1 > buf.length) throw new Error(`safetensors: ${name} runs past the end of the file`);
    let p = base + b0;
    if (e.dtype === 'I32') {
      const data = new Int32Array(size);
      for (let i = 0; i < size; i++, p += 4) data[i] = view.getInt32(p, true);
      tensors.set(name, { shape: e.shape, data });
    } else if (e.dtype === 'F16' || e.dtype === 'F32') {
      const data = new Float32Array(size);
      if (e.dtype === 'F16') for (let i = 0; i < size; i++, p += 2) data[i] = getFloat16(view, p, true);
      else for (let i = 0; i < size; i++, p += 4) data[i] = view.getFloat32(p, true);
      tensors.set(name, { shape: e.shape, data });
    } else {
      throw new Error(`safetensors: unsupported dtype ${e.dtype} for ${name}`);
    }
  }
  return { tensors, metadata };
}

export async function writeSafetensors(
  path: string,
  tensors: Map<string, NamedArray>,
  opts: { floatDtype?: 'F32' | 'F16'; metadata?: Record<string, string> } = {},
): Promise<void> {
  await fs.writeFile(path, encodeSafetensors(tensors, opts));
}

export async function readSafetensors(path: string): Promise<{ tensors: Map<string, NamedArray>; metadata: Record<string, string> }> {
  return decodeSafetensors(await fs.readFile(path));
}
