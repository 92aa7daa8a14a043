// Pier isolate prelude: the Web-standard globals every deployment sees.
//
// This file is evaluated once per V8 context, before the deployment's bundle.
// It is a single function expression: Go calls it with the native binding
// object (Go callbacks) and keeps the returned internals object, so neither is
// reachable from user code. Native calls never return values: results travel
// through a SharedArrayBuffer the caller passes in, which keeps the V8 value
// bookkeeping on the Go side bounded.
(function (native) {
  'use strict';
  const g = globalThis;
  const SAB = g.SharedArrayBuffer;
  const define = (name, value) =>
    Object.defineProperty(g, name, { value, writable: true, configurable: true, enumerable: false });

  // ---------------------------------------------------------------- UTF-8
  function utf8Encode(str) {
    str = String(str);
    const out = new Uint8Array(str.length * 3);
    let p = 0;
    for (let i = 0; i < str.length; i++) {
      let c = str.charCodeAt(i);
      if (c < 0x80) { out[p++] = c; continue; }
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < str.length) {
        const d = str.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
        } else c = 0xfffd;
      } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x800) { out[p++] = 0xc0 | (c >> 6); out[p++] = 0x80 | (c & 63); }
      else if (c < 0x10000) { out[p++] = 0xe0 | (c >> 12); out[p++] = 0x80 | ((c >> 6) & 63); out[p++] = 0x80 | (c & 63); }
      else {
        out[p++] = 0xf0 | (c >> 18); out[p++] = 0x80 | ((c >> 12) & 63);
        out[p++] = 0x80 | ((c >> 6) & 63); out[p++] = 0x80 | (c & 63);
      }
    }
    return out.slice(0, p);
  }

  // utf8Decode returns [text, consumed]; with stream it stops before an
  // incomplete trailing sequence.
  function utf8Decode(bytes, fatal, stream) {
    let s = '';
    const parts = [];
    let i = 0;
    const n = bytes.length;
    const bad = () => { if (fatal) throw new TypeError('The encoded data was not valid for encoding utf-8'); return 0xfffd; };
    while (i < n) {
      const b = bytes[i];
      let c, need = 0;
      if (b < 0x80) { c = b; }
      else if (b >= 0xc2 && b <= 0xdf) { need = 1; c = b & 0x1f; }
      else if (b >= 0xe0 && b <= 0xef) { need = 2; c = b & 0x0f; }
      else if (b >= 0xf0 && b <= 0xf4) { need = 3; c = b & 0x07; }
      else { c = bad(); i++; s += String.fromCharCode(c); continue; }
      if (need) {
        let j = 1, ok = true;
        for (; j <= need; j++) {
          if (i + j >= n) { ok = false; break; }
          const x = bytes[i + j];
          let lo = 0x80, hi = 0xbf;
          if (j === 1) {
            if (b === 0xe0) lo = 0xa0; else if (b === 0xed) hi = 0x9f;
            else if (b === 0xf0) lo = 0x90; else if (b === 0xf4) hi = 0x8f;
          }
          if (x < lo || x > hi) { ok = false; break; }
          c = (c << 6) | (x & 63);
        }
        if (!ok) {
          if (i + j >= n && stream) break;
          c = bad(); i += j; s += String.fromCharCode(c);
          continue;
        }
        i += need + 1;
      } else i++;
      if (c > 0xffff) { c -= 0x10000; s += String.fromCharCode(0xd800 + (c >> 10), 0xdc00 + (c & 0x3ff)); }
      else s += String.fromCharCode(c);
      if (s.length > 8192) { parts.push(s); s = ''; }
    }
    parts.push(s);
    return [parts.join(''), i];
  }

  function toBytes(v) {
    if (v instanceof Uint8Array) return v;
    if (v instanceof ArrayBuffer) return new Uint8Array(v);
    if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    if (v instanceof SAB) return new Uint8Array(v);
    throw new TypeError('expected an ArrayBuffer or ArrayBufferView');
  }

  class TextEncoder {
    get encoding() { return 'utf-8'; }
    encode(input = '') { return utf8Encode(input); }
    encodeInto(input, dest) {
      const b = utf8Encode(input);
      // Only whole characters: back off continuation bytes at the cut.
      let n = Math.min(b.length, dest.length);
      if (n < b.length) while (n > 0 && (b[n] & 0xc0) === 0x80) n--;
      dest.set(b.subarray(0, n));
      const read = utf8Decode(b.subarray(0, n), false, false)[0].length;
      return { read, written: n };
    }
  }

  class TextDecoder {
    #fatal; #ignoreBOM; #pending = null; #bomSeen = false;
    constructor(label = 'utf-8', options = {}) {
      const l = String(label).trim().toLowerCase();
      if (l !== 'utf-8' && l !== 'utf8' && l !== 'unicode-1-1-utf-8') throw new RangeError(`The "${label}" encoding is not supported`);
      this.#fatal = !!options.fatal;
      this.#ignoreBOM = !!options.ignoreBOM;
    }
    get encoding() { return 'utf-8'; }
    get fatal() { return this.#fatal; }
    get ignoreBOM() { return this.#ignoreBOM; }
    decode(input, options = {}) {
      let bytes = input === undefined ? new Uint8Array(0) : toBytes(input);
      if (this.#pending) {
        const m = new Uint8Array(this.#pending.length + bytes.length);
        m.set(this.#pending); m.set(bytes, this.#pending.length);
        bytes = m; this.#pending = null;
      }
      const stream = !!options.stream;
      const [text, used] = utf8Decode(bytes, this.#fatal, stream);
      if (used < bytes.length) this.#pending = bytes.slice(used);
      let out = text;
      if (!this.#ignoreBOM && !this.#bomSeen && out.charCodeAt(0) === 0xfeff) out = out.slice(1);
      if (out.length) this.#bomSeen = true;
      if (!stream) this.#bomSeen = false;
      return out;
    }
  }

  // ---------------------------------------------------------------- base64
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const B64R = new Int16Array(256).fill(-1);
  for (let i = 0; i < 64; i++) B64R[B64.charCodeAt(i)] = i;
  function btoa(data) {
    if (arguments.length < 1) throw new TypeError("Failed to execute 'btoa': 1 argument required");
    const s = String(data);
    let out = '';
    for (let i = 0; i < s.length; i += 3) {
      const a = s.charCodeAt(i), b = s.charCodeAt(i + 1), c = s.charCodeAt(i + 2);
      if (a > 255 || b > 255 || c > 255) throw new DOMException('Invalid character', 'InvalidCharacterError');
      const n = (a << 16) | ((b || 0) << 8) | (c || 0);
      out += B64[n >> 18] + B64[(n >> 12) & 63] + (i + 1 < s.length ? B64[(n >> 6) & 63] : '=') + (i + 2 < s.length ? B64[n & 63] : '=');
    }
    return out;
  }
  function atob(data) {
    if (arguments.length < 1) throw new TypeError("Failed to execute 'atob': 1 argument required");
    let s = String(data).replace(/[\t\n\f\r ]/g, '');
    if (s.length % 4 === 0) s = s.replace(/==?$/, '');
    if (s.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(s)) throw new DOMException('The string to be decoded is not correctly encoded.', 'InvalidCharacterError');
    let out = '', buf = 0, bits = 0;
    for (let i = 0; i < s.length; i++) {
      buf = (buf << 6) | B64R[s.charCodeAt(i)]; bits += 6;
      if (bits >= 8) { bits -= 8; out += String.fromCharCode((buf >> bits) & 255); }
    }
    return out;
  }

  class DOMException extends Error {
    #name;
    constructor(message = '', name = 'Error') { super(message); this.#name = String(name); }
    get name() { return this.#name; }
    get code() { return 0; }
  }

  // ---------------------------------------------------------------- events and abort
  class Event {
    #type;
    constructor(type, init = {}) { this.#type = String(type); this.cancelable = !!init.cancelable; this.defaultPrevented = false; this.timeStamp = Date.now(); }
    get type() { return this.#type; }
    preventDefault() { if (this.cancelable) this.defaultPrevented = true; }
    stopPropagation() {}
    stopImmediatePropagation() {}
  }
  class EventTarget {
    #listeners = new Map();
    addEventListener(type, fn, opts) {
      if (!fn) return;
      const list = this.#listeners.get(type) || [];
      if (!list.some((l) => l.fn === fn)) list.push({ fn, once: !!(opts && opts.once) });
      this.#listeners.set(type, list);
    }
    removeEventListener(type, fn) {
      const list = this.#listeners.get(type);
      if (list) this.#listeners.set(type, list.filter((l) => l.fn !== fn));
    }
    dispatchEvent(ev) {
      const list = (this.#listeners.get(ev.type) || []).slice();
      for (const l of list) {
        if (l.once) this.removeEventListener(ev.type, l.fn);
        try { typeof l.fn === 'function' ? l.fn.call(this, ev) : l.fn.handleEvent(ev); } catch (e) { reportError(e); }
      }
      return !ev.defaultPrevented;
    }
  }
  class AbortSignal extends EventTarget {
    #aborted = false; #reason = undefined;
    constructor(key) { super(); if (key !== internalKey) throw new TypeError('Illegal constructor'); this.onabort = null; }
    get aborted() { return this.#aborted; }
    get reason() { return this.#reason; }
    throwIfAborted() { if (this.#aborted) throw this.#reason; }
    _abort(reason) {
      if (this.#aborted) return;
      this.#aborted = true;
      this.#reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
      const ev = new Event('abort');
      if (typeof this.onabort === 'function') { try { this.onabort(ev); } catch (e) { reportError(e); } }
      this.dispatchEvent(ev);
    }
    static abort(reason) { const s = new AbortSignal(internalKey); s._abort(reason); return s; }
    static timeout(ms) {
      const s = new AbortSignal(internalKey);
      setTimeout(() => s._abort(new DOMException('The operation timed out.', 'TimeoutError')), ms);
      return s;
    }
    static any(signals) {
      const s = new AbortSignal(internalKey);
      for (const x of signals) {
        if (x.aborted) { s._abort(x.reason); break; }
        x.addEventListener('abort', () => s._abort(x.reason), { once: true });
      }
      return s;
    }
  }
  const internalKey = Symbol('internal');
  class AbortController {
    #signal = new AbortSignal(internalKey);
    get signal() { return this.#signal; }
    abort(reason) { this.#signal._abort(reason); }
  }

  // ---------------------------------------------------------------- console
  function inspect(v, depth, seen) {
    if (typeof v === 'string') return depth === 0 ? v : JSON.stringify(v);
    if (v === null || typeof v !== 'object' && typeof v !== 'function') {
      if (typeof v === 'bigint') return v + 'n';
      if (typeof v === 'symbol') return v.toString();
      return String(v);
    }
    if (typeof v === 'function') return `[Function: ${v.name || 'anonymous'}]`;
    if (v instanceof Error) return v.stack || `${v.name}: ${v.message}`;
    if (seen.has(v)) return '[Circular]';
    if (depth > 3) return Array.isArray(v) ? '[Array]' : '[Object]';
    seen.add(v);
    try {
      if (Array.isArray(v)) return '[ ' + v.slice(0, 100).map((x) => inspect(x, depth + 1, seen)).join(', ') + (v.length > 100 ? ', ...' : '') + ' ]';
      if (v instanceof Map) return `Map(${v.size}) {` + [...v].slice(0, 100).map(([k, x]) => `${inspect(k, depth + 1, seen)} => ${inspect(x, depth + 1, seen)}`).join(', ') + '}';
      if (v instanceof Set) return `Set(${v.size}) {` + [...v].slice(0, 100).map((x) => inspect(x, depth + 1, seen)).join(', ') + '}';
      if (v instanceof Date) return v.toISOString();
      if (v instanceof URL || v instanceof URLSearchParams) return String(v);
      const keys = Object.keys(v);
      const name = v.constructor && v.constructor !== Object && v.constructor.name ? v.constructor.name + ' ' : '';
      return name + '{ ' + keys.slice(0, 100).map((k) => `${k}: ${inspect(v[k], depth + 1, seen)}`).join(', ') + ' }';
    } finally { seen.delete(v); }
  }
  function format(args) {
    let out = '';
    let i = 0;
    if (typeof args[0] === 'string' && args[0].includes('%') && args.length > 1) {
      out = args[0].replace(/%[sdifjoOc%]/g, (m) => {
        if (m === '%%') return '%';
        if (i + 1 >= args.length) return m;
        const a = args[++i];
        switch (m) {
          case '%s': return typeof a === 'string' ? a : inspect(a, 1, new Set());
          case '%d': case '%i': return String(parseInt(a, 10));
          case '%f': return String(parseFloat(a));
          case '%c': return '';
          default: return inspect(a, 1, new Set());
        }
      });
      i++;
    } else if (args.length) { out = inspect(args[0], 0, new Set()); i = 1; }
    for (; i < args.length; i++) out += ' ' + inspect(args[i], 0, new Set());
    return out;
  }
  const timersForConsole = new Map();
  const counts = new Map();
  const log = (level) => (...args) => { native.log(level, format(args)); };
  const console = {
    log: log('log'), info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug'), trace: log('debug'),
    dir: (v) => native.log('log', inspect(v, 0, new Set())),
    table: log('log'),
    assert: (cond, ...args) => { if (!cond) native.log('error', 'Assertion failed' + (args.length ? ': ' + format(args) : '')); },
    time: (label = 'default') => { timersForConsole.set(label, Date.now()); },
    timeEnd: (label = 'default') => { const t = timersForConsole.get(label); timersForConsole.delete(label); if (t !== undefined) native.log('log', `${label}: ${Date.now() - t}ms`); },
    timeLog: (label = 'default', ...args) => { const t = timersForConsole.get(label); if (t !== undefined) native.log('log', `${label}: ${Date.now() - t}ms` + (args.length ? ' ' + format(args) : '')); },
    count: (label = 'default') => { const n = (counts.get(label) || 0) + 1; counts.set(label, n); native.log('log', `${label}: ${n}`); },
    countReset: (label = 'default') => { counts.delete(label); },
    group: log('log'), groupCollapsed: log('log'), groupEnd: () => {},
  };
  function reportError(e) { native.log('error', 'Uncaught ' + inspect(e, 0, new Set())); }

  // ---------------------------------------------------------------- native result channel
  let scratch = new SAB(4096);
  // callNative runs fn(scratch, ...args); Go writes [status u8][len u32 LE][utf-8 bytes].
  // A native call that starts work (fetch) is made once: its reply is short.
  function callNative(fn, ...args) {
    for (;;) {
      new Uint8Array(scratch, 0, 5).fill(0);
      fn(scratch, ...args);
      const b = new Uint8Array(scratch);
      const len = (b[1] | (b[2] << 8) | (b[3] << 16) | (b[4] << 24)) >>> 0;
      if (len + 5 > scratch.byteLength) { scratch = new SAB(len + 5); continue; }
      const text = utf8Decode(b.slice(5, 5 + len), false, false)[0];
      if (b[0] !== 0) throw new TypeError(text);
      return text;
    }
  }
  function toShared(bytes) {
    const s = new SAB(bytes.length);
    new Uint8Array(s).set(bytes);
    return s;
  }

  // ---------------------------------------------------------------- crypto
  function getRandomValues(arr) {
    if (!(arr instanceof Int8Array || arr instanceof Uint8Array || arr instanceof Uint8ClampedArray || arr instanceof Int16Array ||
      arr instanceof Uint16Array || arr instanceof Int32Array || arr instanceof Uint32Array || arr instanceof BigInt64Array || arr instanceof BigUint64Array)) {
      throw new DOMException('The provided ArrayBufferView is not an integer array', 'TypeMismatchError');
    }
    if (arr.byteLength > 65536) throw new DOMException('The ArrayBufferView byte length exceeds 65536', 'QuotaExceededError');
    const s = new SAB(arr.byteLength);
    native.random(s);
    new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength).set(new Uint8Array(s));
    return arr;
  }
  function randomUUID() {
    const b = getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  const crypto = { getRandomValues, randomUUID };

  // ---------------------------------------------------------------- URL
  const formEncode = (s) => encodeURIComponent(s).replace(/%20/g, '+').replace(/[!'()~]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
  const formDecode = (s) => { try { return decodeURIComponent(s.replace(/\+/g, ' ')); } catch { return s; } };
  class URLSearchParams {
    #list = []; #url = null;
    constructor(init = '') {
      if (typeof init === 'object' && init !== null) {
        if (init instanceof URLSearchParams) this.#list = init.#list.map((p) => p.slice());
        else if (typeof init[Symbol.iterator] === 'function') {
          for (const pair of init) {
            const p = [...pair];
            if (p.length !== 2) throw new TypeError('Each query pair must be an iterable [name, value] tuple');
            this.#list.push([String(p[0]), String(p[1])]);
          }
        } else for (const k of Object.keys(init)) this.#list.push([k, String(init[k])]);
      } else this._parse(String(init));
    }
    _parse(s) {
      this.#list = [];
      if (s.startsWith('?')) s = s.slice(1);
      for (const part of s.split('&')) {
        if (!part) continue;
        const i = part.indexOf('=');
        this.#list.push(i < 0 ? [formDecode(part), ''] : [formDecode(part.slice(0, i)), formDecode(part.slice(i + 1))]);
      }
    }
    _attach(url) { this.#url = url; }
    #update() { if (this.#url) this.#url._setSearch(this.toString()); }
    get size() { return this.#list.length; }
    append(k, v) { this.#list.push([String(k), String(v)]); this.#update(); }
    delete(k, v) { k = String(k); this.#list = this.#list.filter((p) => p[0] !== k || (v !== undefined && p[1] !== String(v))); this.#update(); }
    get(k) { k = String(k); const p = this.#list.find((x) => x[0] === k); return p ? p[1] : null; }
    getAll(k) { k = String(k); return this.#list.filter((x) => x[0] === k).map((x) => x[1]); }
    has(k, v) { k = String(k); return this.#list.some((p) => p[0] === k && (v === undefined || p[1] === String(v))); }
    set(k, v) {
      k = String(k); v = String(v);
      const i = this.#list.findIndex((p) => p[0] === k);
      if (i < 0) this.#list.push([k, v]);
      else { this.#list[i][1] = v; this.#list = this.#list.filter((p, j) => j <= i || p[0] !== k); }
      this.#update();
    }
    sort() { this.#list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this.#update(); }
    forEach(fn, thisArg) { for (const [k, v] of this.#list) fn.call(thisArg, v, k, this); }
    keys() { return this.#list.map((p) => p[0])[Symbol.iterator](); }
    values() { return this.#list.map((p) => p[1])[Symbol.iterator](); }
    entries() { return this.#list.map((p) => [p[0], p[1]])[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this.#list.map(([k, v]) => formEncode(k) + '=' + formEncode(v)).join('&'); }
    get [Symbol.toStringTag]() { return 'URLSearchParams'; }
  }

  // Parsed URLs by input: parsing crosses into Go, and the same URL is
  // parsed again and again (the Request, then the handler's new URL(req.url);
  // the same paths request after request). Parsing is a pure function of
  // its input, so the records are shared; each URL gets its own copy.
  // Bounded: cleared when full, long inputs (data: URLs) not kept.
  const urlCache = new Map();
  function parseURL(url, base, hasBase) {
    const key = hasBase ? 'b' + base.length + ':' + base + url : 'u' + url;
    let p = key.length <= 2048 ? urlCache.get(key) : undefined;
    if (p === undefined) {
      p = JSON.parse(callNative(native.url, url, base, hasBase));
      if (key.length <= 2048) {
        if (urlCache.size >= 512) urlCache.clear();
        urlCache.set(key, p);
      }
    }
    return { ...p };
  }

  class URL {
    #p; #sp;
    constructor(url, base) {
      if (arguments.length < 1) throw new TypeError("Failed to construct 'URL': 1 argument required");
      this.#p = parseURL(String(url), base === undefined ? '' : String(base), base !== undefined);
      this.#sp = null; // made on first use: most URLs never look at their query
    }
    static canParse(url, base) { try { new URL(url, base); return true; } catch { return false; } }
    static parse(url, base) { try { return new URL(url, base); } catch { return null; } }
    #reparse(next) {
      const u = new URL(next);
      this.#p = u.#p;
      if (this.#sp) this.#sp._parse(this.#p.search);
    }
    #compose(over) {
      const p = { ...this.#p, ...over };
      const auth = p.username || p.password ? p.username + (p.password ? ':' + p.password : '') + '@' : '';
      const host = p.hostname + (p.port ? ':' + p.port : '');
      const slashes = p.hostname || /^(https?|wss?|ftp|file):$/.test(p.protocol) ? '//' : '';
      return p.protocol + slashes + auth + host + p.pathname + p.search + p.hash;
    }
    _setSearch(s) { this.#p.search = s ? '?' + s : ''; this.#p.href = this.#compose({}); }
    get href() { return this.#p.href; }
    set href(v) { this.#reparse(String(v)); }
    get origin() { return this.#p.origin; }
    get protocol() { return this.#p.protocol; }
    set protocol(v) { v = String(v).replace(/:?$/, ':'); this.#reparse(this.#compose({ protocol: v })); }
    get username() { return this.#p.username; }
    set username(v) { this.#reparse(this.#compose({ username: encodeURIComponent(String(v)) })); }
    get password() { return this.#p.password; }
    set password(v) { this.#reparse(this.#compose({ password: encodeURIComponent(String(v)) })); }
    get host() { return this.#p.hostname + (this.#p.port ? ':' + this.#p.port : ''); }
    set host(v) { const [h, port] = String(v).split(':'); this.#reparse(this.#compose({ hostname: h, port: port || '' })); }
    get hostname() { return this.#p.hostname; }
    set hostname(v) { this.#reparse(this.#compose({ hostname: String(v) })); }
    get port() { return this.#p.port; }
    set port(v) { this.#reparse(this.#compose({ port: String(v) })); }
    get pathname() { return this.#p.pathname; }
    set pathname(v) { v = String(v); this.#reparse(this.#compose({ pathname: v.startsWith('/') ? v : '/' + v })); }
    get search() { return this.#p.search; }
    set search(v) { v = String(v); this.#reparse(this.#compose({ search: v && !v.startsWith('?') ? '?' + v : v === '?' ? '' : v })); }
    get searchParams() {
      if (!this.#sp) { this.#sp = new URLSearchParams(this.#p.search); this.#sp._attach(this); }
      return this.#sp;
    }
    get hash() { return this.#p.hash; }
    set hash(v) { v = String(v); this.#reparse(this.#compose({ hash: v && !v.startsWith('#') ? '#' + v : v === '#' ? '' : v })); }
    toString() { return this.#p.href; }
    toJSON() { return this.#p.href; }
    get [Symbol.toStringTag]() { return 'URL'; }
  }

  // ---------------------------------------------------------------- Headers
  const validName = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const normValue = (v) => String(v).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
  class Headers {
    #map = new Map(); // lower name -> values[]
    constructor(init) {
      if (init == null) return;
      if (init instanceof Headers) { for (const [k, vs] of init.#map) this.#map.set(k, vs.slice()); return; }
      if (typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) {
          const p = [...pair];
          if (p.length !== 2) throw new TypeError('Headers init pairs must have exactly two items');
          this.append(p[0], p[1]);
        }
        return;
      }
      if (typeof init === 'object') { for (const k of Object.keys(init)) this.append(k, init[k]); return; }
      throw new TypeError('Invalid headers init');
    }
    #name(n) { n = String(n); if (!validName.test(n)) throw new TypeError(`Invalid header name: "${n}"`); return n.toLowerCase(); }
    append(n, v) { n = this.#name(n); const vs = this.#map.get(n); v = normValue(v); if (vs) vs.push(v); else this.#map.set(n, [v]); }
    set(n, v) { this.#map.set(this.#name(n), [normValue(v)]); }
    get(n) { const vs = this.#map.get(this.#name(n)); return vs ? vs.join(', ') : null; }
    getSetCookie() { return (this.#map.get('set-cookie') || []).slice(); }
    has(n) { return this.#map.has(this.#name(n)); }
    delete(n) { this.#map.delete(this.#name(n)); }
    forEach(fn, thisArg) { for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this); }
    *entries() {
      const names = [...this.#map.keys()].sort();
      for (const k of names) {
        const vs = this.#map.get(k);
        if (k === 'set-cookie') for (const v of vs) yield [k, v];
        else yield [k, vs.join(', ')];
      }
    }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return 'Headers'; }
    _pairs() { const out = []; for (const [k, vs] of this.#map) for (const v of vs) out.push([k, v]); return out; }
  }

  // ---------------------------------------------------------------- ReadableStream (minimal)
  class ReadableStreamDefaultController {
    #s;
    constructor(s) { this.#s = s; }
    enqueue(chunk) { this.#s._enqueue(chunk); }
    close() { this.#s._close(); }
    error(e) { this.#s._error(e); }
    get desiredSize() { return 1; }
  }
  class ReadableStream {
    #queue = []; #closed = false; #error = null; #waiters = []; #source; #controller; #locked = false; #pulling = false;
    constructor(source = {}) {
      this.#source = source;
      this.#controller = new ReadableStreamDefaultController(this);
      if (source.start) {
        try {
          const r = source.start(this.#controller);
          if (r && typeof r.then === 'function') r.then(undefined, (e) => this._error(e));
        } catch (e) { this._error(e); }
      }
    }
    get locked() { return this.#locked; }
    _enqueue(c) { if (this.#closed) throw new TypeError('stream is closed'); const w = this.#waiters.shift(); if (w) w.resolve({ value: c, done: false }); else this.#queue.push(c); }
    _close() { this.#closed = true; for (const w of this.#waiters.splice(0)) w.resolve({ value: undefined, done: true }); }
    _error(e) { this.#error = e; this.#closed = true; for (const w of this.#waiters.splice(0)) w.reject(e); }
    _read() {
      if (this.#queue.length) return Promise.resolve({ value: this.#queue.shift(), done: false });
      if (this.#error) return Promise.reject(this.#error);
      if (this.#closed) return Promise.resolve({ value: undefined, done: true });
      const p = new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
      if (this.#source.pull && !this.#pulling) {
        this.#pulling = true;
        Promise.resolve().then(() => this.#source.pull(this.#controller)).then(
          () => { this.#pulling = false; }, (e) => { this.#pulling = false; this._error(e); });
      }
      return p;
    }
    getReader() {
      if (this.#locked) throw new TypeError('ReadableStream is locked');
      this.#locked = true;
      const s = this;
      return {
        read: () => s._read(),
        releaseLock: () => { s.#locked = false; },
        cancel: (r) => s.cancel(r),
        get closed() { return Promise.resolve(); },
      };
    }
    cancel(reason) {
      this.#queue = []; this._close();
      if (this.#source.cancel) return Promise.resolve(this.#source.cancel(reason));
      return Promise.resolve();
    }
    async *[Symbol.asyncIterator]() {
      const r = this.getReader();
      try { for (;;) { const { value, done } = await r.read(); if (done) return; yield value; } } finally { r.releaseLock(); }
    }
    values() { return this[Symbol.asyncIterator](); }
  }
  async function readAll(stream) {
    const parts = [];
    let n = 0;
    for await (const chunk of stream) {
      const b = typeof chunk === 'string' ? utf8Encode(chunk) : toBytes(chunk);
      parts.push(b); n += b.length;
    }
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }

  // ---------------------------------------------------------------- Body, Request, Response
  // A body source is null, a string, a Uint8Array or a ReadableStream.
  function extractBody(body) {
    if (body == null) return [null, null];
    if (typeof body === 'string') return [body, 'text/plain;charset=UTF-8'];
    if (body instanceof URLSearchParams) return [body.toString(), 'application/x-www-form-urlencoded;charset=UTF-8'];
    if (body instanceof ReadableStream) return [body, null];
    if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return [toBytes(body).slice(), null];
    if (body instanceof SAB) return [new Uint8Array(body).slice(), null];
    return [String(body), 'text/plain;charset=UTF-8'];
  }
  class Body {
    #src = null; #used = false;
    _initBody(src) { this.#src = src; }
    _source() { return this.#src; }
    get bodyUsed() { return this.#used; }
    get body() {
      const s = this.#src;
      if (s == null) return null;
      if (s instanceof ReadableStream) return s;
      const bytes = typeof s === 'string' ? utf8Encode(s) : s;
      this.#src = new ReadableStream({ start(c) { c.enqueue(bytes); c.close(); } });
      return this.#src;
    }
    async #consume() {
      if (this.#used) throw new TypeError('Body has already been used');
      this.#used = true;
      const s = this.#src;
      if (s == null) return '';
      if (s instanceof ReadableStream) return readAll(s);
      return s;
    }
    async text() { const s = await this.#consume(); return typeof s === 'string' ? s : utf8Decode(s, false, false)[0]; }
    async json() { return JSON.parse(await this.text()); }
    async bytes() { const s = await this.#consume(); return typeof s === 'string' ? utf8Encode(s) : s.slice(); }
    async arrayBuffer() { return (await this.bytes()).buffer; }
    async formData() { throw new TypeError('formData() is not supported by this runtime'); }
    async blob() { throw new TypeError('blob() is not supported by this runtime'); }
    _cloneSource() {
      const s = this.#src;
      if (s instanceof ReadableStream) throw new TypeError('cannot clone a streamed body');
      return s;
    }
  }

  const METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH'];
  class Request extends Body {
    #url; #method; #headers; #signal; #redirect;
    constructor(input, init = {}) {
      super();
      let src = null;
      if (input instanceof Request) {
        this.#url = input.url; this.#method = input.method; this.#headers = new Headers(input.headers);
        this.#signal = input.signal; this.#redirect = input.redirect;
        if (init.body === undefined) src = input._cloneSource();
      } else {
        this.#url = parseURL(String(input), '', false).href;
        this.#method = 'GET'; this.#headers = new Headers(); this.#signal = new AbortSignal(internalKey); this.#redirect = 'follow';
      }
      if (init.method !== undefined) {
        const m = String(init.method);
        this.#method = METHODS.includes(m.toUpperCase()) ? m.toUpperCase() : m;
      }
      if (init.headers !== undefined) this.#headers = new Headers(init.headers);
      if (init.signal) this.#signal = init.signal;
      if (init.redirect) this.#redirect = String(init.redirect);
      if (init.body !== undefined && init.body !== null) {
        if (this.#method === 'GET' || this.#method === 'HEAD') throw new TypeError('Request with GET/HEAD method cannot have body.');
        const [b, type] = extractBody(init.body);
        src = b;
        if (type && !this.#headers.has('content-type')) this.#headers.set('content-type', type);
      }
      this._initBody(src);
    }
    get url() { return this.#url; }
    get method() { return this.#method; }
    get headers() { return this.#headers; }
    get signal() { return this.#signal; }
    get redirect() { return this.#redirect; }
    get cache() { return 'default'; }
    get credentials() { return 'same-origin'; }
    get mode() { return 'cors'; }
    get destination() { return ''; }
    get referrer() { return 'about:client'; }
    get integrity() { return ''; }
    get keepalive() { return false; }
    clone() { if (this.bodyUsed) throw new TypeError('Body has already been used'); return new Request(this); }
    get [Symbol.toStringTag]() { return 'Request'; }
  }

  const NULL_BODY = [101, 204, 205, 304];
  class Response extends Body {
    #status; #statusText; #headers; #type = 'default'; #url = ''; #redirected = false;
    constructor(body = null, init = {}) {
      super();
      const status = init.status === undefined ? 200 : Number(init.status);
      if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`Failed to construct 'Response': The status provided (${init.status}) is outside the range [200, 599].`);
      this.#status = status;
      this.#statusText = init.statusText === undefined ? '' : String(init.statusText);
      this.#headers = new Headers(init.headers);
      const [b, type] = extractBody(body);
      if (b !== null && NULL_BODY.includes(status)) throw new TypeError('Response with null body status cannot have body');
      if (type && !this.#headers.has('content-type')) this.#headers.set('content-type', type);
      this._initBody(b);
    }
    static json(data, init = {}) {
      const body = JSON.stringify(data);
      if (body === undefined) throw new TypeError('Value is not JSON serializable');
      const h = new Headers(init.headers);
      if (!h.has('content-type')) h.set('content-type', 'application/json');
      return new Response(body, { ...init, headers: h });
    }
    static redirect(url, status = 302) {
      if (![301, 302, 303, 307, 308].includes(status)) throw new RangeError('Invalid status code');
      return new Response(null, { status, headers: { location: new URL(String(url)).href } });
    }
    static error() { const r = new Response(null, { status: 200 }); r.#status = 0; r.#type = 'error'; return r; }
    static _fetched(status, statusText, headers, bytes, url, redirected) {
      const r = new Response(null, { headers });
      r.#status = status; r.#statusText = statusText; r.#url = url; r.#redirected = redirected; r.#type = 'basic';
      r._initBody(bytes);
      return r;
    }
    get status() { return this.#status; }
    get statusText() { return this.#statusText; }
    get ok() { return this.#status >= 200 && this.#status < 300; }
    get headers() { return this.#headers; }
    get type() { return this.#type; }
    get url() { return this.#url; }
    get redirected() { return this.#redirected; }
    clone() {
      if (this.bodyUsed) throw new TypeError('Body has already been used');
      const r = new Response(null, { status: this.#status === 0 ? 200 : this.#status, statusText: this.#statusText, headers: this.#headers });
      r.#status = this.#status; r.#type = this.#type; r.#url = this.#url; r.#redirected = this.#redirected;
      r._initBody(this._cloneSource());
      return r;
    }
    get [Symbol.toStringTag]() { return 'Response'; }
  }

  // ---------------------------------------------------------------- timers
  let timerSeq = 0;
  const timers = new Map(); // id -> {at, fn, args, every}
  function setTimeout(fn, ms, ...args) {
    if (typeof fn !== 'function') throw new TypeError('setTimeout callback must be a function');
    const id = ++timerSeq;
    timers.set(id, { at: Date.now() + Math.max(0, Number(ms) || 0), fn, args, every: -1, seq: id });
    return id;
  }
  function setInterval(fn, ms, ...args) {
    if (typeof fn !== 'function') throw new TypeError('setInterval callback must be a function');
    const id = ++timerSeq;
    const every = Math.max(1, Number(ms) || 0);
    timers.set(id, { at: Date.now() + every, fn, args, every, seq: id });
    return id;
  }
  const clearTimer = (id) => { timers.delete(id); };
  function queueMicrotask(fn) {
    if (typeof fn !== 'function') throw new TypeError('queueMicrotask callback must be a function');
    Promise.resolve().then(() => { try { fn(); } catch (e) { reportError(e); } });
  }
  // runTimers runs every due timer, then returns the ms until the next one, or -1.
  function runTimers() {
    for (let guard = 0; guard < 10000; guard++) {
      const now = Date.now();
      let due = null;
      for (const [id, t] of timers) if (t.at <= now && (!due || t.at < due[1].at || (t.at === due[1].at && t.seq < due[1].seq))) due = [id, t];
      if (!due) break;
      const [id, t] = due;
      if (t.every >= 0) { t.at = now + t.every; t.seq = ++timerSeq; } else timers.delete(id);
      try { t.fn(...t.args); } catch (e) { reportError(e); }
    }
    let next = -1;
    const now = Date.now();
    for (const t of timers.values()) { const d = Math.max(0, t.at - now); if (next < 0 || d < next) next = d; }
    return next;
  }

  class MessagePort extends EventTarget {
    constructor() { super(); this.onmessage = null; this._other = null; }
    postMessage(data) {
      const other = this._other;
      setTimeout(() => {
        const ev = new Event('message'); ev.data = data;
        if (typeof other.onmessage === 'function') other.onmessage(ev);
        other.dispatchEvent(ev);
      }, 0);
    }
    start() {}
    close() {}
  }
  class MessageChannel {
    constructor() { this.port1 = new MessagePort(); this.port2 = new MessagePort(); this.port1._other = this.port2; this.port2._other = this.port1; }
  }

  // ---------------------------------------------------------------- fetch
  let fetchSeq = 0;
  const fetches = new Map(); // id -> {resolve, reject, url}
  function fetch(input, init) {
    return new Promise((resolve, reject) => {
      const req = new Request(input, init);
      if (req.signal && req.signal.aborted) { reject(req.signal.reason); return; }
      const src = req._source();
      const send = (body) => {
        const id = ++fetchSeq;
        try {
          callNative(native.fetch, id, JSON.stringify({ method: req.method, url: req.url, headers: req.headers._pairs(), redirect: req.redirect }), body);
        } catch (e) { reject(e); return; }
        fetches.set(id, { resolve, reject });
        if (req.signal) req.signal.addEventListener('abort', () => { if (fetches.delete(id)) reject(req.signal.reason); }, { once: true });
      };
      if (src instanceof ReadableStream) readAll(src).then((b) => send(toShared(b)), reject);
      else send(src == null ? undefined : typeof src === 'string' ? src : toShared(src));
    });
  }
  function fetchDone(id, meta, body, err) {
    const f = fetches.get(id);
    if (!f) return;
    fetches.delete(id);
    if (f.host) {
      if (err) f.reject(new Error(err));
      else f.resolve(meta === '' ? undefined : JSON.parse(meta));
      return;
    }
    if (err) { f.reject(new TypeError(err)); return; }
    const m = JSON.parse(meta);
    const bytes = body ? new Uint8Array(body).slice() : new Uint8Array(0);
    f.resolve(Response._fetched(m.status, m.statusText, m.headers, NULL_BODY.includes(m.status) ? null : bytes, m.url, m.redirected));
  }

  // ---------------------------------------------------------------- bindings (env.DATA, …): Go methods
  function hostCall(name, method, args) {
    return new Promise((resolve, reject) => {
      let json;
      try { json = JSON.stringify(args); } catch (e) { reject(new TypeError(`${name}.${method}: the arguments are not JSON: ${e.message}`)); return; }
      const id = ++fetchSeq;
      try { callNative(native.host, id, name, method, json); } catch (e) { reject(new Error(e.message)); return; }
      fetches.set(id, { resolve, reject, host: true });
    });
  }
  function makeBindings(json) {
    const out = {};
    const spec = JSON.parse(json || '{}');
    for (const name of Object.keys(spec)) {
      const o = {};
      for (const m of spec[name]) o[m] = (...args) => hostCall(name, m, args);
      out[name] = Object.freeze(o);
    }
    return out;
  }

  // ---------------------------------------------------------------- install globals
  const globals = {
    TextEncoder, TextDecoder, atob, btoa, DOMException, Event, EventTarget, AbortController, AbortSignal,
    console, crypto, URL, URLSearchParams, Headers, Request, Response, ReadableStream, fetch,
    setTimeout, clearTimeout: clearTimer, setInterval, clearInterval: clearTimer, queueMicrotask,
    MessageChannel, MessagePort, reportError,
    structuredClone: (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v))),
    performance: { now: () => Date.now() - startedAt, timeOrigin: Date.now() },
    navigator: { userAgent: 'Pier', hardwareConcurrency: 1 },
  };
  const startedAt = Date.now();
  for (const k of Object.keys(globals)) define(k, globals[k]);
  define('self', g);

  // ---------------------------------------------------------------- entry points (called from Go)
  let entry = null; // {fetch} object
  let handler = null;
  let env = Object.freeze({});
  let exported = null;

  function bind(moduleFn, envJSON, bindingsJSON) {
    env = Object.freeze(Object.assign(JSON.parse(envJSON), makeBindings(bindingsJSON)));
    if (typeof moduleFn === 'function') exported = moduleFn() || {};
    const def = exported && exported.default;
    if (def && typeof def.fetch === 'function') entry = def;
    if (exported && typeof exported.handler === 'function') handler = exported.handler;
    else if (typeof def === 'function') handler = def;
    else if (!exported && typeof g.handler === 'function') handler = g.handler;
    return (entry ? 'fetch' : '') + ',' + (handler ? 'handler' : '');
  }

  function record(res) {
    if (!(res instanceof Response)) throw new TypeError('fetch handler must return a Response, got ' + inspect(res, 1, new Set()));
    const meta = JSON.stringify({ status: res.status, statusText: res.statusText, headers: res.headers._pairs() });
    const src = res._source();
    // The common case in one string, one crossing into Go: the meta JSON
    // (which never holds a raw newline), then a newline and the text body.
    if (src == null) return meta;
    if (typeof src === 'string') return meta + '\n' + src;
    if (src instanceof ReadableStream) return readAll(src).then((b) => ({ meta, body: toShared(b) }));
    return { meta, body: toShared(src) };
  }

  async function serve(meta, body) {
    if (!entry) throw new TypeError('the deployment does not export default { fetch }');
    const m = JSON.parse(meta);
    const init = { method: m.method, headers: m.headers };
    if (body) init.body = new Uint8Array(body).slice();
    const req = new Request(m.url, init);
    const waits = [];
    const ctx = {
      waitUntil(p) { waits.push(Promise.resolve(p).catch(reportError)); },
      passThroughOnException() {},
    };
    const res = await entry.fetch(req, env, ctx);
    const out = await record(res);
    if (waits.length) await Promise.all(waits);
    return out;
  }

  async function invoke(input) {
    if (!handler) throw new TypeError('the script does not define handler(data)');
    const out = await handler(JSON.parse(input), env);
    const s = JSON.stringify(out);
    return s === undefined ? 'null' : s;
  }

  async function dispatch(name, input) {
    let fn = null, self = null;
    const def = exported && exported.default;
    if (exported && name !== 'default' && typeof exported[name] === 'function') fn = exported[name];
    else if (def && typeof def === 'object' && typeof def[name] === 'function') { fn = def[name]; self = def; }
    if (!fn) throw new TypeError(`the server entry exports no function ${name}: export function ${name}(event, env, ctx), or a ${name} method of its default export`);
    const waits = [];
    const ctx = { waitUntil(p) { waits.push(Promise.resolve(p).catch(reportError)); } };
    const out = await fn.call(self, JSON.parse(input), env, ctx);
    if (waits.length) await Promise.all(waits);
    const s = JSON.stringify(out);
    return s === undefined ? 'null' : s;
  }

  function reset() {
    timers.clear();
    fetches.clear();
  }

  return {
    bind, serve, invoke, dispatch, runTimers, fetchDone, reset,
    alloc: (n) => new SAB(n),
  };
})
