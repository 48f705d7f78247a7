/**
 * Minimal safetensors codec (F32 / F16) for detector checkpoints: 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}}, then the raw little-endian tensor bytes. Kept private to the eval part
 * (the model part has its own for the diffusion checkpoints).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Float16Array } from '@petamoriken/float16';

export type StDtype = 'F32' | 'F16';

export interface NamedArray {
  shape: number[];
  data: Float32Array;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Serialise named float32 arrays, stored as F32 or F16. */
export function encodeSafetensors(tensors: Map<string, NamedArray>, dtype: StDtype, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, HeaderEntry | Record<string, string>> = { __metadata__: metadata };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`safetensors: ${name} has ${t.data.length} values for shape ${t.shape}`);
    const bytes =
      dtype === 'F32'
        ? new Uint8Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength))
        : new Uint8Array(Float16Array.from(t.data).buffer);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference implementation does).
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const hbytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hbytes.length));
  return Buffer.concat([len, hbytes, ...chunks]);
}

/** Parse a safetensors buffer into float32 arrays (F16 is widened). */
export function decodeSafetensors(buf: Buffer): { tensors: Map<string, NamedArray>; metadata: Record<string, string> } {
  if (buf.length < 8) throw new Error('safetensors: file too short');
  const hlen = Number(buf.readBigUInt64LE(0));
  if (8 + hlen > buf.length) throw new Error('safetensors: header length exceeds file size');
  const header = JSON.parse(buf.subarray(8, 8 + hlen).toString('utf8')) as Record<string, unknown>;
  const base = 8 + hlen;
  const tensors = new Map<string, NamedArray>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as HeaderEntry;
    const [b, end] = e.data_offsets;
    const bytes = buf.subarray(base + b, base + end);
    // Copy into an aligned buffer: subarray offsets need not be multiples of the element size.
    const aligned = new Uint8Array(bytes.length);
    aligned.set(bytes);
    let data: Float32Array;
    if (e.dtype === 'F32') data = new Float32Array(aligned.buffer);
    else if (e.dtype === 'F16') data = Float32Array.from(new Float16Array(aligned.buffer));
    else throw new Error(`safetensors: unsupported dtype ${e.dtype} for ${name}`);
    tensors.set(name, { shape: e.shape, data });
  }
  return { tensors, metadata };
}

export async function writeSafetensorsFile(path: string, tensors: Map<string, NamedArray>, dtype: StDtype): Promise<void> {
  await writeFile(path, encodeSafetensors(tensors, dtype));
}

export async function readSafetensorsFile(path: string): Promise<Map<string, NamedArray>> {
  return decodeSafetensors(await readFile(path)).tensors;
}
