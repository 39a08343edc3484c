// Shared bits of the test servers: argument lookup, the ready line, deterministic payloads.

export function argValue(flag: string, fallback: string): string {
  const i = process.argv.indexOf(flag);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

/** One JSON line on stdout: the harness waits for it. */
export function ready(port: number, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ ready: true, port, ...extra })}\n`);
}

/** Bytes [offset, offset+length) of the endless stream where byte i is (i*7) mod 251. */
export function deterministicBytes(offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = ((offset + i) * 7) % 251;
  return b;
}
