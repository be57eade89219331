// The storage media KV events name. vLLM reports "GPU" for blocks in GPU memory (older builds send no
// medium, which means GPU) and "CPU" for blocks offloaded to host memory; connectors may name others.
// Each engine block keeps a copy count per medium, so a tiered view (GPU, CPU, ...) can be reported even
// though only the counted media make a block "held" in the index.

export const MEDIA = ["GPU", "CPU", "DISK", "OTHER"] as const;
export type Medium = (typeof MEDIA)[number];

export const GPU = 0;

/** The code of a medium name: its index in MEDIA, with unknown names as OTHER. */
export function mediumCode(medium: string | null): number {
  if (medium === null) return GPU;
  const i = (MEDIA as readonly string[]).indexOf(medium.toUpperCase());
  return i < 0 ? MEDIA.length - 1 : i;
}

/** The bit mask of media that count as held: all of them, or the given names. */
export function countedMask(media: readonly string[] | "all"): number {
  if (media === "all") return (1 << MEDIA.length) - 1;
  let mask = 0;
  for (const m of media) {
    const i = (MEDIA as readonly string[]).indexOf(m.toUpperCase());
    if (i < 0) throw new RangeError(`unknown medium ${JSON.stringify(m)}: expected one of ${MEDIA.join(", ")}`);
    mask |= 1 << i;
  }
  return mask;
}
