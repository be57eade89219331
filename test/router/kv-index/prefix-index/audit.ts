// A consistency check of a prefix index's writer: recounts everything the writer maintains incrementally
// from the shared records alone and lists every disagreement with the maintained values. What it checks
// (the invariants in the headers of src/router/kv-index/prefix-index/):
//   - every occupied way points at an occupied record whose slot points back, under the key's fingerprint,
//     and the writer's lookup finds the key in that record; occupied ways and occupied records match one
//     to one, and the free list holds exactly the other records;
//   - each set's overflow count is the number of keys that chose it first but live in their second set;
//   - a free record names no engine, an occupied one at least one;
//   - per (entry, engine), the child count is the number of held entries whose live parent link names it;
//   - per engine, the hole count is the number of held entries whose parent it does not hold through a
//     live link (a chain start has no parent), and their sum is the header's total;
//   - per engine, the block count, and the entry count.
// O(records × engines): for tests on small tables.

import {
  H_SIZE,
  H_TOTAL_HOLES,
  OCCUPIED,
  Placement,
  R_ENGINES,
  R_KEY_HI,
  R_KEY_LO,
  R_META,
  ROOT,
  MISSING,
  SET_OVERFLOW,
  SET_RECORDS,
  SET_WORDS,
  WAYS,
  fingerprint,
  views,
} from "../../../../src/router/kv-index/prefix-index/layout.js";
import type { PrefixIndex } from "../../../../src/router/kv-index/prefix-index/index.js";

/** Every disagreement between the writer's maintained counts and a recount from the records; [] when none. */
export function audit(index: PrefixIndex): string[] {
  const writer = index.writerBookkeeping();
  const v = views(index.shared);
  const { heap, stride, table, tableBytes } = v;
  const place = new Placement(v);
  const problems: string[] = [];
  const held = (engine: number, r: number): boolean => ((heap[r + R_ENGINES + (engine >>> 5)]! >>> (engine & 31)) & 1) !== 0;
  const anyHolder = (r: number): boolean => heap.subarray(r + R_ENGINES, r + R_ENGINES + v.words).some((w) => w !== 0);
  const live = (r: number): boolean => {
    const parent = heap[r + v.parentAt]!;
    return parent < MISSING && heap[parent * stride + R_META] === heap[r + v.parentMetaAt];
  };

  let ways = 0;
  for (let set = 0; set < v.sets; set++) {
    for (let way = 0; way < WAYS; way++) {
      if (((writer.occupiedWays(set) >>> way) & 1) === 0) continue;
      ways++;
      const record = table[set * SET_WORDS + SET_RECORDS + way]!;
      if (record >= v.records || heap[record * stride + v.slotAt] !== set * WAYS + way) problems.push(`set ${set} way ${way} points at record ${record}, which does not point back`);
    }
  }

  const holes = new Int32Array(v.maxEngines);
  const blocks = new Int32Array(v.maxEngines);
  const children = new Map<number, number>();
  const overflow = new Int32Array(v.sets);
  let size = 0;
  for (let record = 0; record < v.records; record++) {
    const r = record * stride;
    if ((heap[r + R_META]! & OCCUPIED) === 0) {
      if (anyHolder(r)) problems.push(`free record ${record} has engine bits`);
      continue;
    }
    size++;
    const lo = heap[r + R_KEY_LO]!;
    const hi = heap[r + R_KEY_HI]!;
    const slot = heap[r + v.slotAt]!;
    if (tableBytes[Math.floor(slot / WAYS) * SET_WORDS * 4 + (slot % WAYS)] !== fingerprint(hi)) problems.push(`record ${record}: its way's fingerprint does not match its key`);
    if (writer.find(lo, hi) !== record) problems.push(`record ${record}: its key is not found there`);
    if (!anyHolder(r)) problems.push(`record ${record} is held by no engine`);
    const first = place.first(lo, hi);
    if (Math.floor(slot / WAYS) !== first) overflow[first]!++;
    const parent = heap[r + v.parentAt]!;
    const linked = live(r);
    for (let e = 0; e < v.maxEngines; e++) {
      if (!held(e, r)) continue;
      blocks[e]!++;
      if (parent !== ROOT && !(linked && held(e, parent * stride))) holes[e]!++;
      if (linked) children.set(parent * v.maxEngines + e, (children.get(parent * v.maxEngines + e) ?? 0) + 1);
    }
  }
  if (ways !== size) problems.push(`${ways} occupied ways for ${size} entries`);
  for (let set = 0; set < v.sets; set++) {
    const counted = table[set * SET_WORDS + SET_OVERFLOW];
    if (counted !== overflow[set]) problems.push(`set ${set}: ${counted} overflowed keys counted, ${overflow[set]} found`);
  }
  if (writer.freeRecords !== v.records - size) problems.push(`${writer.freeRecords} free records for ${v.records - size} unused`);
  for (let record = 0; record < v.records; record++) {
    for (let e = 0; e < v.maxEngines; e++) {
      const want = children.get(record * v.maxEngines + e) ?? 0;
      const got = writer.childCount(record, e);
      if (want !== got) problems.push(`record ${record} engine ${e}: ${got} children counted, ${want} held`);
    }
  }
  for (let e = 0; e < v.maxEngines; e++) {
    if (holes[e] !== v.holes[e]) problems.push(`engine ${e}: ${v.holes[e]} holes counted, ${holes[e]} found`);
    if (blocks[e] !== v.blocks[e]) problems.push(`engine ${e}: ${v.blocks[e]} blocks counted, ${blocks[e]} found`);
  }
  const totalHoles = holes.reduce((a, b) => a + b, 0);
  if (v.header[H_TOTAL_HOLES] !== totalHoles) problems.push(`total holes ${v.header[H_TOTAL_HOLES]}, found ${totalHoles}`);
  if (v.header[H_SIZE] !== size) problems.push(`size ${v.header[H_SIZE]}, found ${size}`);
  return problems;
}
