import { invalidArgument } from "./errors.js";

/**
 * The deepest nesting of JSON objects and arrays the gateway carries in a `google.protobuf.Struct`
 * or `Value` (the `parameters` of workflows, chatflows and bots; a workflow's `output`), the
 * outermost object or array being level 1.
 *
 * Protobuf runtimes refuse to decode a message nested more than 100 deep (the default of
 * protobuf-es, C++, Java and Go), and every JSON level of a Struct or Value is two messages: past
 * about 48 levels a gRPC client can neither send nor read one. 32 leaves room for the enclosing
 * messages, and a REST caller gets the same limit (issue #13).
 */
export const maxJsonDepth = 32;

/**
 * Whether `value` nests objects and arrays more than `max` levels deep. Walks without recursion,
 * so a value of any depth can be checked, and stops at the first level too deep.
 */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [v, depth] = next;
    if (typeof v !== "object" || v === null) continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/**
 * Refuses `parameters` nested deeper than {@link maxJsonDepth} before Coze is called: Coze could
 * not be sent them, and the failure is the caller's, not an unavailable upstream.
 *
 * @throws GatewayError `invalid_argument` naming `field`.
 */
export function checkJsonDepth(field: string, value: unknown): void {
  if (value !== undefined && nestedDeeperThan(value, maxJsonDepth)) {
    throw invalidArgument(field, `nests objects and arrays more than ${maxJsonDepth} levels deep`);
  }
}
