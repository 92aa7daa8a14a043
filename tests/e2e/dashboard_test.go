package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pierhq/pier/tests/testenv"
)

// artifactsDir is where UI tests write screenshots: $PIER_ARTIFACTS/<test>
// when set (CI keeps it), else a temporary directory.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if base := os.Getenv("PIER_ARTIFACTS"); base != "" {
		dir = filepath.Join(base, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// browser starts headless Chromium (Debian's chromium package) for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if path, err = exec.LookPath("chromium-browser"); err != nil {
			if os.Getenv("PIER_REQUIRE_SERVERS") == "1" {
				t.Fatal("chromium is not installed (tests/setup.sh installs it)")
			}
			t.Skip("chromium is not installed (apt-get install chromium)")
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 1000), chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// TestDashboard drives the dashboard of a real `pier dev` in headless
// Chromium: sign in with the token, open the project, deploy from git and
// watch the build log stream in (server-sent events), deploy a second
// commit, set a variable (its value never comes back), add a custom domain
// (pending, its TXT record shown; verification fails with the reason, then
// passes once the DNS holds the records), follow the runtime logs live
// while traffic comes in, see the traffic charts count it, roll back, and
// check what the page and the edge show. Screenshots of every step are
// kept.
func TestDashboard(t *testing.T) {
	git := testenv.GitServer(t, gitToken)
	repo, _ := git.CreateRepo(t, "shop", map[string]string{"index.html": "<!doctype html><h1>shop one</h1>"})
	dns := testenv.DNS(t)
	dev := testenv.StartDev(t, t.TempDir(), "--dns-resolver", dns.Addr)
	if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": "shop", "repo_url": repo, "git_token": gitToken}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	host := "shop." + dev.BaseDomain
	shots := artifactsDir(t)
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	n := 0
	start := time.Now()
	shot := func(name string) {
		t.Helper()
		t.Logf("%6.2fs %s", time.Since(start).Seconds(), name)
		n++
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, filepathName(n, name)), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			shot("failed-" + what)
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
			t.Fatalf("%s: %v\npage:\n%s", what, err, html)
		}
	}
	// waitJS waits until a predicate holds on the page, across the
	// navigation a form POST makes.
	waitJS := func(expr string) {
		t.Helper()
		for {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
			if err == nil && ok {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("waiting for %s: %v", expr, ctx.Err())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	attr := func(sel, name string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
		if err != nil {
			t.Fatalf("%s[%s]: %v", sel, name, err)
		}
		return v.Value
	}

	// Signed out: / leads to the sign-in page.
	do("open", chromedp.Navigate(dev.APIURL+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	shot("sign-in")
	do("wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "pier_wrong"), chromedp.Click(chromedp.CSS("#sign-in")),
		chromedp.WaitVisible(chromedp.CSS("#flash-error")))
	do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), dev.Token), chromedp.Click(chromedp.CSS("#sign-in")),
		chromedp.WaitVisible(chromedp.CSS("#projects")))
	if s := text("#projects"); !strings.Contains(s, "shop") || !strings.Contains(s, "http://shop.") {
		t.Errorf("projects table: %q", s)
	}
	shot("projects")

	// The project page: domains, traffic and runtime logs, all empty yet.
	do("project", chromedp.Click(chromedp.CSS("a.project-link")), chromedp.WaitVisible(chromedp.CSS("#deploy-form")),
		chromedp.WaitVisible(chromedp.CSS(`#domains[data-state="loaded"] #no-domains`)),
		chromedp.WaitVisible(chromedp.CSS(`#metrics[data-state="loaded"] .chart[data-series="requests"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#runtime-logs[data-state="loaded"] #rt-lines`)))
	if s := text(`#metrics .chart[data-series="requests"] .figure`); s != "0" {
		t.Errorf("requests before any traffic: %q", s)
	}
	shot("project-empty")

	// Deploy from git and watch the build log fill in.
	deployAndWatch := func(label string) string {
		t.Helper()
		do("deploy "+label, chromedp.Click(chromedp.CSS("#deploy")), chromedp.WaitVisible(chromedp.CSS("#log")),
			chromedp.WaitVisible(chromedp.CSS("#flash")))
		id := attr("#deployment", "data-id")
		do("build log "+label, chromedp.WaitVisible(chromedp.CSS(`#deployment[data-state="ready"]`)),
			chromedp.Poll[chromedp.Void](`document.getElementById("log").textContent.includes("==> pier: live at")`),
			chromedp.WaitVisible(chromedp.CSS("#live-badge")))
		if tr := attr("#deployment", "data-transport"); tr != "sse" {
			t.Errorf("build log of %s followed by %q, want the event stream", id, tr)
		}
		log := text("#log")
		if !strings.Contains(log, "build ready") || !strings.Contains(log, "live at http://shop.") {
			t.Errorf("build log of %s on the page:\n%s", id, log)
		}
		if s := text("#state"); s != "ready" {
			t.Errorf("state badge: %q", s)
		}
		shot("deployment-" + label)
		return id
	}
	d1 := deployAndWatch("one")
	testenv.WaitFor(t, 10*time.Second, "shop one live", func() bool { return strings.Contains(readBody(t, dev.Get(t, 0, host, "/")), "shop one") })

	git.Commit(t, "shop", map[string]string{"index.html": "<!doctype html><h1>shop two</h1>"})
	do("back to the project", chromedp.Click(chromedp.CSS(".crumbs a")), chromedp.WaitVisible(chromedp.CSS("#deploy-form")))
	d2 := deployAndWatch("two")
	testenv.WaitFor(t, 10*time.Second, "shop two live", func() bool { return strings.Contains(readBody(t, dev.Get(t, 0, host, "/")), "shop two") })

	// A variable: set through the form, listed without its value.
	const secret = "dashboard-secret-42"
	do("env", chromedp.Click(chromedp.CSS(".crumbs a")), chromedp.WaitVisible(chromedp.CSS("#env-form")),
		chromedp.SendKeys(chromedp.CSS("#env-name"), "STRIPE_KEY"), chromedp.SendKeys(chromedp.CSS("#env-value"), secret),
		chromedp.Click(chromedp.CSS("#env-set")), chromedp.WaitVisible(chromedp.CSS("#env-vars")))
	if s := text("#flash"); !strings.Contains(s, "STRIPE_KEY set") {
		t.Errorf("flash after env set: %q", s)
	}
	html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if strings.Contains(html, secret) || !strings.Contains(text("#env-vars"), "STRIPE_KEY") {
		t.Errorf("env section: value shown or variable missing:\n%s", text("#env-vars"))
	}
	if !strings.Contains(attr(`#deployments tr.live`, "data-id"), d2) {
		t.Errorf("live row is not %s", d2)
	}
	shot("project-two-deployments")

	// A custom domain: pending, with the TXT record to set.
	const domain = "www.shop-example.test"
	do("add domain", chromedp.SendKeys(chromedp.CSS("#domain-name"), domain), chromedp.Click(chromedp.CSS("#domain-add")),
		chromedp.WaitVisible(chromedp.CSS(`#domain-list tr[data-domain="`+domain+`"]`)))
	row := `#domain-list tr[data-domain="` + domain + `"]`
	txtName, txtValue := text(row+" .rec-name"), text(row+" .rec-value")
	if attr(row, "data-state") != "pending" || txtName != "_pier-challenge."+domain || !strings.HasPrefix(txtValue, "pier-verify=") {
		t.Errorf("new domain row: state %q, TXT %q = %q", attr(row, "data-state"), txtName, txtValue)
	}
	if s := text("#flash"); !strings.Contains(s, "added (pending)") || !strings.Contains(s, txtValue) {
		t.Errorf("flash after adding a domain: %q", s)
	}
	shot("domain-pending")
	// Verify before the DNS has the records: refused, with the reason.
	do("verify too early", chromedp.Click(chromedp.CSS(row+" button.verify")))
	waitJS(`(document.getElementById("flash-error")?.textContent || "").includes("failed")`)
	if s := text("#flash-error"); !strings.Contains(s, "verification of "+domain+" failed: no TXT record at _pier-challenge."+domain) {
		t.Errorf("flash after a failed verification: %q", s)
	}
	if attr(row, "data-state") != "pending" {
		t.Errorf("a failed verification changed the state to %q", attr(row, "data-state"))
	}
	shot("domain-verify-failed")
	// With the TXT record and an A record to the edge: verified.
	dns.SetTXT("_pier-challenge."+domain, txtValue)
	dns.SetA(domain, "127.0.0.1")
	do("verify", chromedp.Click(chromedp.CSS(row+" button.verify")))
	waitJS(`(document.getElementById("flash")?.textContent || "").includes("verified")`)
	if attr(row, "data-state") != "verified" {
		t.Errorf("domain state after verification: %q", attr(row, "data-state"))
	}
	testenv.WaitFor(t, 10*time.Second, "the edge serves the domain", func() bool {
		return strings.Contains(readBody(t, dev.Get(t, 0, domain, "/")), "shop two")
	})
	shot("domain-verified")

	// Runtime logs follow live: requests made after the page loaded show up
	// without a reload (edges ship every 2 s).
	for range 3 {
		dev.Get(t, 0, host, "/missing.css").Body.Close()
	}
	waitJS(`document.querySelectorAll("#rt-lines .rt-line").length > 0 &&
		[...document.querySelectorAll("#rt-lines .rt-line")].filter((l) => l.textContent.includes("/missing.css 404")).length === 3`)
	if tr := attr("#runtime-logs", "data-transport"); tr != "sse" {
		t.Errorf("runtime logs followed by %q, want the event stream", tr)
	}
	// The text filter: only the matching lines.
	do("filter logs", chromedp.SendKeys(chromedp.CSS("#rt-q"), "missing"), chromedp.Click(chromedp.CSS("#rt-apply")))
	waitJS(`(() => { const ls = [...document.querySelectorAll("#rt-lines .rt-line")];
		return ls.length === 3 && ls.every((l) => l.textContent.includes("/missing.css")); })()`)
	shot("runtime-logs")

	// The charts count the traffic: the page shows what the API answers
	// once the buckets are shipped (within about 12 s), the 404s among it.
	var total struct {
		Total struct {
			Requests int64            `json:"requests"`
			Status   map[string]int64 `json:"status"`
		} `json:"total"`
	}
	project := struct{ ID string }{}
	dev.API(t, "GET", "/v1/projects/shop", nil, &project)
	testenv.WaitFor(t, 30*time.Second, "the charts count the requests", func() bool {
		dev.API(t, "GET", "/v1/projects/"+project.ID+"/metrics?since=1h", nil, &total)
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#metrics .chart[data-series="requests"] .figure')?.textContent || ""`))
		return total.Total.Status["404"] == 3 && shown == fmt.Sprint(total.Total.Requests)
	})
	if s := text(`#metrics li[data-code="404"]`); s != "404: 3" {
		t.Errorf("errors by status: %q, want 404: 3", s)
	}
	if s := text(`#metrics .chart[data-series="latency"] .figure`); !strings.Contains(s, "p99") || strings.Contains(s, "–") {
		t.Errorf("latency figure: %q", s)
	}
	if s := text(`#metrics .chart[data-series="cache"] .figure`); !strings.HasSuffix(s, "%") {
		t.Errorf("cache hit rate figure: %q", s)
	}
	t.Logf("charts: %d requests, status %v, latency %q, cache hit rate %q", total.Total.Requests, total.Total.Status,
		text(`#metrics .chart[data-series="latency"] .figure`), text(`#metrics .chart[data-series="cache"] .figure`))
	do("scroll to charts", chromedp.ScrollIntoView(chromedp.CSS("#metrics")))
	shot("charts")

	// Remove the domain.
	do("remove domain", chromedp.Click(chromedp.CSS(row+" button.remove")), chromedp.WaitVisible(chromedp.CSS("#no-domains")))

	// Roll back: the page says which deployment is live, and so does the edge.
	do("rollback", chromedp.Click(chromedp.CSS("#rollback")))
	waitJS(`(document.getElementById("flash")?.textContent || "").includes("Rolled back")`)
	if s := text("#flash"); !strings.Contains(s, "Rolled back: "+d1+" is live on 1 edge(s)") {
		t.Errorf("flash after rollback: %q", s)
	}
	if got := attr(`#deployments tr.live`, "data-id"); got != d1 {
		t.Errorf("live row after rollback: %q, want %s", got, d1)
	}
	testenv.WaitFor(t, 10*time.Second, "shop one back", func() bool { return strings.Contains(readBody(t, dev.Get(t, 0, host, "/")), "shop one") })
	shot("rolled-back")

	// Promote the second deployment again from its row.
	do("promote", chromedp.Click(chromedp.CSS(`#deployments tr[data-id="`+d2+`"] button.promote`)))
	waitJS(`(document.getElementById("flash")?.textContent || "").includes("Promoted")`)
	if got := attr(`#deployments tr.live`, "data-id"); got != d2 {
		t.Errorf("live row after promote: %q, want %s", got, d2)
	}
	shot("promoted")

	// Sign out: the pages are closed again.
	do("sign out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	req, _ := http.NewRequest("GET", dev.APIURL+"/ui/projects/shop", nil)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Errorf("signed-out project page: %v %v, want a redirect to sign in", resp.StatusCode, err)
	}
}

func filepathName(n int, name string) string {
	return strings.ReplaceAll(strings.ReplaceAll(
		string(rune('0'+n/10))+string(rune('0'+n%10))+"-"+name+".png", " ", "-"), "/", "-")
}
