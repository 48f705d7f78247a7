/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length,
 * a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}, then the
 * raw little-endian tensor bytes. Reading widens every dtype to Float32Array (F16/BF16 for shipped weights,
 * integer buffers such as HF's position_ids); writing stores F32 or F16 (or chosen dtypes per tensor).
 */
import { readFile, writeFile, rename } from 'node:fs/promises';
import { getFloat16, setFloat16 } from '@petamoriken/float16';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const ITEM_SIZE: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface SafetensorsTensor {
  /** The dtype stored in the file (data is always widened to float32). */
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsHeaderEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range within the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  tensors: Map<string, SafetensorsHeaderEntry>;
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

export interface TensorToWrite {
  shape: number[];
  data: ArrayLike<number>;
  /** Overrides the file-wide dtype for this tensor. */
  dtype?: 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8';
}

export interface WriteOptions {
  dtype?: 'F32' | 'F16';
  /** Free-form string metadata stored under __metadata__. */
  metadata?: Record<string, string>;
}

function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && s in ITEM_SIZE;
}

/** Parse and validate the header of a safetensors buffer. */
export function parseSafetensorsHeader(buf: Uint8Array): SafetensorsHeader {
  if (buf.byteLength < 8) throw new Error('safetensors: file shorter than its 8-byte header length');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > buf.byteLength - 8) throw new Error(`safetensors: header length ${n} exceeds file size ${buf.byteLength}`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n))) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`safetensors: header is not valid JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const tensors = new Map<string, SafetensorsHeaderEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(json)) {
    if (name === '__metadata__') {
      metadata = (v ?? {}) as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isDtype(e.dtype)) throw new Error(`safetensors: ${name} has unsupported dtype ${String(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`safetensors: ${name} has a bad shape`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isInteger(o))) throw new Error(`safetensors: ${name} has bad data_offsets`);
    const [b, end] = off as [number, number];
    const count = (e.shape as number[]).reduce((a, d) => a * d, 1);
    if (b < 0 || end > dataLen || end - b !== count * ITEM_SIZE[e.dtype]) {
      throw new Error(`safetensors: ${name} byte range [${b}, ${end}) does not fit shape ${JSON.stringify(e.shape)} ${e.dtype} in ${dataLen} data bytes`);
    }
    tensors.set(name, { dtype: e.dtype, shape: e.shape as number[], dataOffsets: [b, end] });
  }
  return { tensors, metadata, dataStart };
}

let f16Table: Float32Array | null = null;
/** All 65536 half-precision values, decoded once by @petamoriken/float16. */
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    const dv = new DataView(new ArrayBuffer(2));
    for (let i = 0; i < 65536; i++) {
      dv.setUint16(0, i, true);
      f16Table[i] = getFloat16(dv, 0, true);
    }
  }
  return f16Table;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function decode(dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / ITEM_SIZE[dtype];
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F32':
      // Fast path: a copy is aligned, and the bytes are already float32 on little-endian hosts.
      if (LITTLE_ENDIAN_HOST) return new Float32Array(new Uint8Array(bytes).buffer); // (Buffer.slice would not copy)
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case 'F16': {
      const t = halfTable();
      for (let i = 0; i < n; i++) out[i] = t[dv.getUint16(i * 2, true)]!;
      break;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(i * 2, true) << 16;
      break;
    }
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, true);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      break;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = dv.getUint8(i);
      break;
  }
  return out;
}

/** Decode a safetensors buffer; `filter` skips tensors not needed (big checkpoints). */
export function parseSafetensors(buf: Uint8Array, filter?: (name: string) => boolean): Map<string, SafetensorsTensor> {
  const header = parseSafetensorsHeader(buf);
  const out = new Map<string, SafetensorsTensor>();
  for (const [name, e] of header.tensors) {
    if (filter && !filter(name)) continue;
    const bytes = buf.subarray(header.dataStart + e.dataOffsets[0], header.dataStart + e.dataOffsets[1]);
    out.set(name, { dtype: e.dtype, shape: [...e.shape], data: decode(e.dtype, bytes) });
  }
  return out;
}

/** Read a .safetensors file (or buffer): every tensor widened to float32. */
export async function readSafetensors(
  source: string | Uint8Array,
  opts: { filter?: (name: string) => boolean } = {},
): Promise<Map<string, SafetensorsTensor>> {
  const buf = typeof source === 'string' ? await readFile(source) : source;
  return parseSafetensors(buf, opts.filter);
}

/** Read only the header (names, dtypes, shapes, metadata) of a file or buffer. */
export async function readSafetensorsHeader(source: string | Uint8Array): Promise<SafetensorsHeader> {
  const buf = typeof source === 'string' ? await readFile(source) : source;
  return parseSafetensorsHeader(buf);
}

function encode(dtype: NonNullable<TensorToWrite['dtype']>, data: ArrayLike<number>, count: number): Uint8Array {
  if (data.length !== count) throw new Error(`safetensors: ${data.length} values for ${count} elements`);
  const bytes = new Uint8Array(count * ITEM_SIZE[dtype]);
  const dv = new DataView(bytes.buffer);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) dv.setFloat32(i * 4, data[i]!, true);
      break;
    case 'F16':
      // Round to nearest even half (values beyond 65504 become infinite, as IEEE says).
      for (let i = 0; i < count; i++) setFloat16(dv, i * 2, data[i]!, true);
      break;
    case 'BF16': {
      // Round-to-nearest-even on the dropped 16 bits.
      const f = new Float32Array(1);
      const u = new Uint32Array(f.buffer);
      for (let i = 0; i < count; i++) {
        f[0] = data[i]!;
        const x = u[0]!;
        const rounded = Number.isNaN(f[0]) ? 0x7fc00000 : x + 0x7fff + ((x >>> 16) & 1);
        dv.setUint16(i * 2, (rounded >>> 16) & 0xffff, true);
      }
      break;
    }
    case 'I64':
      for (let i = 0; i < count; i++) dv.setBigInt64(i * 8, BigInt(Math.round(data[i]!)), true);
      break;
    case 'I32':
      for (let i = 0; i < count; i++) dv.setInt32(i * 4, Math.round(data[i]!), true);
      break;
    case 'U8':
      for (let i = 0; i < count; i++) bytes[i] = data[i]!;
      break;
  }
  return bytes;
}

/** Serialise tensors (sorted by name, header padded to 8 bytes so the data section is aligned). */
export function serializeSafetensors(
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  opts: WriteOptions = {},
): Buffer {
  const entries = (tensors instanceof Map ? [...tensors] : Object.entries(tensors)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const fileDtype = opts.dtype ?? 'F32';
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new Error('safetensors: "__metadata__" is reserved');
    const dtype = t.dtype ?? fileDtype;
    const count = t.shape.reduce((a, d) => a * d, 1);
    const bytes = encode(dtype, t.data, count);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.byteLength));
  return Buffer.concat([len, headerBytes, ...chunks]);
}

/** Write a .safetensors file atomically (temp file + rename). */
export async function writeSafetensors(
  file: string,
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  opts: WriteOptions = {},
): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, serializeSafetensors(tensors, opts));
  await rename(tmp, file);
}
