/**
 * Resolves once the event loop has gone round and polled for I/O: work split with it lets other requests'
 * callbacks (socket reads, worker messages) run in between. One setImmediate is not enough when called
 * from an I/O callback: it runs in the same turn's check phase, before the next poll.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}
