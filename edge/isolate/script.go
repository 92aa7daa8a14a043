package isolate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/evanw/esbuild/pkg/api"
	v8 "github.com/tommie/v8go"
)

// Script is compiled deployment code: the source V8 runs and its code
// caches. It is immutable once Compile returns and may be shared by any
// number of Runtimes, on any goroutines.
type Script struct {
	name         string
	source       string // a classic script, or "(function () { ...; return exports })" for a module
	module       bool
	cache        []byte // V8 code cache of source, made after the top level ran
	preludeCache []byte // V8 code cache of the prelude
	compileTime  time.Duration
}

// Name returns the name the script was compiled with (its origin in stack traces).
func (s *Script) Name() string { return s.name }

// Module reports whether the source was an ES module.
func (s *Script) Module() bool { return s.module }

// CodeCacheBytes returns the size of the script's V8 code cache.
func (s *Script) CodeCacheBytes() int { return len(s.cache) }

// CompileTime returns how long Compile took.
func (s *Script) CompileTime() time.Duration { return s.compileTime }

// Compile prepares source for New: an ES module (export default { fetch },
// or export function handler) is rewritten into a function V8 can run as a
// script; a classic script (a global handler function) is kept as it is.
// Compile then loads it once in a scratch isolate with empty env, which
// reports syntax and top-level errors now rather than on the first request,
// and records V8 code caches so that each New skips parsing and compiling.
// Errors are *ScriptError (the message names the line) or ctx's error.
//
// Compile is CompileWith(ctx, DefaultConfig(), name, source).
func Compile(ctx context.Context, name string, source []byte) (*Script, error) {
	cfg := DefaultConfig()
	if dl, ok := ctx.Deadline(); ok {
		cfg.Timeout = max(time.Until(dl), time.Millisecond)
	}
	return CompileWith(ctx, cfg, name, source)
}

// CompileWith is Compile under cfg's limits: its HeapMB, Timeout (or ctx's
// deadline when that is sooner), Gate and Logger apply to the scratch
// isolate. Its env is always empty and console output goes to cfg.Logger at
// debug level.
func CompileWith(ctx context.Context, cfg Config, name string, source []byte) (*Script, error) {
	t0 := time.Now()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if name == "" {
		name = "script.js"
	}
	s := &Script{name: name, source: string(source)}
	classicErr, err := checkClassic(ctx, cfg.Gate, s.source, name)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", name, err)
	}
	if classicErr != nil {
		src, err := moduleToFunction(s.source, name)
		if err != nil {
			return nil, err
		}
		s.source, s.module = src, true
	}
	cfg = cfg.withDefaults()
	cfg.OnLog = nil
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < cfg.Timeout {
		cfg.Timeout = max(time.Until(dl), time.Millisecond)
	}
	r := &Runtime{cfg: cfg, script: s, envJS: "{}", fetch: newFetcher(cfg.Fetch)}
	r.log = r.cfg.Logger
	defer r.fetch.close()
	if err := r.start(ctx, true); err != nil {
		return nil, fmt.Errorf("compile %s: %w", name, hint(err))
	}
	r.dispose()
	s.compileTime = time.Since(t0)
	return s, nil
}

// checkClassic compiles source as a classic script in a scratch isolate,
// holding a slot of gate (if any) meanwhile. err is ctx's error if it ends
// while the gate is full.
func checkClassic(ctx context.Context, gate *Gate, source, name string) (classicErr, err error) {
	if gate != nil {
		if !gate.enter(ctx.Done()) {
			return nil, ctx.Err()
		}
		defer gate.leave()
	}
	iso := v8.NewIsolate()
	defer iso.Dispose()
	_, classicErr = iso.CompileUnboundScript(source, name, v8.CompileOptions{})
	return classicErr, nil
}

// moduleToFunction rewrites an ES module into a function expression that
// runs the module body and returns its exports object, with esbuild.
func moduleToFunction(source, name string) (string, error) {
	res := api.Transform(source, api.TransformOptions{
		Loader:     api.LoaderJS,
		Format:     api.FormatIIFE,
		GlobalName: "__pier_exports",
		Target:     api.ESNext,
		Sourcefile: name,
		Charset:    api.CharsetUTF8,
	})
	if len(res.Errors) > 0 {
		e := res.Errors[0]
		msg := e.Text
		if e.Location != nil {
			msg = fmt.Sprintf("%s:%d:%d: %s", e.Location.File, e.Location.Line, e.Location.Column+1, e.Text)
		}
		return "", fmt.Errorf("compile %s: %w", name, &ScriptError{Message: "SyntaxError: " + msg})
	}
	// The IIFE's var is local to the wrapper: nothing lands on globalThis, and
	// the module body keeps ES module semantics (strict, own scope).
	return "(function () {\n\"use strict\";\n" + string(res.Code) + "\nreturn __pier_exports;\n})", nil
}

// hint adds the bundling contract to the errors a non-bundled module gives.
func hint(err error) error {
	var se *ScriptError
	if errors.As(err, &se) && (strings.Contains(se.Message, "require is not defined") || strings.Contains(se.Message, "process is not defined")) {
		return fmt.Errorf("%w (bundle the code into one self-contained file, e.g. esbuild --bundle --format=esm --define:process.env.NODE_ENV='\"production\"')", err)
	}
	return err
}
