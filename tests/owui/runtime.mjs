// What the copied Open WebUI code finds around it in a browser, for Node: svelte stores
// and tick, SvelteKit's page and goto, svelte-sonner's toast, i18n, localStorage,
// document / window / navigator, and the HTTP API of Open WebUI's backend. None of this
// is taken from Open WebUI: it records what the page would show or ask, as JSON lines
// (see owui_client.mjs), so the copied functions can keep their bodies.

// -- svelte --------------------------------------------------------------------------

// svelte/store's writable: subscribers called at once and on every set. A component's
// `$name` is a local variable that a subscription keeps up to date, as svelte compiles it.
export function writable(value) {
  const subscribers = new Set();
  const store = {
    set(next) {
      value = next;
      for (const fn of [...subscribers]) fn(value);
    },
    update(fn) {
      store.set(fn(value));
    },
    subscribe(fn) {
      subscribers.add(fn);
      fn(value);
      return () => subscribers.delete(fn);
    },
  };
  return store;
}

export function get(store) {
  let value;
  store.subscribe((v) => (value = v))();
  return value;
}

// svelte's tick(): resolves once pending state changes are applied (no DOM here).
export const tick = () => Promise.resolve();

// -- the page's surroundings -----------------------------------------------------------

// Everything the browser and SvelteKit would show or do, recorded through `report`.
export function makeBrowser({ report, token, pathname, user, channels }) {
  const record = (event, fields) => report(event, fields);

  const toast = {
    success: (message, opts) => record("toast", { kind: "success", message, id: opts?.id ?? null }),
    error: (message, opts) => record("toast", { kind: "error", message, id: opts?.id ?? null }),
    warning: (message) => record("toast", { kind: "warning", message }),
    info: (message) => record("toast", { kind: "info", message }),
    loading: (message) => {
      record("toast", { kind: "loading", message });
      return `loading-${Date.now()}`;
    },
    dismiss: (id) => record("toast", { kind: "dismiss", id }),
    // NotificationToast: what the user sees is its title and content
    custom: (component, { componentProps, duration } = {}) =>
      record("toast", {
        kind: "custom",
        component: component?.name ?? String(component),
        title: componentProps?.title ?? null,
        content: componentProps?.content ?? null,
        duration: duration ?? null,
      }),
  };

  const localStorage = {
    token,
    getItem(key) {
      return Object.hasOwn(this, key) && typeof this[key] === "string" ? this[key] : null;
    },
    setItem(key, value) {
      this[key] = String(value);
    },
    removeItem(key) {
      delete this[key];
    },
  };

  const document = {
    visibilityState: "visible", // the tab is in front
    getElementById: () => null,
    querySelector: () => null,
  };
  const window = {
    electronAPI: undefined,
    origin: "http://localhost",
    history: { replaceState: (_state, _title, url) => record("navigate", { path: url }) },
  };
  const navigator = {}; // no vibrate

  const i18n = writable({ t: (key, vars) => (vars ? `${key} ${JSON.stringify(vars)}` : key) });

  const stores = {
    socket: writable(null),
    socketConnected: writable(true), // as in src/lib/stores
    user: writable(null),
    settings: writable({}),
    config: writable({ features: { enable_websocket: true } }),
    chatId: writable(""),
    chats: writable([]),
    currentChatPage: writable(1),
    tags: writable([]),
    temporaryChatEnabled: writable(false),
    isLastActiveTab: writable(true),
    playingNotificationSound: writable(false),
    channels: writable(channels),
    channelId: writable(null),
    toolServers: writable([]),
    terminalServers: writable([]),
    WEBUI_VERSION: writable(null),
    WEBUI_DEPLOYMENT_ID: writable(null),
    models: writable([]),
    chatTitle: writable(""),
    showCallOverlay: writable(false),
    selectedFolder: writable(null),
    selectedTerminalId: writable(null),
    chatRequestQueues: writable({}),
    page: writable({ url: new URL(pathname, "http://localhost") }),
    i18n,
  };
  stores.userValue = user;

  const goto = async (path) => record("goto", { path });

  return { toast, localStorage, document, window, navigator, stores, goto, record };
}

// -- Open WebUI's backend API (src/lib/apis) ------------------------------------------

// Each call is recorded (without the token) and answered as the backend would for a
// page that has just loaded; `overrides` answer the ones a test drives.
export function makeApi(report, overrides = {}) {
  const answers = {
    getVersion: () => null, // no version: no reload
    getChatList: () => [],
    getAllTags: () => [],
    getChatById: () => null,
    getTaskIdsByChatId: () => ({ task_ids: [] }),
    getChannels: () => [],
    getChannelById: () => null,
    getChannelMessages: () => [],
    sendMessage: () => null,
    getNoteById: () => null,
    updateNoteById: () => null,
    chatCompleted: () => null,
    executeToolServer: () => null,
    ...overrides,
  };
  const api = {};
  for (const [name, answer] of Object.entries(answers)) {
    api[name] = async (_token, ...args) => {
      report("api", { name, args: jsonSafe(args) });
      return answer(...args);
    };
  }
  return api;
}

// A value as JSON can carry it: binary as {bytes: length}, functions dropped.
export function jsonSafe(value, depth = 0) {
  if (depth > 12) return "…";
  if (value instanceof ArrayBuffer) return { bytes: value.byteLength };
  if (ArrayBuffer.isView(value)) return { bytes: value.byteLength };
  if (Array.isArray(value)) return value.map((v) => jsonSafe(v, depth + 1));
  if (typeof value === "function") return undefined;
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      const safe = jsonSafe(v, depth + 1);
      if (safe !== undefined) out[k] = safe;
    }
    return out;
  }
  return value;
}

// fast-deep-equal, as Open WebUI imports it, for plain JSON values.
export function equal(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// uuid's v4
export const uuidv4 = () => crypto.randomUUID();

// A socket for one component: the socket itself, except that a handler registered through
// it reports `handled` {component, name, state} once it has finished, so the test sees the
// component's state after each event (the handlers stay the component's own functions).
export function observedSocket(socket, component, snapshot, report) {
  const wrappers = new Map();
  const wrap = (name, fn) => {
    const key = `${name}\u0000`;
    let byFn = wrappers.get(key);
    if (!byFn) wrappers.set(key, (byFn = new Map()));
    if (!byFn.has(fn)) {
      byFn.set(fn, async (...args) => {
        try {
          await fn(...args);
        } finally {
          report("handled", { component, name, data: jsonSafe(args[0]), state: snapshot() });
        }
      });
    }
    return byFn.get(fn);
  };
  const proxy = new Proxy(socket, {
    get(target, prop) {
      if (prop === "on") {
        return (name, fn) => {
          target.on(name, wrap(name, fn));
          return proxy;
        };
      }
      if (prop === "off") {
        return (name, fn) => {
          if (fn === undefined) target.off(name);
          else target.off(name, wrappers.get(`${name}\u0000`)?.get(fn) ?? fn);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return proxy;
}
