import type { HeaderList } from '@tunnel/protocol';

/**
 * Early hints as Node's writeEarlyHints takes them: lower-case names, repeats as arrays, and
 * Link as one entry per link, since Node 20 refuses the comma-joined list it writes itself.
 */
export function earlyHints(headers: HeaderList): Record<string, string | string[]> {
  // No prototype: a field named __proto__ or constructor is just a field.
  const hints: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  for (const [name, value] of headers) {
    const key = name.toLowerCase();
    const values = key === 'link' ? splitLinks(value) : [value];
    hints[key] = [...(hints[key] ?? []), ...values];
  }
  return hints;
}

/** Splits a Link field value at the commas between links, not those inside `<…>` or quotes. */
export function splitLinks(value: string): string[] {
  const links: string[] = [];
  let start = 0;
  let inTarget = false;
  let inQuotes = false;
  for (let i = 0; i < value.length; i += 1) {
    const char = value[i];
    if (inQuotes) {
      if (char === '\\') i += 1;
      else if (char === '"') inQuotes = false;
    } else if (char === '"' && !inTarget) {
      inQuotes = true;
    } else if (char === '<') {
      inTarget = true;
    } else if (char === '>') {
      inTarget = false;
    } else if (char === ',' && !inTarget) {
      links.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  links.push(value.slice(start).trim());
  return links.filter((link) => link.length > 0);
}
