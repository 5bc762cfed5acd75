import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The element with `id`, checked to be a `type`.
 *
 * @throws Error when the page has no such element (the HTML and the script disagree).
 */
export function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const found = document.getElementById(id);
  if (!(found instanceof type)) throw new Error(`the page has no ${type.name} #${id}`);
  return found;
}

/** A new element with an optional class and text. Text only: the page never parses HTML. */
export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className !== undefined) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A failed call as the page shows it: the Connect code's name and the server's message. */
export function describeError(err: unknown): string {
  const e = ConnectError.from(err);
  return `${Code[e.code]}: ${e.rawMessage}`;
}

/** Whether `err` is the cancellation that the Stop button causes. */
export function isCanceled(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted && ConnectError.from(err).code === Code.Canceled;
}
