/** The sessionStorage entry of the API key: one browser tab, gone when the tab closes. */
const storageKey = "coze-gateway.playground.api-key";

/** The API key the page calls with; kept in sessionStorage only, never in the URL. */
export interface KeyStore {
  /** The current key, or "" when none is set. */
  get(): string;
  /** Remembers `key` for this tab; "" forgets it. */
  set(key: string): void;
}

/**
 * A {@link KeyStore} on `sessionStorage`; when the browser refuses storage (private modes,
 * disabled storage), the key lives in memory for as long as the page is open.
 */
export function createKeyStore(storage: Storage | undefined = sessionStorageOrNone()): KeyStore {
  let memory = "";
  return {
    get() {
      try {
        return storage?.getItem(storageKey) ?? memory;
      } catch {
        return memory;
      }
    },
    set(key) {
      memory = key;
      try {
        if (key === "") storage?.removeItem(storageKey);
        else storage?.setItem(storageKey, key);
      } catch {
        // Storage refused: the in-memory copy serves this page.
      }
    },
  };
}

function sessionStorageOrNone(): Storage | undefined {
  try {
    return window.sessionStorage;
  } catch {
    return undefined;
  }
}
