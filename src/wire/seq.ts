// TCP sequence-number arithmetic (RFC 793 §3.3, RFC 1982): 32-bit, wrapping.

export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** a - b as a signed distance (valid while |a - b| < 2^31). */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** lo <= s < hi, in sequence space. */
export function seqInWindow(s: number, lo: number, hi: number): boolean {
  return seqGe(s, lo) && seqLt(s, hi);
}
