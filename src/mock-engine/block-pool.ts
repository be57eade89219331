// The simulator's KV cache: a fixed pool of blocks with reference counts, a prefix cache from block hash
// to block, and LRU eviction of free blocks. A free block keeps its hash (and stays a cache hit) until it
// is reused for something else; then it is evicted and a BlockRemoved event says so.
import { FreeQueue } from "./free-queue.js";
import type { SimKvEvent } from "./kv-events.js";

export class BlockPool {
  private readonly refCount: Int32Array;
  private readonly hashOf: (bigint | null)[];
  private readonly cache = new Map<bigint, number>();
  private readonly free: FreeQueue;

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
    /** Receives BlockRemoved and AllBlocksCleared as they happen. */
    private readonly emit: (event: SimKvEvent) => void,
  ) {
    this.refCount = new Int32Array(numBlocks);
    this.hashOf = new Array<bigint | null>(numBlocks).fill(null);
    this.free = new FreeQueue(numBlocks);
  }

  /** Free blocks, cached or not: what an allocation can draw on. */
  get numFree(): number {
    return this.free.length;
  }

  get numUsed(): number {
    return this.numBlocks - this.free.length;
  }

  /** Blocks that currently hold a cached hash. */
  get numCached(): number {
    return this.cache.size;
  }

  /** The block holding `hash`, if cached. */
  lookup(hash: bigint): number | undefined {
    return this.cache.get(hash);
  }

  isFree(block: number): boolean {
    return this.free.has(block);
  }

  /** Takes a reference on cache hits; a free hit leaves the free queue. */
  touch(blocks: readonly number[]): void {
    for (const block of blocks) {
      if (this.refCount[block] === 0) this.free.remove(block);
      this.refCount[block]!++;
    }
  }

  /** Allocates `n` blocks from the front of the free queue, evicting any cached hash they held. */
  allocate(n: number): number[] {
    if (n > this.free.length) throw new Error(`cannot allocate ${n} blocks: ${this.free.length} free`);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const block = this.free.popFront();
      this.evict(block);
      this.refCount[block] = 1;
      out.push(block);
    }
    return out;
  }

  /**
   * Drops one reference from each block, in the order given; blocks reaching zero join the back of the
   * free queue. Callers pass a request's blocks tail first, so its tail is evicted before its head.
   */
  release(blocks: readonly number[]): void {
    for (const block of blocks) {
      const left = --this.refCount[block]!;
      if (left < 0) throw new Error(`block ${block} released more often than referenced`);
      if (left === 0) this.free.append(block);
    }
  }

  /**
   * Registers `block` under `hash`. Returns false when another block already holds that hash: the block
   * then stays uncached (a duplicate), so the cache and the published events always agree.
   */
  store(block: number, hash: bigint): boolean {
    if (this.cache.has(hash) || this.hashOf[block] !== null) return false;
    this.cache.set(hash, block);
    this.hashOf[block] = hash;
    return true;
  }

  /** Forgets every cached hash, like vLLM's reset_prefix_cache; refused (false) while blocks are in use. */
  reset(): boolean {
    if (this.numUsed > 0) return false;
    this.cache.clear();
    this.hashOf.fill(null);
    this.emit({ type: "AllBlocksCleared" });
    return true;
  }

  /** The cached hashes, for checks against the published events. */
  cachedHashes(): Set<bigint> {
    return new Set(this.cache.keys());
  }

  private evict(block: number): void {
    const hash = this.hashOf[block];
    if (hash === null || hash === undefined) return;
    this.hashOf[block] = null;
    this.cache.delete(hash);
    this.emit({ type: "BlockRemoved", blockHashes: [hash], medium: "GPU" });
  }
}
