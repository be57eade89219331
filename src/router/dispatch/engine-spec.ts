// `--engine tcp://HOST:PORT[,kv=tcp://HOST:PORT][,replay=tcp://HOST:PORT][,name=NAME]`

export interface EngineSpec {
  url: string;
  /** Shown in headers, metrics and logs; defaults to HOST:PORT. */
  name: string;
  /** Overrides the KV-event endpoint the engine announces in its handshake. */
  kvEndpoint: string | null;
  /** Overrides the replay endpoint the engine announces. */
  replayEndpoint: string | null;
}

const TCP = /^tcp:\/\/([^:/\s]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/;

export function parseEngineSpec(text: string): EngineSpec {
  const [url = "", ...options] = text.split(",");
  const match = TCP.exec(url);
  if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535) {
    throw new Error(`--engine ${JSON.stringify(text)}: expected tcp://HOST:PORT, optionally followed by ,kv=URL ,replay=URL ,name=NAME`);
  }
  const spec: EngineSpec = { url, name: `${match[1]}:${match[2]}`, kvEndpoint: null, replayEndpoint: null };
  for (const option of options) {
    const eq = option.indexOf("=");
    const key = option.slice(0, eq);
    const value = option.slice(eq + 1);
    if (eq < 1 || value === "") throw new Error(`--engine ${JSON.stringify(text)}: option ${JSON.stringify(option)} is not KEY=VALUE`);
    if (key === "kv" || key === "replay") {
      if (!TCP.test(value)) throw new Error(`--engine ${JSON.stringify(text)}: ${key}= must be tcp://HOST:PORT, got ${JSON.stringify(value)}`);
      if (key === "kv") spec.kvEndpoint = value;
      else spec.replayEndpoint = value;
    } else if (key === "name") {
      spec.name = value;
    } else {
      throw new Error(`--engine ${JSON.stringify(text)}: unknown option ${JSON.stringify(key)} (known: kv, replay, name)`);
    }
  }
  return spec;
}
