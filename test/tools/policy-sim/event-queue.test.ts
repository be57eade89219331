import { expect, it } from "vitest";
import { EventQueue } from "../../../src/tools/policy-sim/event-queue.js";

it("gives events back in time order, and events at equal times in the order they came", () => {
  const queue = new EventQueue<string>();
  expect(queue.nextTime).toBe(Infinity);
  expect(queue.pop()).toBeUndefined();
  // A seeded shuffle of times with many ties.
  const pushed: [number, string][] = [];
  let s = 12345;
  for (let i = 0; i < 500; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const time = (s >>> 16) % 50;
    pushed.push([time, `e${i}`]);
    queue.push(time, `e${i}`);
  }
  expect(queue.size).toBe(500);
  expect(queue.nextTime).toBe(Math.min(...pushed.map(([t]) => t)));
  const popped: [number, string][] = [];
  for (let e = queue.pop(); e !== undefined; e = queue.pop()) popped.push([e.time, e.item]);
  // Array.prototype.sort is stable: the expected order is by time, then by push order.
  expect(popped).toEqual([...pushed].sort((a, b) => a[0] - b[0]));
});

it("refuses times that would break the clock", () => {
  const queue = new EventQueue<number>();
  for (const bad of [NaN, -1, Infinity]) expect(() => queue.push(bad, 0)).toThrow(RangeError);
  expect(queue.size).toBe(0);
});
