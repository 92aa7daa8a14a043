// Package isolate runs deployment code in V8 isolates. It owns the Web
// runtime every deployment sees (Request, Response, Headers, URL, fetch,
// TextEncoder, crypto, timers, console), the per-request limits (a wall-clock
// timeout enforced with TerminateExecution, after which the isolate stays
// usable; a heap limit that turns a memory bomb into an error for that
// request) and the outbound fetch policy (public addresses only).
//
// It is the only package that imports v8go (github.com/tommie/v8go; see
// docs/runtime.md for the measurements behind that choice). Importers:
// edge/edged (which adapts it and edge/warmpool into the router's SSR port)
// and control/cmd/pier.
//
// The contract for deployment code:
//
//   - Server entry: an ES module bundle whose default export has a fetch
//     method, `export default { fetch(request, env, ctx) }`, returning a
//     Response (or a promise of one). The bundle must be self-contained
//     (esbuild --bundle --format=esm); it may not import anything at run time
//     and may not use top-level await. Compile rewrites the module into a
//     function (esbuild's Go API) that returns its exports, so V8 can run it as a
//     script and cache its code.
//   - Function entry (the functions API): a classic script defining a global
//     `handler(data, env)`, or a module exporting `handler` (or a default
//     function). It receives the JSON input and returns (or resolves to) a
//     JSON-serialisable value.
//
// Each Runtime is one isolate and one context: deployments never share
// globals. env holds only the deployment's runtime-scoped variables and is
// passed to the entry, never set as a global; there is no require, process,
// filesystem or subprocess.
//
// A Runtime admits one goroutine at a time; edge/warmpool hands each one to a
// single request.
package isolate
