// Stop strings over streamed text. Text that might be the start of a stop string is held back until it
// is known not to be, so a stop string never leaks into the output, even split across tokens.

export interface StopCheck {
  /** Text that can be sent now. */
  emit: string;
  /** The stop string that matched, if one did; the output ends before it. */
  stopped: string | null;
}

export class StopChecker {
  private held = "";
  private readonly holdBack: number;

  constructor(private readonly stops: readonly string[]) {
    this.holdBack = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  push(text: string): StopCheck {
    if (this.stops.length === 0) return { emit: text, stopped: null };
    const window = this.held + text;
    let at = -1;
    let stopped: string | null = null;
    for (const stop of this.stops) {
      const i = window.indexOf(stop);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        stopped = stop;
      }
    }
    if (stopped !== null) {
      this.held = "";
      return { emit: window.slice(0, at), stopped };
    }
    const keep = Math.min(this.holdBack, window.length);
    this.held = window.slice(window.length - keep);
    return { emit: window.slice(0, window.length - keep), stopped: null };
  }

  /** The held-back text, released when the request ends for another reason. */
  flush(): string {
    const rest = this.held;
    this.held = "";
    return rest;
  }
}
