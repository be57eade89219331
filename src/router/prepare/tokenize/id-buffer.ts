/** A growable array of token ids, reused across calls so that encoding allocates only its result. */
export class IdBuffer {
  ids: Uint32Array;
  length = 0;

  constructor(capacity = 1024) {
    this.ids = new Uint32Array(capacity);
  }

  push(id: number): void {
    if (this.length === this.ids.length) this.grow(this.length + 1);
    this.ids[this.length++] = id;
  }

  pushAll(ids: ArrayLike<number>): void {
    const n = ids.length;
    if (this.length + n > this.ids.length) this.grow(this.length + n);
    if (ids instanceof Uint32Array) {
      this.ids.set(ids, this.length);
    } else {
      for (let i = 0; i < n; i++) this.ids[this.length + i] = ids[i]!;
    }
    this.length += n;
  }

  /** A copy of the ids pushed since `start`. */
  slice(start = 0): Uint32Array {
    return this.ids.slice(start, this.length);
  }

  clear(): void {
    this.length = 0;
  }

  /** Empties the buffer and drops its array if it grew past `maxCapacity` (after a huge prompt). */
  shrink(maxCapacity: number): void {
    this.length = 0;
    if (this.ids.length > maxCapacity) this.ids = new Uint32Array(1024);
  }

  private grow(needed: number): void {
    const next = new Uint32Array(Math.max(needed, this.ids.length * 2));
    next.set(this.ids.subarray(0, this.length));
    this.ids = next;
  }
}
