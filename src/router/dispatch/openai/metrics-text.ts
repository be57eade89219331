// An engine's own load, from its Prometheus /metrics: vLLM's or SGLang's names, whichever are there.
//
//   vLLM:   vllm:num_requests_running, vllm:num_requests_waiting, vllm:kv_cache_usage_perc (older builds:
//           vllm:gpu_cache_usage_perc), and vllm:cache_config_info{block_size, num_gpu_blocks}
//   SGLang: sglang:num_running_reqs, sglang:num_queue_reqs, sglang:token_usage, sglang:max_total_num_tokens
//           (SGLang serves /metrics only with --enable-metrics)
//
// A data-parallel engine reports one series per rank (an `engine` or `dp_rank` label): counts are summed,
// usage fractions averaged (the ranks are alike).
import type { EngineReport } from "../../schedule/index.js";

export interface MetricSample {
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy;

/**
 * The samples of the metrics named in `names`, from Prometheus text exposition. Lines that are comments,
 * other metrics or malformed are skipped: a scrape is never refused for one bad line.
 */
export function parseMetrics(text: string, names: ReadonlySet<string>): Map<string, MetricSample[]> {
  const out = new Map<string, MetricSample[]>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const nameEnd = line.search(/[{\s]/);
    if (nameEnd < 1 || !names.has(line.slice(0, nameEnd))) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const value = Number(m[4]);
    if (Number.isNaN(value)) continue;
    const labels = parseLabels(m[3] ?? "");
    if (labels === null) continue;
    let list = out.get(m[1]!);
    if (!list) out.set(m[1]!, (list = []));
    list.push({ labels, value });
  }
  return out;
}

function parseLabels(text: string): Record<string, string> | null {
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  let at = 0;
  while (at < text.length) {
    LABEL.lastIndex = at;
    const m = LABEL.exec(text);
    if (!m) return null;
    labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    at = LABEL.lastIndex;
  }
  return labels;
}

const RUNNING = ["vllm:num_requests_running", "sglang:num_running_reqs"];
const WAITING = ["vllm:num_requests_waiting", "sglang:num_queue_reqs"];
const USAGE = ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"];
const CACHE_INFO = "vllm:cache_config_info";
const SGLANG_TOKENS = "sglang:max_total_num_tokens";
// vLLM's prefill time: a request's time from its scheduling to its first token, as a histogram (its sum and
// count are enough for a mean), beside the prompt tokens it counted and those its prefix cache served.
const PREFILL_SUM = "vllm:request_prefill_time_seconds_sum";
const PREFILL_COUNT = "vllm:request_prefill_time_seconds_count";
const PROMPT_TOKENS = "vllm:prompt_tokens_total";
const CACHE_HITS = "vllm:prefix_cache_hits_total";
const NAMES = new Set([...RUNNING, ...WAITING, ...USAGE, CACHE_INFO, SGLANG_TOKENS, PREFILL_SUM, PREFILL_COUNT, PROMPT_TOKENS, CACHE_HITS]);

export interface MetricsReading {
  /** Null when the text has neither vLLM's nor SGLang's request gauges. */
  report: EngineReport | null;
  /** The block size the engine's configuration reports (vLLM's cache_config_info), or null. */
  blockSize: number | null;
}

/** The engine's load from its /metrics text. `blockSize` converts SGLang's token capacity into blocks. */
export function readEngineMetrics(text: string, blockSize: number): MetricsReading {
  const m = parseMetrics(text, NAMES);
  const first = (names: string[]) => names.map((n) => m.get(n)).find((s) => s !== undefined && s.length > 0) ?? null;
  const running = first(RUNNING);
  const waiting = first(WAITING);
  const info = m.get(CACHE_INFO)?.[0]?.labels ?? null;
  const configured = info ? positiveInt(info.block_size) : null;
  if (running === null || waiting === null) return { report: null, blockSize: configured };
  const usage = first(USAGE);
  let numBlocks: number | null = null;
  if (info) {
    const perRank = positiveInt(info.num_gpu_blocks);
    if (perRank !== null) numBlocks = perRank * Math.max(1, running.length);
  } else {
    const tokens = m.get(SGLANG_TOKENS);
    if (tokens && tokens.length > 0) numBlocks = Math.floor(sum(tokens) / blockSize);
  }
  const prefillSum = m.get(PREFILL_SUM);
  const prefillCount = m.get(PREFILL_COUNT);
  const promptTokens = m.get(PROMPT_TOKENS);
  return {
    report: {
      running: sum(running),
      waiting: sum(waiting),
      kvCacheUsage: usage === null ? null : Math.min(1, Math.max(0, sum(usage) / usage.length)),
      numBlocks: numBlocks !== null && numBlocks > 0 ? numBlocks : null,
      prefill:
        prefillSum && prefillCount && promptTokens
          ? { seconds: sum(prefillSum), requests: sum(prefillCount), promptTokens: sum(promptTokens), cachedTokens: sum(m.get(CACHE_HITS) ?? []) }
          : null,
    },
    blockSize: configured,
  };
}

function sum(samples: MetricSample[]): number {
  return samples.reduce((n, s) => n + (Number.isFinite(s.value) ? s.value : 0), 0);
}

function positiveInt(text: string | undefined): number | null {
  if (text === undefined || !/^\d+$/.test(text)) return null;
  const n = Number(text);
  return n > 0 ? n : null;
}
