/**
 * parseFlags on commander: what the user typed, and nothing else (commander gives `--no-x` a
 * default of its own), negative numbers read as values, and the one-line messages.
 */
import { describe, expect, it } from 'vitest';
import { parseFlags, RENAMED } from '../../src/cli/args.ts';

const F = { 'no-replay': { type: 'boolean' as const }, og: { type: 'boolean' as const }, steps: { type: 'string' as const }, eta: { type: 'string' as const }, prompts: { type: 'string' as const } };

describe('parseFlags', () => {
  it('returns only the flags given: an absent --no-replay is absent, a given one is true', () => {
    expect(parseFlags([], F)).toEqual({});
    expect(parseFlags(['--no-replay'], F)).toEqual({ 'no-replay': true });
    expect(parseFlags(['--og', '--steps', '3', '--eta=0.5'], F)).toEqual({ og: true, steps: '3', eta: '0.5' });
  });
  it('reads a negative number after a flag as its value', () => {
    expect(parseFlags(['--eta', '-1'], F)).toEqual({ eta: '-1' });
    expect(parseFlags(['--eta', '-.5e-3'], F)).toEqual({ eta: '-.5e-3' });
  });
  it('states each problem in one line naming the flag', () => {
    expect(() => parseFlags(['--step', '3'], F)).toThrow(/^unknown flag --step \(did you mean --steps\?\)$/);
    expect(() => parseFlags(['--steps'], F)).toThrow(/^--steps: missing value$/);
    expect(() => parseFlags(['--steps', '--og'], F)).toThrow(/^--steps: missing value \(found the flag --og after it\)$/);
    expect(() => parseFlags(['--og=yes'], F)).toThrow(/^--og: a switch, takes no value \(got "yes"\)$/);
    expect(() => parseFlags(['--steps', '3', '--steps', '4'], F)).toThrow(/^--steps: given twice \("3" and "4"\); give it once$/);
    expect(() => parseFlags(['steps'], F)).toThrow(/^unexpected argument "steps" \(did you mean --steps\?\); flags start with --$/);
  });
  it('names the new flag for a renamed one', () => {
    expect(RENAMED['condition']).toBe('prompts');
    expect(() => parseFlags(['--condition', 'caption:0'], F)).toThrow(/^--condition is now --prompts/);
    expect(() => parseFlags(['--seed', '1'], F, { seed: 'steps' })).toThrow(/^--seed is now --steps/);
  });
});
