// A coarse timer wheel for TCP flows: one deadline per flow, no timer object per segment.
//
// Theory of operation
// - Time is cut into ticks of `tickMs`. The wheel has `slots` lists; an entry due at tick t hangs
//   on list t mod slots and remembers t (`wheelTick`). Deadlines further away than one revolution
//   simply stay on their list until their own revolution comes round.
// - Scheduling is lazy. An entry's real deadline is `timerAt`; moving a deadline *later* (every
//   ACK pushes the retransmission timer out) only rewrites `timerAt`. When the entry's tick comes
//   and its deadline has not arrived, it is re-linked at the right tick. Only a deadline moving
//   *earlier* re-links immediately. So the hot path costs an assignment and a comparison.
// - advance(now) walks the ticks between the last call and now; a due entry is unlinked before
//   its callback runs, and the callback may schedule it again.

export interface WheelEntry {
  /** Absolute deadline in ms (the clock passed to advance()); 0 = no timer. */
  timerAt: number;
  /** Tick the entry is linked at; -1 = not linked; -2 = being visited by advance(). */
  wheelTick: number;
  wheelPrev: WheelEntry | null;
  wheelNext: WheelEntry | null;
}

export class TimerWheel<T extends WheelEntry> {
  private readonly heads: (T | null)[];
  private readonly mask: number;
  /** Last tick processed by advance(). */
  private tick: number;
  linked = 0;

  constructor(readonly tickMs: number, now: number, slots = 512) {
    let n = 1;
    while (n < slots) n *= 2;
    this.heads = new Array<T | null>(n).fill(null);
    this.mask = n - 1;
    this.tick = Math.floor(now / tickMs);
  }

  /** Set (or move) the entry's deadline. */
  schedule(e: T, at: number): void {
    e.timerAt = at;
    // Detached by a running advance(): it will look at timerAt when its turn comes.
    if (e.wheelTick === -2) return;
    let t = Math.ceil(at / this.tickMs);
    if (t <= this.tick) t = this.tick + 1;
    if (e.wheelTick >= 0) {
      if (e.wheelTick <= t) return; // fires early, re-links itself then
      this.unlink(e);
    }
    this.link(e, t);
  }

  cancel(e: T): void {
    e.timerAt = 0;
    if (e.wheelTick >= 0) this.unlink(e);
  }

  /** Run every entry whose deadline is <= now. */
  advance(now: number, fire: (e: T) => void): void {
    const target = Math.floor(now / this.tickMs);
    // After a long stall, one revolution visits every list once: enough.
    let t = this.tick + 1;
    if (target - t > this.mask) t = target - this.mask;
    for (; t <= target; t++) {
      this.tick = t;
      const slot = t & this.mask;
      let e = this.heads[slot] ?? null;
      this.heads[slot] = null;
      // Detach the whole list first: callbacks may link entries into this same slot.
      const detached: T | null = e;
      for (let x = detached; x !== null; x = x.wheelNext as T | null) x.wheelTick = -2;
      while (e !== null) {
        const next = e.wheelNext as T | null;
        e.wheelPrev = null;
        e.wheelNext = null;
        if (e.wheelTick === -2) {
          this.linked--;
          e.wheelTick = -1;
          if (e.timerAt === 0) { /* cancelled lazily */ } else if (e.timerAt <= now) fire(e);
          else this.link(e, Math.max(Math.ceil(e.timerAt / this.tickMs), t + 1));
        }
        e = next;
      }
    }
    this.tick = Math.max(this.tick, target);
  }

  private link(e: T, t: number): void {
    const slot = t & this.mask;
    const h = this.heads[slot] ?? null;
    e.wheelTick = t;
    e.wheelPrev = null;
    e.wheelNext = h;
    if (h) h.wheelPrev = e;
    this.heads[slot] = e;
    this.linked++;
  }

  private unlink(e: T): void {
    const slot = e.wheelTick & this.mask;
    if (e.wheelPrev) e.wheelPrev.wheelNext = e.wheelNext;
    else if (this.heads[slot] === e) this.heads[slot] = e.wheelNext as T | null;
    if (e.wheelNext) e.wheelNext.wheelPrev = e.wheelPrev;
    e.wheelPrev = null;
    e.wheelNext = null;
    e.wheelTick = -1;
    this.linked--;
  }
}
