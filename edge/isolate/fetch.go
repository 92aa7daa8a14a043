package isolate

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// blocked are the ranges fetch refuses on top of what netip classifies as
// loopback, private, link-local, multicast or unspecified.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT (also Alibaba's metadata 100.100.100.200)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: would reach any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds an IPv4 address
	netip.MustParsePrefix("2001::/32"),       // Teredo: embeds an IPv4 address
}

// errAddrNotAllowed is the dial error for a refused destination.
var errAddrNotAllowed = errors.New("destination address not allowed")

// addrAllowed reports whether fetch may connect to a.
func addrAllowed(a netip.Addr, allow []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range allow {
		if p.Contains(a) {
			return true
		}
	}
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range blocked {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// fetcher performs the Go half of fetch for one Runtime.
type fetcher struct {
	policy FetchPolicy
	tr     *http.Transport
	client *http.Client
}

func newFetcher(p FetchPolicy) *fetcher {
	allow := p.Allow
	d := &net.Dialer{
		Timeout:  p.Timeout,
		Resolver: p.Resolver,
		// Control runs for every address the dialer tries, after resolution:
		// this is the check that DNS tricks cannot bypass.
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !addrAllowed(ap.Addr(), allow) {
				return errAddrNotAllowed
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   p.Timeout,
		ResponseHeaderTimeout: p.Timeout,
	}
	f := &fetcher{policy: p, tr: tr}
	f.client = &http.Client{Transport: tr}
	return f
}

func (f *fetcher) close() { f.tr.CloseIdleConnections() }

// fetchRequest is what JS sends: fetch's Request, flattened.
type fetchRequest struct {
	Method   string      `json:"method"`
	URL      string      `json:"url"`
	Headers  [][2]string `json:"headers"`
	Redirect string      `json:"redirect"`
}

// fetchResult is what goes back to JS (meta as JSON, body as bytes) or a
// user-safe error message.
type fetchResult struct {
	id   int
	meta []byte
	body []byte
	err  string
}

type fetchMeta struct {
	Status     int         `json:"status"`
	StatusText string      `json:"statusText"`
	Headers    [][2]string `json:"headers"`
	URL        string      `json:"url"`
	Redirected bool        `json:"redirected"`
}

// check validates a request before any I/O; its error text is shown to the
// script as a TypeError.
func (f *fetcher) check(r *fetchRequest) error {
	u, err := url.Parse(r.URL)
	if err != nil {
		return fmt.Errorf("fetch failed: invalid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("fetch failed: only http and https URLs can be fetched, not %s", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("fetch failed: invalid URL")
	}
	if r.Redirect != "" && r.Redirect != "follow" && r.Redirect != "manual" && r.Redirect != "error" {
		return fmt.Errorf("fetch failed: invalid redirect mode %q", r.Redirect)
	}
	return nil
}

// do performs one fetch; it never returns internal error text to the script.
func (f *fetcher) do(ctx context.Context, id int, r *fetchRequest, body []byte) fetchResult {
	ctx, cancel := context.WithTimeout(ctx, f.policy.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, rd)
	if err != nil {
		return fetchResult{id: id, err: "fetch failed: invalid request"}
	}
	for _, h := range r.Headers {
		if strings.EqualFold(h[0], "host") || strings.EqualFold(h[0], "content-length") {
			continue
		}
		req.Header.Add(h[0], h[1])
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "Pier-Fetch/1")
	}
	redirected := false
	client := *f.client
	client.CheckRedirect = func(next *http.Request, via []*http.Request) error {
		switch {
		case r.Redirect == "manual":
			return http.ErrUseLastResponse
		case r.Redirect == "error":
			return errors.New("redirect refused")
		case len(via) >= 10:
			return errors.New("too many redirects")
		case next.URL.Scheme != "http" && next.URL.Scheme != "https":
			return errors.New("redirect to a non-http URL")
		}
		redirected = true
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		return fetchResult{id: id, err: fetchErrorText(ctx, err)}
	}
	defer resp.Body.Close()
	max := f.policy.MaxResponseBytes
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return fetchResult{id: id, err: fetchErrorText(ctx, err)}
	}
	if int64(len(data)) > max {
		return fetchResult{id: id, err: fmt.Sprintf("fetch failed: response body larger than %d bytes", max)}
	}
	m := fetchMeta{
		Status:     resp.StatusCode,
		StatusText: strings.TrimSpace(strings.TrimPrefix(resp.Status, fmt.Sprint(resp.StatusCode))),
		URL:        resp.Request.URL.String(),
		Redirected: redirected,
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			m.Headers = append(m.Headers, [2]string{k, v})
		}
	}
	meta, _ := json.Marshal(m)
	return fetchResult{id: id, meta: meta, body: data}
}

// fetchErrorText maps a client error to user-safe text.
func fetchErrorText(ctx context.Context, err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, errAddrNotAllowed):
		return "fetch failed: destination address not allowed (private, loopback, link-local or reserved)"
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return "fetch failed: timed out"
	case errors.As(err, &dnsErr):
		return "fetch failed: could not resolve host"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "fetch failed: connection refused"
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		switch ue.Err.Error() {
		case "redirect refused", "too many redirects", "redirect to a non-http URL":
			return "fetch failed: " + ue.Err.Error()
		}
	}
	return "fetch failed: network error"
}
