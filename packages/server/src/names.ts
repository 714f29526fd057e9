import { randomInt } from 'node:crypto';

// 64 × 64 words (12 bits) and six characters from a 32-letter alphabet (30 bits): 42 bits of
// entropy, so names cannot be guessed, yet they stay readable and easy to say aloud.
const ADJECTIVES = [
  'amber', 'bold', 'brave', 'brisk', 'calm', 'clever', 'cool', 'crisp', 'daring', 'eager', 'early', 'fair',
  'fancy', 'fast', 'fine', 'fond', 'fresh', 'glad', 'gold', 'good', 'grand', 'green', 'happy', 'honest',
  'jolly', 'keen', 'kind', 'large', 'light', 'live', 'lucky', 'merry', 'mild', 'misty', 'neat', 'nice',
  'noble', 'odd', 'plain', 'polite', 'proud', 'quick', 'quiet', 'rapid', 'rare', 'ready', 'red', 'rich',
  'round', 'royal', 'shy', 'silent', 'silver', 'sleek', 'smart', 'snowy', 'solid', 'sunny', 'swift', 'tidy',
  'vast', 'warm', 'wild', 'wise',
];
const NOUNS = [
  'ant', 'bear', 'bee', 'bird', 'boar', 'cat', 'cod', 'crab', 'crow', 'deer', 'dog', 'dove',
  'duck', 'eagle', 'eel', 'elk', 'finch', 'fish', 'fox', 'frog', 'goat', 'goose', 'gull', 'hare',
  'hawk', 'heron', 'horse', 'ibis', 'jay', 'koala', 'lark', 'lion', 'lynx', 'mole', 'moose', 'moth',
  'mouse', 'newt', 'otter', 'owl', 'panda', 'pike', 'puma', 'quail', 'ram', 'raven', 'robin', 'seal',
  'shark', 'sheep', 'snail', 'swan', 'tiger', 'toad', 'trout', 'tuna', 'viper', 'wasp', 'whale', 'wolf',
  'wren', 'yak', 'zebra', 'bison',
];
const ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789';

/** A random, readable, unguessable tunnel name such as `quiet-fox-k3x9qa`. */
export function randomName(): string {
  let suffix = '';
  for (let i = 0; i < 6; i += 1) suffix += ALPHABET[randomInt(ALPHABET.length)];
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}-${suffix}`;
}
