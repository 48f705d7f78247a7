/**
 * Recycles the float32 output arrays of the native kernels.
 *
 * Why: a tfjs kernel allocates a fresh array for every output. At training sizes that is gigabytes per step, and
 * the churn cost more than most kernels: the kernel zeroes every new page, and V8 answers the external-memory
 * growth with back-to-back major GCs whose marking takes the second core (perf on a stage-2 training step:
 * ~25% of CPU in V8 marking/sweeping, ~12% clearing pages and memset of new backing stores).
 *
 * Safety: an array goes back to the pool only when no tensor refers to its buffer any more (contiguous slices
 * are views of their input, so every data entry holding the buffer counts) and it never left the backend:
 * `readSync` hands the array itself to callers (`tensor.dataSync()`), who may keep it, so such an array is
 * never reused. Arrays not made by the pool are never touched.
 */
interface Entry {
  array: Float32Array;
  /** Backend data entries (tensors) whose values are this buffer or a view of it. */
  refs: number;
  escaped: boolean;
}

export interface BufferPoolStats {
  allocated: number;
  reused: number;
  recycled: number;
  freeBytes: number;
}

export class BufferPool {
  private readonly entries = new WeakMap<ArrayBufferLike, Entry>();
  private readonly free = new Map<number, Float32Array[]>();
  private freeBytes = 0;
  private allocated = 0;
  private reused = 0;
  private recycled = 0;

  /**
   * @param maxFreeBytes how much idle memory the pool may hold; beyond it released arrays go to the GC.
   * @param minLength smaller arrays are not pooled (cheap to allocate, and not worth the bookkeeping).
   */
  constructor(
    private readonly maxFreeBytes: number,
    private readonly minLength = 4096,
  ) {}

  /** An array of `length` floats: recycled (contents undefined unless `zero`) or new (zeroed). */
  alloc(length: number, zero = false): Float32Array {
    if (length < this.minLength) return new Float32Array(length);
    const a = this.free.get(length)?.pop();
    if (a) {
      this.freeBytes -= a.byteLength;
      this.reused++;
      if (zero) a.fill(0);
      return a;
    }
    const arr = new Float32Array(length);
    this.entries.set(arr.buffer, { array: arr, refs: 0, escaped: false });
    this.allocated++;
    return arr;
  }

  /** A backend data entry now holds `values` (called for every write / move of the backend). */
  retain(values: unknown): void {
    const e = this.entryOf(values);
    if (e) e.refs++;
  }

  /** A backend data entry holding `values` was deleted. */
  release(values: unknown): void {
    const e = this.entryOf(values);
    if (!e || --e.refs > 0 || e.escaped) return;
    if (this.freeBytes + e.array.byteLength > this.maxFreeBytes) return;
    const list = this.free.get(e.array.length);
    if (list) list.push(e.array);
    else this.free.set(e.array.length, [e.array]);
    this.freeBytes += e.array.byteLength;
    this.recycled++;
  }

  /** `values` was handed out of the backend: never reuse its buffer. */
  escape(values: unknown): void {
    const e = this.entryOf(values);
    if (e) e.escaped = true;
  }

  /** Drop every idle array (e.g. after a memory-heavy phase). */
  trim(): void {
    this.free.clear();
    this.freeBytes = 0;
  }

  stats(): BufferPoolStats {
    return { allocated: this.allocated, reused: this.reused, recycled: this.recycled, freeBytes: this.freeBytes };
  }

  private entryOf(values: unknown): Entry | undefined {
    return values instanceof Float32Array ? this.entries.get(values.buffer) : undefined;
  }
}
