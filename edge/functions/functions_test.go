package functions_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/functions"
	"github.com/pierhq/pier/edge/isolate"
)

// server runs the API on 127.0.0.1 until the test ends.
func server(t *testing.T, tweak func(*functions.Config)) (*functions.API, string) {
	t.Helper()
	cfg := functions.DefaultConfig()
	cfg.Runtime.Timeout = 1500 * time.Millisecond
	cfg.Runtime.HeapMB = 32
	cfg.DeployTimeout = 500 * time.Millisecond
	if tweak != nil {
		tweak(&cfg)
	}
	api := functions.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Run(ctx) }()
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return api, srv.URL
}

type reply struct {
	status int
	body   string
}

func call(t *testing.T, method, url, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{res.StatusCode, strings.TrimSpace(string(b))}
}

// deploy deploys code and returns its id.
func deploy(t *testing.T, base, code string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"code": code})
	start := time.Now()
	r := call(t, "POST", base+"/deploy", string(body), "Content-Type", "application/json")
	var v struct{ ID string }
	if r.status != 200 || json.Unmarshal([]byte(r.body), &v) != nil || v.ID == "" {
		t.Fatalf("deploy = %d %s", r.status, r.body)
	}
	t.Logf("deployed %s, ready in %v", v.ID, time.Since(start))
	return v.ID
}

// TestHandlers: the handler patterns of the seed, sync and async, as a
// classic script or a module, with JSON in and out.
func TestHandlers(t *testing.T) {
	_, base := server(t, nil)
	tests := []struct {
		name, code, input, want string
	}{
		{"sync", `function handler(data) { return { sum: data.a + data.b } }`, `{"a":2,"b":3}`, `{"sum":5}`},
		{"async with a timer", `async function handler(data) {
			await new Promise(r => setTimeout(r, 5)); return data.map(x => x * 2) }`, `[1,2,3]`, `[2,4,6]`},
		{"module export", `export function handler(d) { return "hi " + d.name }`, `{"name":"ada"}`, `"hi ada"`},
		{"module default", `export default async (d) => ({ got: d })`, ``, `{"got":null}`},
		{"undefined is null", `function handler() {}`, `{}`, `null`},
		{"web apis", `function handler() { return [typeof fetch, typeof URL, typeof crypto.randomUUID(), new TextEncoder().encode("é").length] }`, ``, `["function","function","string",2]`},
		{"no ambient authority", `function handler() { return [typeof require, typeof process, typeof Deno, typeof Bun] }`, ``, `["undefined","undefined","undefined","undefined"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := deploy(t, base, tt.code)
			r := call(t, "POST", base+"/invoke/"+id, tt.input, "Content-Type", "application/json")
			if r.status != 200 || r.body != tt.want {
				t.Fatalf("invoke = %d %s, want 200 %s", r.status, r.body, tt.want)
			}
		})
	}
}

// TestRawCodeBody: /deploy also takes the code itself as the body.
func TestRawCodeBody(t *testing.T) {
	_, base := server(t, nil)
	r := call(t, "POST", base+"/deploy", `function handler(d) { return d * 7 }`, "Content-Type", "text/javascript")
	var v struct{ ID string }
	if r.status != 200 || json.Unmarshal([]byte(r.body), &v) != nil {
		t.Fatalf("deploy = %d %s", r.status, r.body)
	}
	if r := call(t, "POST", base+"/invoke/"+v.ID, `6`); r.body != "42" {
		t.Fatalf("invoke = %d %s", r.status, r.body)
	}
}

// TestErrors: every failure is {"error": "…"} with a fitting status, and
// the function keeps working after a timeout or a memory bomb.
func TestErrors(t *testing.T) {
	api, base := server(t, nil)
	id := deploy(t, base, `function handler(d) {
		if (d === "loop") for (;;) {}
		if (d === "bomb") { const a = []; for (;;) a.push(new Array(1e6).fill(1.5)) }
		if (d === "throw") throw new TypeError("bad input")
		if (d === "reject") return Promise.reject(new Error("async bad"))
		if (d === "never") return new Promise(() => {})
		return "alive"
	}`)
	noHandler := deploy(t, base, `const x = 1`)

	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"timeout", "POST", "/invoke/" + id, `"loop"`, 504, `{"error":"Execution timeout (1.5s)"}`},
		{"alive after timeout", "POST", "/invoke/" + id, `"ok"`, 200, `"alive"`},
		{"memory bomb", "POST", "/invoke/" + id, `"bomb"`, 500, `{"error":"Memory limit exceeded"}`},
		{"alive after bomb", "POST", "/invoke/" + id, `"ok"`, 200, `"alive"`},
		{"throw", "POST", "/invoke/" + id, `"throw"`, 500, `{"error":"TypeError: bad input"}`},
		{"reject", "POST", "/invoke/" + id, `"reject"`, 500, `{"error":"Error: async bad"}`},
		{"never settles", "POST", "/invoke/" + id, `"never"`, 500, ""},
		{"bad json", "POST", "/invoke/" + id, `{nope`, 400, `{"error":"Body must be JSON"}`},
		{"unknown id", "POST", "/invoke/nope", `1`, 404, `{"error":"Function not found"}`},
		{"no handler", "POST", "/invoke/" + noHandler, `1`, 400, `{"error":"The code does not define handler(data)"}`},
		{"syntax error", "POST", "/deploy", `{"code":"function handler( {"}`, 400, ""},
		{"top-level throw", "POST", "/deploy", `{"code":"throw new Error('at load')"}`, 400, `{"error":"Error: at load"}`},
		{"top-level loop", "POST", "/deploy", `{"code":"for (;;) {}"}`, 504, ""},
		{"empty code", "POST", "/deploy", `{"code":" "}`, 400, `{"error":"No code given"}`},
		{"not the deploy shape", "POST", "/deploy", `{"code":`, 400, `{"error":"Body must be {\"code\": \"...\"}"}`},
		{"wrong method", "GET", "/invoke/" + id, ``, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, tt.method, base+tt.path, tt.body, "Content-Type", "application/json")
			if r.status != tt.status || (tt.want != "" && r.body != tt.want) {
				t.Fatalf("%s %s = %d %s, want %d %s", tt.method, tt.path, r.status, r.body, tt.status, tt.want)
			}
		})
	}
	// One isolate for id (started by /deploy) lived through the timeout
	// (the bomb replaced its V8 isolate inside the same Runtime).
	if st := api.Stats(); st.ColdStarts != 2 || st.Live != 2 {
		t.Errorf("stats %+v: want 2 cold starts (the two deploys) and 2 live isolates", st)
	}
}

func TestDefaultTimeoutText(t *testing.T) {
	err := &isolate.TimeoutError{Limit: functions.DefaultConfig().Runtime.Timeout}
	if got := err.Error(); got != "Execution timeout (30s)" {
		t.Fatalf("got %q", got)
	}
}

// TestDeleteAndList: DELETE frees the function's isolates; the list shows
// what is deployed and how often it ran.
func TestDeleteAndList(t *testing.T) {
	api, base := server(t, nil)
	a := deploy(t, base, `function handler() { return 1 }`)
	b := deploy(t, base, `function handler() { return 2 }`)
	call(t, "POST", base+"/invoke/"+a, ``)
	call(t, "POST", base+"/invoke/"+a, ``)

	r := call(t, "GET", base+"/functions", ``)
	var list struct {
		Functions []struct {
			ID          string
			Invocations int
		}
	}
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list.Functions) != 2 ||
		list.Functions[0].ID != a || list.Functions[0].Invocations != 2 || list.Functions[1].ID != b {
		t.Fatalf("list = %s (%v)", r.body, err)
	}

	if r := call(t, "DELETE", base+"/delete/"+a, ``); r.status != 200 || r.body != `{"id":"`+a+`","success":true}` {
		t.Fatalf("delete = %d %s", r.status, r.body)
	}
	if st := api.Stats(); st.Live != 1 || st.Discards != 1 {
		t.Fatalf("after delete: %+v, want 1 live isolate and 1 discarded", st)
	}
	for _, tt := range []struct{ method, path string }{{"POST", "/invoke/" + a}, {"DELETE", "/delete/" + a}} {
		if r := call(t, tt.method, base+tt.path, ``); r.status != 404 {
			t.Errorf("%s %s after delete = %d %s", tt.method, tt.path, r.status, r.body)
		}
	}
	if r := call(t, "POST", base+"/invoke/"+b, ``); r.body != "2" {
		t.Fatalf("the other function: %d %s", r.status, r.body)
	}
}

// TestConcurrentInvokes: calls to one function run in parallel isolates.
func TestConcurrentInvokes(t *testing.T) {
	api, base := server(t, nil)
	id := deploy(t, base, `async function handler(d) { await new Promise(r => setTimeout(r, 50)); return d }`)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for i := range 8 {
		wg.Go(func() {
			in := strings.Repeat("7", i+1)
			if r := call(t, "POST", base+"/invoke/"+id, in); r.status != 200 || r.body != in {
				errs <- r.body
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if st := api.Stats(); st.Live < 2 {
		t.Errorf("stats %+v: concurrent calls shared one isolate", st)
	}
}

func TestLimits(t *testing.T) {
	_, base := server(t, func(c *functions.Config) {
		c.MaxFunctions = 1
		c.MaxCodeBytes = 64
		c.Token = "s3cret"
	})
	auth := []string{"Authorization", "Bearer s3cret", "Content-Type", "application/json"}
	tests := []struct {
		name, body string
		hdr        []string
		status     int
	}{
		{"no token", `{"code":"function handler(){}"}`, nil, 401},
		{"wrong token", `{"code":"function handler(){}"}`, []string{"Authorization", "Bearer nope"}, 401},
		{"deploy", `{"code":"function handler(){}"}`, auth, 200},
		{"too many", `{"code":"function handler(){}"}`, auth, 429},
		{"too large", `{"code":"` + strings.Repeat("x", 100) + `"}`, auth, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := call(t, "POST", base+"/deploy", tt.body, tt.hdr...); r.status != tt.status {
				t.Fatalf("= %d %s, want %d", r.status, r.body, tt.status)
			}
		})
	}
}

// TestSharedGate: the functions API runs under the CPU gate it is given
// (the edge's, in one process): with one slot held by a runaway function,
// another function's call queues and is answered once the runaway times
// out; more concurrent calls than slots and than the pool's capacity, over
// several functions that wait on timers, are all answered (no deadlock
// between gate and pool waits), and every slot comes back.
func TestSharedGate(t *testing.T) {
	gate := isolate.NewGate(1)
	api, base := server(t, func(c *functions.Config) {
		c.Runtime.Gate = gate
		c.Pool.MaxTotal = 2
	})
	loop := deploy(t, base, `function handler() { for (;;) {} }`)
	quick := deploy(t, base, `function handler(d) { return d }`)
	if st := gate.Stats(); st.Running != 0 {
		t.Fatalf("gate %+v after deploys: a slot is still held", st)
	}

	runaway := make(chan reply, 1)
	go func() { runaway <- call(t, "POST", base+"/invoke/"+loop, "") }()
	eventually(t, "the runaway holds the slot", func() bool { return gate.Stats().Running == 1 })
	// A call's wait at the gate counts against its own time limit, so the
	// second call is sent half a limit later: when the runaway is stopped
	// it still has half its time left, however slow the machine is to
	// terminate the runaway (sent at once, it raced that termination).
	time.Sleep(750 * time.Millisecond)
	waits := gate.Stats().Waits
	queued := make(chan reply, 1)
	go func() { queued <- call(t, "POST", base+"/invoke/"+quick, `"queued"`) }()
	eventually(t, "the second call queues at the gate", func() bool { return gate.Stats().Waits > waits })
	if r := <-runaway; r.status != http.StatusGatewayTimeout {
		t.Errorf("runaway = %d %s, want 504", r.status, r.body)
	}
	if r := <-queued; r.status != 200 || r.body != `"queued"` {
		t.Errorf("queued call = %d %s", r.status, r.body)
	}

	ids := []string{quick,
		deploy(t, base, `async function handler(d) { await new Promise(r => setTimeout(r, 3)); await new Promise(r => setTimeout(r, 3)); return d }`),
		deploy(t, base, `function handler(d) { let x = 0; for (let i = 0; i < 1e5; i++) x += i; return d }`),
	}
	var wg sync.WaitGroup
	errs := make(chan string, 48)
	for c := range 12 {
		wg.Go(func() {
			for i := range 4 {
				id := ids[(c+i)%len(ids)]
				if r := call(t, "POST", base+"/invoke/"+id, "7"); r.status != 200 || r.body != "7" {
					errs <- id + ": " + r.body
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute): // a hang, not a timing assertion
		t.Fatal("calls still unanswered after 2 minutes: gate and pool waits deadlocked")
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if st := gate.Stats(); st.Running != 0 {
		t.Errorf("gate %+v: a slot is still held", st)
	}
	if st := api.Stats(); st.Live > 2 {
		t.Errorf("pool %+v: over its capacity", st)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
