/**
 * A point in one channel's stream: "everything up to `offset` of this
 * generation of the channel has been seen". The `epoch` names the
 * generation; it changes only when the channel's history is lost, so a
 * position from another epoch can never be resumed.
 */
export interface StreamPosition {
  epoch: string;
  offset: number;
}

const MAX_EPOCH_LENGTH = 32;
const EPOCH_RE = /^[A-Za-z0-9]{1,32}$/;
const OFFSET_RE = /^(0|[1-9][0-9]*)$/;
const CHANNEL_RE = /^[A-Za-z0-9_\-:.@,#=/~!$]{1,255}$/;

/** Reports whether e is a well-formed epoch: 1 to 32 ASCII letters and digits. */
export function isValidEpoch(e: string): boolean {
  return EPOCH_RE.test(e);
}

/**
 * Reports whether name is a valid channel name: 1 to 255 ASCII letters,
 * digits and `_-:.@,#=/~!$`.
 */
export function isValidChannel(name: string): boolean {
  return CHANNEL_RE.test(name);
}

/**
 * Sorts and deduplicates channels bytewise: the order in which multi-channel
 * position strings list their entries. Channel names are ASCII, so UTF-16
 * order is byte order.
 */
export function canonicalChannels(channels: readonly string[]): string[] {
  const out = [...new Set(channels)];
  out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return out;
}

/** Formats p as `<epoch>-<offset>`, the one-channel position string. */
export function formatPosition(p: StreamPosition): string {
  return `${p.epoch}-${p.offset}`;
}

/** Parses a one-channel position string, `<epoch>-<offset>`. */
export function parsePosition(s: string): StreamPosition {
  return parsePositionList(s, 1)[0]!;
}

/**
 * Formats the positions of several channels as one string,
 * `<epoch>-<offset>.<epoch>-<offset>...`, channels in canonical order: the
 * form of SSE event ids and poll `since`/`next`.
 */
export function formatPositions(positions: Readonly<Record<string, StreamPosition>>): string {
  return canonicalChannels(Object.keys(positions))
    .map((ch) => formatPosition(positions[ch]!))
    .join('.');
}

/**
 * Parses a position string (an SSE event id, a poll `next`) for the given
 * channels, named in any order. The string must hold exactly one entry per
 * distinct channel; anything else throws.
 */
export function parsePositions(s: string, channels: readonly string[]): Record<string, StreamPosition> {
  const canon = canonicalChannels(channels);
  const list = parsePositionList(s, canon.length);
  const out: Record<string, StreamPosition> = {};
  canon.forEach((ch, i) => {
    out[ch] = list[i]!;
  });
  return out;
}

/** Formats positions already listed in canonical channel order. */
export function formatPositionList(ps: readonly StreamPosition[]): string {
  return ps.map(formatPosition).join('.');
}

/**
 * Parses a position string for n channels in canonical order, with the
 * server's rules: alphanumeric epochs, decimal offsets without leading
 * zeros, exactly n entries.
 */
export function parsePositionList(s: string, n: number): StreamPosition[] {
  if (n <= 0) throw new Error('bad position: no channels');
  if (s.length > n * (MAX_EPOCH_LENGTH + 22)) throw new Error('bad position: too long');
  const parts = s.split('.');
  if (parts.length !== n) {
    throw new Error(`bad position: ${parts.length} entries for ${n} channels`);
  }
  return parts.map((part, i) => {
    const dash = part.lastIndexOf('-');
    if (dash < 0) throw new Error(`bad position: entry ${i} has no offset`);
    const epoch = part.slice(0, dash);
    const num = part.slice(dash + 1);
    if (!isValidEpoch(epoch)) throw new Error(`bad position: entry ${i} has an invalid epoch`);
    if (!OFFSET_RE.test(num)) throw new Error(`bad position: entry ${i} has an invalid offset`);
    const offset = Number(num);
    if (!Number.isSafeInteger(offset)) throw new Error(`bad position: entry ${i} has an offset out of range`);
    return { epoch, offset };
  });
}
