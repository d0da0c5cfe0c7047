import { describe, expect, it } from 'vitest';
import {
  canonicalChannels,
  formatPosition,
  formatPositions,
  isValidChannel,
  parsePosition,
  parsePositionList,
  parsePositions,
} from '../../src/position.js';

describe('positions', () => {
  it('round-trips one position', () => {
    expect(parsePosition('Ka9x2-17')).toEqual({ epoch: 'Ka9x2', offset: 17 });
    expect(formatPosition({ epoch: 'Ka9x2', offset: 17 })).toBe('Ka9x2-17');
    expect(parsePosition('e-0')).toEqual({ epoch: 'e', offset: 0 });
  });

  it('lists channels in canonical (bytewise) order, whatever the order given', () => {
    expect(canonicalChannels(['chat:b', 'chat:a', 'chat:b', 'Z', 'a'])).toEqual(['Z', 'a', 'chat:a', 'chat:b']);
    // protocol.md's example: ?channel=chat:b&channel=chat:a
    const ps = parsePositions('Ka9x2-17.Mf3q0-4', ['chat:b', 'chat:a']);
    expect(ps).toEqual({ 'chat:a': { epoch: 'Ka9x2', offset: 17 }, 'chat:b': { epoch: 'Mf3q0', offset: 4 } });
    expect(formatPositions(ps)).toBe('Ka9x2-17.Mf3q0-4');
  });

  it('rejects what the server would reject', () => {
    const bad = ['', 'abc', 'abc-', '-5', 'ab-01', 'a b-1', 'ab-1x', 'ab-1.', 'ab--1', 'ab-1.cd-2', `${'a'.repeat(33)}-1`, 'ab-99999999999999999999'];
    for (const s of bad) expect(() => parsePosition(s), s).toThrow();
    expect(() => parsePositionList('a-1.b-2', 3)).toThrow(/2 entries for 3 channels/);
    expect(() => parsePositionList('a-1', 0)).toThrow();
  });

  it('parses offsets without losing precision up to 2^53', () => {
    expect(parsePosition('e-9007199254740991').offset).toBe(9007199254740991);
    expect(() => parsePosition('e-9007199254740993')).toThrow(/range/);
  });

  it('validates channel names', () => {
    expect(isValidChannel('chat:lobby')).toBe(true);
    expect(isValidChannel('notifications#alice,bob')).toBe(true);
    expect(isValidChannel('a b')).toBe(false);
    expect(isValidChannel('')).toBe(false);
    expect(isValidChannel('x'.repeat(256))).toBe(false);
  });
});
