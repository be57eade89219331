// Number formatting shared by the progress line, the text summary and the HTML report.

/** A whole number with thousands separators: 12,031. */
export function int(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}
