/**
 * Extracts the token of an `Authorization: Bearer <token>` header value. The scheme is matched
 * case-insensitively (RFC 9110 §11.1) and surrounding whitespace is ignored. Returns `undefined`
 * for a missing header, another scheme, or an empty token.
 */
export function parseBearerToken(header: string | null | undefined): string | undefined {
  if (header === null || header === undefined) return undefined;
  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
