// Splits a byte stream into numbered lines without ever holding more than one line (bounded) in memory.
import type { Readable } from "node:stream";

export interface Line {
  /** 1-based line number. */
  number: number;
  /** The line without its `\n` or `\r\n`; null when it was longer than the limit (its bytes were dropped). */
  text: string | null;
}

/**
 * Lines of `stream`, yielded in batches (one per chunk read) so that a consumer pays one await per chunk
 * rather than per line. A line longer than `maxLineBytes` is not buffered: it is reported with `text: null`
 * and its bytes are skipped up to the next newline, so a file without newlines cannot exhaust memory.
 */
export async function* readLines(stream: Readable, maxLineBytes: number): AsyncGenerator<Line[]> {
  let carry: Buffer[] = [];
  let carried = 0;
  let tooLong = false;
  let number = 0;

  const finish = (tail: Buffer): Line => {
    number++;
    const bytes = carried > 0 && !tooLong ? Buffer.concat([...carry, tail]) : tail;
    carry = [];
    carried = 0;
    if (tooLong) {
      tooLong = false;
      return { number, text: null };
    }
    const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
    return { number, text: bytes.toString("utf8", 0, end) };
  };

  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const batch: Line[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      const tail = chunk.subarray(start, nl);
      if (!tooLong && carried + tail.length > maxLineBytes) tooLong = true;
      batch.push(finish(tail));
      start = nl + 1;
    }
    if (start < chunk.length && !tooLong) {
      const rest = chunk.subarray(start);
      if (carried + rest.length > maxLineBytes) {
        tooLong = true;
        carry = [];
        carried = 0;
      } else {
        carry.push(rest);
        carried += rest.length;
      }
    }
    if (batch.length > 0) yield batch;
  }
  if (carried > 0 || tooLong) yield [finish(Buffer.alloc(0))];
}
