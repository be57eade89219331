// The queue of free KV blocks, least recently freed first: allocation takes from the front (evicting a
// cached block there), freeing appends at the back, and a cache hit takes a block out of the middle.
// A doubly linked list over block ids in typed arrays, so every operation is O(1).

const NONE = -1;

export class FreeQueue {
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly queued: Uint8Array;
  private head = NONE;
  private tail = NONE;
  private count = 0;

  /** Starts with every block free, in id order. */
  constructor(numBlocks: number) {
    this.prev = new Int32Array(numBlocks).fill(NONE);
    this.next = new Int32Array(numBlocks).fill(NONE);
    this.queued = new Uint8Array(numBlocks);
    for (let id = 0; id < numBlocks; id++) this.append(id);
  }

  get length(): number {
    return this.count;
  }

  has(id: number): boolean {
    return this.queued[id] === 1;
  }

  append(id: number): void {
    if (this.queued[id] === 1) throw new Error(`block ${id} is already free`);
    this.queued[id] = 1;
    this.prev[id] = this.tail;
    this.next[id] = NONE;
    if (this.tail === NONE) this.head = id;
    else this.next[this.tail] = id;
    this.tail = id;
    this.count++;
  }

  /** Takes the least recently freed block; throws when none is free. */
  popFront(): number {
    const id = this.head;
    if (id === NONE) throw new Error("no free block");
    this.remove(id);
    return id;
  }

  remove(id: number): void {
    if (this.queued[id] !== 1) throw new Error(`block ${id} is not free`);
    const p = this.prev[id]!;
    const n = this.next[id]!;
    if (p === NONE) this.head = n;
    else this.next[p] = n;
    if (n === NONE) this.tail = p;
    else this.prev[n] = p;
    this.queued[id] = 0;
    this.count--;
  }

  /** Block ids front to back (for tests and checks). */
  *ids(): IterableIterator<number> {
    for (let id = this.head; id !== NONE; id = this.next[id]!) yield id;
  }
}
