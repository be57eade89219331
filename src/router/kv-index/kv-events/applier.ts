// Applying decoded KV events to the prefix index, without sockets: the KV-event thread feeds it from ZMQ,
// and a simulator can feed it directly.
//
// vLLM names blocks by its own hashes, which the router cannot compute (they depend on vLLM's hash
// function and seed). So for BlockStored the router recomputes its own chained hashes from the event's
// token_ids, seeded with the parent block's router hash, found through a per-rank map from engine hash to
// router hash; a parentless block is seeded with rootSeed({ model, loraName }) of the engine's model and the
// event's LoRA name. The request's cache_salt also seeds a prompt's first block, but events do not carry
// it: blocks an engine stored for salted requests get unsalted router hashes, so they never match a salted
// request (which is then routed as a cache miss), and could match an unsalted request with the same
// tokens, which then finds the engine does not reuse them. BlockRemoved resolves engine hashes through the
// same map; AllBlocksCleared drops the rank's blocks.
//
// An engine with several data-parallel ranks is one engine in the index: a block counts as held while any
// rank holds it (a count of holding ranks per router hash decides when the last one lets go).

import type { BlockHasher } from "../../prepare/hashing/index.js";
import { rootSeed } from "../../prepare/hashing/index.js";
import { HI, LO } from "../../../util/u64.js";
import type { PrefixIndex } from "../prefix-index/index.js";
import { EngineBlockMap } from "./block-map.js";
import type { BlockRemovedEvent, BlockStoredEvent, KvEvent, KvEventBatch } from "./decode.js";
import { MEDIA, countedMask, mediumCode, type Medium } from "./media.js";

export interface ApplierOptions {
  /** Media whose blocks count as held: default ["GPU"] (GPU memory, or no medium given); "all" for every tier. */
  countedMedia?: readonly string[] | "all";
  /**
   * Most blocks one rank's engine-hash map may track (default 4,194,304). A rank past it has lost track of
   * removals; it is dropped and refills.
   */
  maxBlocksPerRank?: number;
}

export interface EngineModel {
  model: string;
  /** The engine's KV block size in tokens; events with another block size are skipped and counted. */
  blockSize: number;
  /** Data-parallel ranks publishing events for this engine (default 1). */
  dataParallelSize?: number;
}

/** Calls out of the applier, for what its caller must act on rather than just count. */
export interface ApplierHooks {
  /** A BlockStored event carried another block size than the engine's (counted and skipped). */
  blockSizeMismatch?(engine: number, eventBlockSize: number, engineBlockSize: number): void;
}

/** Counters, as plain numbers for a metrics layer. */
export interface ApplierCounters {
  eventsBlockStored: number;
  eventsBlockRemoved: number;
  eventsAllBlocksCleared: number;
  /** Events with a tag this version does not know (skipped). */
  eventsUnknown: number;
  blocksStored: number;
  blocksRemoved: number;
  /** BlockStored events skipped because their parent hash was never stored (or was dropped). */
  unknownParent: number;
  /** Block hashes in BlockRemoved that the rank does not hold in that medium (skipped). */
  unknownBlock: number;
  /** Parentless BlockStored events with a LoRA id but no LoRA name (layouts before lora_name): the root seed is unknown. */
  unknownLora: number;
  blockSizeMismatch: number;
  /** BlockStored events whose token count is not blocks × block size. */
  tokenCountMismatch: number;
  /** A rank whose engine-hash map reached maxBlocksPerRank (dropped). */
  mapOverflows: number;
  /** Ranks whose entries were dropped by `drop` (gaps, disconnects, restarts, removal). */
  drops: number;
}

export interface RankStats {
  rank: number;
  /** Engine blocks tracked, in any medium. */
  blocks: number;
  /** Engine blocks per medium. */
  media: Record<Medium, number>;
}

interface RankState {
  map: EngineBlockMap;
  /** Blocks per medium code. */
  media: Float64Array;
}

interface EngineState {
  model: string;
  blockSize: number;
  ranks: RankState[];
  /** With several ranks: router hash → number of ranks holding it (in the u8 copy field of the map). */
  holders: EngineBlockMap | null;
  seeds: Map<string, bigint>;
}

const DEFAULT_MAX_BLOCKS = 1 << 22;

export class KvEventApplier {
  readonly counters: ApplierCounters = {
    eventsBlockStored: 0,
    eventsBlockRemoved: 0,
    eventsAllBlocksCleared: 0,
    eventsUnknown: 0,
    blocksStored: 0,
    blocksRemoved: 0,
    unknownParent: 0,
    unknownBlock: 0,
    unknownLora: 0,
    blockSizeMismatch: 0,
    tokenCountMismatch: 0,
    mapOverflows: 0,
    drops: 0,
  };
  readonly #index: PrefixIndex;
  readonly #hasher: BlockHasher;
  /** Byte mask over a copies word: the bytes of the counted media. */
  readonly #countedBytes: number;
  readonly #maxBlocks: number;
  readonly #engines = new Map<number, EngineState>();
  #router = new BigUint64Array(256);
  #routerWords = new Uint32Array(this.#router.buffer);
  #removals = new Uint32Array(512);
  readonly #parent = new Uint32Array(2);
  readonly #parentHash = new BigUint64Array(1);
  readonly #parentHashWords = new Uint32Array(this.#parentHash.buffer);
  readonly #one = new Uint32Array(2);
  readonly #hooks: ApplierHooks;

  constructor(index: PrefixIndex, hasher: BlockHasher, options: ApplierOptions = {}, hooks: ApplierHooks = {}) {
    this.#hooks = hooks;
    if (!index.writable) throw new TypeError("KvEventApplier needs the writing PrefixIndex (from PrefixIndex.create), not a view");
    this.#index = index;
    this.#hasher = hasher;
    const mask = countedMask(options.countedMedia ?? ["GPU"]);
    let bytes = 0;
    for (let m = 0; m < MEDIA.length; m++) if ((mask >>> m) & 1) bytes |= 0xff << (8 * m);
    this.#countedBytes = bytes;
    this.#maxBlocks = options.maxBlocksPerRank ?? DEFAULT_MAX_BLOCKS;
    if (!Number.isInteger(this.#maxBlocks) || this.#maxBlocks < 1) {
      throw new RangeError(`maxBlocksPerRank must be a positive integer, got ${String(options.maxBlocksPerRank)}`);
    }
  }

  addEngine(engine: number, config: EngineModel): void {
    if (!Number.isInteger(engine) || engine < 0 || engine >= this.#index.maxEngines) {
      throw new RangeError(`engine must be an integer from 0 to ${this.#index.maxEngines - 1}, got ${String(engine)}`);
    }
    if (this.#engines.has(engine)) throw new Error(`engine ${engine} is already added`);
    const { model, blockSize, dataParallelSize = 1 } = config;
    if (typeof model !== "string" || model === "") throw new TypeError(`engine ${engine}: model must be a non-empty string`);
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`engine ${engine}: blockSize must be a positive integer, got ${String(blockSize)}`);
    if (!Number.isInteger(dataParallelSize) || dataParallelSize < 1 || dataParallelSize > 255) {
      throw new RangeError(`engine ${engine}: dataParallelSize must be an integer from 1 to 255, got ${String(dataParallelSize)}`);
    }
    this.#engines.set(engine, {
      model,
      blockSize,
      ranks: Array.from({ length: dataParallelSize }, () => ({ map: new EngineBlockMap(), media: new Float64Array(MEDIA.length) })),
      holders: dataParallelSize > 1 ? new EngineBlockMap() : null,
      seeds: new Map(),
    });
  }

  /** Forgets the engine and drops all its entries. */
  removeEngine(engine: number): void {
    if (!this.#engines.delete(engine)) return;
    this.#index.clearEngine(engine);
  }

  hasEngine(engine: number): boolean {
    return this.#engines.has(engine);
  }

  /**
   * Drops what the engine's rank (or every rank, when `rank` is omitted) holds, because its event stream
   * can no longer be trusted (a sequence gap, a disconnect, a publisher restart). New events refill it.
   */
  drop(engine: number, rank?: number): void {
    const state = this.#state(engine);
    this.counters.drops++;
    if (rank === undefined) {
      this.#index.clearEngine(engine);
      for (const r of state.ranks) resetRank(r);
      state.holders?.clear();
    } else {
      this.#clearRank(engine, state, this.#rank(state, rank));
    }
  }

  applyBatch(engine: number, batch: KvEventBatch, rank = 0): void {
    this.apply(engine, batch.events, rank);
  }

  apply(engine: number, events: readonly KvEvent[], rank = 0): void {
    const state = this.#state(engine);
    const r = this.#rank(state, rank);
    for (const event of events) {
      switch (event.type) {
        case "BlockStored":
          this.counters.eventsBlockStored++;
          this.#stored(engine, state, r, event);
          break;
        case "BlockRemoved":
          this.counters.eventsBlockRemoved++;
          this.#removed(engine, state, r, event);
          break;
        case "AllBlocksCleared":
          this.counters.eventsAllBlocksCleared++;
          this.#clearRank(engine, state, r);
          break;
        default:
          this.counters.eventsUnknown++;
      }
    }
  }

  rankStats(engine: number): RankStats[] {
    return this.#state(engine).ranks.map((r, rank) => ({
      rank,
      blocks: r.map.size,
      media: Object.fromEntries(MEDIA.map((m, i) => [m, r.media[i]!])) as Record<Medium, number>,
    }));
  }

  #state(engine: number): EngineState {
    const state = this.#engines.get(engine);
    if (state === undefined) throw new RangeError(`engine ${engine} is not added`);
    return state;
  }

  #rank(state: EngineState, rank: number): RankState {
    const r = state.ranks[rank];
    if (r === undefined) throw new RangeError(`rank ${rank} is out of range: the engine has ${state.ranks.length} data-parallel rank(s)`);
    return r;
  }

  #seed(state: EngineState, loraName: string): bigint {
    let seed = state.seeds.get(loraName);
    if (seed === undefined) {
      seed = rootSeed({ model: state.model, loraName });
      state.seeds.set(loraName, seed);
    }
    return seed;
  }

  #stored(engine: number, state: EngineState, r: RankState, event: BlockStoredEvent): void {
    const { blockSize } = state;
    const n = event.blockHashes.length;
    if (event.blockSize !== blockSize) {
      this.counters.blockSizeMismatch++;
      this.#hooks.blockSizeMismatch?.(engine, event.blockSize, blockSize);
      return;
    }
    if (event.tokenIds.length !== n * blockSize) {
      this.counters.tokenCountMismatch++;
      return;
    }
    if (n === 0) return;
    const map = r.map;
    let seed: bigint;
    let parentWords: Uint32Array | null = null;
    if (event.parentBlockHash === null) {
      if (event.loraName === null && event.loraId !== null) {
        this.counters.unknownLora++;
        return;
      }
      seed = this.#seed(state, event.loraName ?? "");
    } else {
      this.#parentHash[0] = event.parentBlockHash;
      const slot = map.find(this.#parentHashWords[LO]!, this.#parentHashWords[HI]!);
      if (slot < 0) {
        this.counters.unknownParent++;
        return;
      }
      parentWords = this.#parent;
      parentWords[LO] = map.routerLo(slot);
      parentWords[HI] = map.routerHi(slot);
      seed = (BigInt(parentWords[HI]!) << 32n) | BigInt(parentWords[LO]!);
    }
    if (this.#router.length < n) {
      this.#router = new BigUint64Array(2 ** Math.ceil(Math.log2(n)));
      this.#routerWords = new Uint32Array(this.#router.buffer);
    }
    this.#hasher.hashBlocks(event.tokenIds, blockSize, seed, this.#router.subarray(0, n));
    const router = this.#routerWords;
    const hashes = new Uint32Array(event.blockHashes.buffer, event.blockHashes.byteOffset, 2 * n);
    const m = mediumCode(event.medium);
    const shift = 8 * m;
    const counted = this.#countedBytes;
    const holders = state.holders;
    for (let i = 0; i < n; i++) {
      const before = map.size;
      const slot = map.insert(hashes[2 * i + LO]!, hashes[2 * i + HI]!);
      const lo = router[2 * i + LO]!;
      const hi = router[2 * i + HI]!;
      let copies = map.copies(slot);
      if (map.size > before) {
        if (map.size > this.#maxBlocks) {
          this.counters.mapOverflows++;
          this.#clearRank(engine, state, r);
          return;
        }
        map.setRouter(slot, lo, hi);
      } else if (map.routerLo(slot) !== lo || map.routerHi(slot) !== hi) {
        // The engine reused a hash for other tokens (a collision in its hash): the old block is gone.
        if ((copies & counted) !== 0) this.#unhold(engine, holders, map.routerLo(slot), map.routerHi(slot), true);
        for (let k = 0; k < MEDIA.length; k++) if ((copies >>> (8 * k)) & 0xff) r.media[k]!--;
        copies = 0;
        map.setRouter(slot, lo, hi);
      }
      const count = (copies >>> shift) & 0xff;
      if (count === 0) r.media[m]!++;
      const next = count < 255 ? (copies + (1 << shift)) >>> 0 : copies;
      map.setCopies(slot, next);
      if (holders !== null && (copies & counted) === 0 && (next & counted) !== 0) {
        const h = holders.insert(lo, hi);
        holders.setCopies(h, holders.copies(h) + 1);
      }
    }
    // The whole chain goes to the index, also blocks already held: store is idempotent, refreshes their
    // recency, and restores any the index evicted.
    if ((counted >>> shift) & 0xff) this.#index.storeWords(engine, router, n, parentWords);
    this.counters.blocksStored += n;
  }

  #removed(engine: number, state: EngineState, r: RankState, event: BlockRemovedEvent): void {
    const n = event.blockHashes.length;
    const map = r.map;
    const hashes = new Uint32Array(event.blockHashes.buffer, event.blockHashes.byteOffset, 2 * n);
    const m = mediumCode(event.medium);
    const shift = 8 * m;
    const counted = this.#countedBytes;
    if (this.#removals.length < 2 * n) this.#removals = new Uint32Array(2 ** Math.ceil(Math.log2(2 * n)));
    const out = this.#removals;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const slot = map.find(hashes[2 * i + LO]!, hashes[2 * i + HI]!);
      const copies = slot < 0 ? 0 : map.copies(slot);
      const count = (copies >>> shift) & 0xff;
      if (count === 0) {
        this.counters.unknownBlock++;
        continue;
      }
      const next = copies - (1 << shift);
      if (count === 1) r.media[m]!--;
      this.counters.blocksRemoved++;
      if ((copies & counted) !== 0 && (next & counted) === 0) {
        const lo = map.routerLo(slot);
        const hi = map.routerHi(slot);
        if (this.#unhold(engine, state.holders, lo, hi, false)) {
          out[2 * k + LO] = lo;
          out[2 * k + HI] = hi;
          k++;
        }
      }
      if (next === 0) map.delete(slot);
      else map.setCopies(slot, next);
    }
    if (k > 0) this.#index.removeWords(engine, out, k);
  }

  /**
   * One rank lets go of a router hash. Returns whether no rank holds it any more (then it leaves the
   * index: right away when `now`, else by the caller's batched removal).
   */
  #unhold(engine: number, holders: EngineBlockMap | null, lo: number, hi: number, now: boolean): boolean {
    if (holders !== null) {
      const h = holders.find(lo, hi);
      if (h >= 0) {
        const count = holders.copies(h) - 1;
        if (count > 0) {
          holders.setCopies(h, count);
          return false;
        }
        holders.delete(h);
      }
    }
    if (now) {
      this.#one[LO] = lo;
      this.#one[HI] = hi;
      this.#index.removeWords(engine, this.#one, 1);
    }
    return true;
  }

  #clearRank(engine: number, state: EngineState, r: RankState): void {
    if (state.holders === null) {
      this.#index.clearEngine(engine);
    } else {
      const counted = this.#countedBytes;
      r.map.forEach((slot) => {
        if ((r.map.copies(slot) & counted) !== 0) this.#unhold(engine, state.holders, r.map.routerLo(slot), r.map.routerHi(slot), true);
      });
    }
    resetRank(r);
  }
}

function resetRank(r: RankState): void {
  r.map.clear();
  r.media.fill(0);
}
