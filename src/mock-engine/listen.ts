// Listening for the simulated engines' servers (msgpack over TCP and vLLM's HTTP surface): one place that
// turns a bind failure into an error naming the address, and that reports the address actually bound
// (port 0 picks a free one).
import type { Server } from "node:net";

export interface BoundAddress {
  host: string;
  port: number;
}

export async function listen(server: Server, host: string, port: number): Promise<BoundAddress> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    throw new Error(`cannot listen on ${host}:${port}: ${(error as Error).message}`);
  }
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error(`the server on ${host}:${port} has no TCP address`);
  return { host: address.address, port: address.port };
}
