/** The most characters of a string a client sent that an error message quotes. */
export const MAX_QUOTED_CHARS = 128;

/**
 * `text` quoted for a message (JSON-style, so control characters show), cut
 * to {@link MAX_QUOTED_CHARS} characters with "..." after it: a 1 MB name
 * must not come back whole, nor swell a log line or a gRPC trailer.
 */
export function quote(text: string): string {
  return text.length > MAX_QUOTED_CHARS
    ? `${JSON.stringify(text.slice(0, MAX_QUOTED_CHARS))}...`
    : JSON.stringify(text);
}
