package isolate

import (
	"crypto/rand"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	v8 "github.com/tommie/v8go"
)

//go:embed prelude.js
var preludeSource string

// nativeObject builds the object of Go callbacks the prelude captures. The
// callbacks never return or throw V8 values (v8go would keep such a value
// tracked until the isolate is disposed, and an exception made on the Go side
// belongs to another realm): results and errors go through a
// SharedArrayBuffer the caller passes in (see callNative in prelude.js).
func (r *Runtime) nativeObject(m *vm) (*v8.Object, error) {
	t := v8.NewObjectTemplate(m.iso)
	fns := map[string]v8.FunctionCallbackWithError{
		"log":    r.nativeLog,
		"random": r.nativeRandom,
		"fetch":  r.nativeFetch,
		"url":    r.nativeURL,
		"host":   r.nativeHost,
	}
	for name, fn := range fns {
		if err := t.Set(name, v8.NewFunctionTemplateWithError(m.iso, fn)); err != nil {
			return nil, err
		}
	}
	return t.NewInstance(m.ctx)
}

// nativeLog(level, message): console output.
func (r *Runtime) nativeLog(info *v8.FunctionCallbackInfo) (*v8.Value, error) {
	defer info.Release()
	args := info.Args()
	if len(args) < 2 {
		return nil, nil
	}
	level, msg := args[0].String(), args[1].String()
	if len(msg) > r.cfg.MaxLogBytes {
		cut := r.cfg.MaxLogBytes
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…(truncated)"
	}
	id := ""
	if r.cur != nil {
		id = r.cur.id
	}
	e := LogEntry{RequestID: id, Level: level, Message: msg, Time: time.Now()}
	if r.cfg.OnLog != nil {
		r.cfg.OnLog(e)
	} else {
		r.log.Debug("console", "request_id", id, "level", level, "msg", msg)
	}
	return nil, nil
}

// nativeRandom(sab) fills sab with cryptographically secure random bytes.
func (r *Runtime) nativeRandom(info *v8.FunctionCallbackInfo) (*v8.Value, error) {
	defer info.Release()
	args := info.Args()
	if len(args) < 1 || !args[0].IsSharedArrayBuffer() {
		return nil, nil
	}
	buf, release, err := args[0].SharedArrayBufferGetContents()
	if err != nil {
		return nil, nil
	}
	defer release()
	_, _ = rand.Read(buf)
	return nil, nil
}

// writeStart reports in scratch whether an asynchronous call (a fetch, a
// binding call) started: status 0, or 1 and err's text.
func writeStart(scratch *v8.Value, err error) {
	if err == nil {
		writeResult(scratch, 0, nil)
		return
	}
	writeResult(scratch, 1, []byte(err.Error()))
}

// nativeFetch(scratch, id, requestJSON, body) starts an outbound request;
// the result is delivered by the event loop through the prelude's fetchDone.
// A request refused before any I/O is reported through scratch.
func (r *Runtime) nativeFetch(info *v8.FunctionCallbackInfo) (*v8.Value, error) {
	defer info.Release()
	args := info.Args()
	if len(args) < 3 || !args[0].IsSharedArrayBuffer() {
		return nil, nil
	}
	reply := func(err error) (*v8.Value, error) { writeStart(args[0], err); return nil, nil }
	c := r.cur
	if c == nil {
		return reply(errors.New("fetch failed: no request in progress"))
	}
	if c.fetches >= r.cfg.Fetch.MaxRequests {
		return reply(fmt.Errorf("fetch failed: too many subrequests (limit %d)", r.cfg.Fetch.MaxRequests))
	}
	id := int(args[1].Integer())
	var fr fetchRequest
	if err := json.Unmarshal([]byte(args[2].String()), &fr); err != nil {
		return reply(errors.New("fetch failed: invalid request"))
	}
	if err := r.fetch.check(&fr); err != nil {
		return reply(err)
	}
	var body []byte
	if len(args) > 3 {
		switch b := args[3]; {
		case b.IsString():
			body = []byte(b.String())
		case b.IsSharedArrayBuffer():
			buf, release, err := b.SharedArrayBufferGetContents()
			if err != nil {
				return reply(errors.New("fetch failed: invalid body"))
			}
			body = append([]byte(nil), buf...)
			release()
		}
	}
	if int64(len(body)) > r.cfg.MaxBodyBytes {
		return reply(errors.New("fetch failed: request body too large"))
	}
	c.fetches++
	c.waiting++
	c.dirty = true
	if c.events == nil { // most calls fetch nothing: made on the first fetch
		c.events = make(chan fetchResult, r.cfg.Fetch.MaxRequests)
	}
	events := c.events
	go func() { events <- r.fetch.do(c.ctx, id, &fr, body) }()
	return reply(nil)
}

// nativeHost(scratch, id, binding, method, argsJSON) starts a binding
// call (Config.Bindings) on its own goroutine; the result is delivered by
// the event loop through the prelude's fetchDone, like a fetch's.
func (r *Runtime) nativeHost(info *v8.FunctionCallbackInfo) (*v8.Value, error) {
	defer info.Release()
	args := info.Args()
	if len(args) < 5 || !args[0].IsSharedArrayBuffer() {
		return nil, nil
	}
	reply := func(err error) (*v8.Value, error) { writeStart(args[0], err); return nil, nil }
	name, method := args[2].String(), args[3].String()
	c := r.cur
	if c == nil {
		return reply(fmt.Errorf("%s.%s: no request in progress", name, method))
	}
	b := r.cfg.Bindings[name]
	if b == nil {
		return reply(fmt.Errorf("env.%s is not available", name))
	}
	if c.hostCalls >= maxBindingCalls {
		return reply(fmt.Errorf("%s.%s: too many calls in one request (limit %d)", name, method, maxBindingCalls))
	}
	in := args[4].String()
	if int64(len(in)) > r.cfg.MaxBodyBytes {
		return reply(fmt.Errorf("%s.%s: arguments too large (limit %d bytes)", name, method, r.cfg.MaxBodyBytes))
	}
	id := int(args[1].Integer())
	c.hostCalls++
	c.waiting++
	c.dirty = true
	if c.events == nil {
		c.events = make(chan fetchResult, r.cfg.Fetch.MaxRequests)
	}
	events, ctx := c.events, c.ctx
	go func() {
		out, err := b.Call(ctx, method, json.RawMessage(in))
		res := fetchResult{id: id, meta: out}
		if err != nil {
			res.err = fmt.Sprintf("%s.%s: %v", name, method, err)
		}
		select {
		case events <- res:
		case <-ctx.Done():
		}
	}()
	return reply(nil)
}

// nativeURL(scratch, input, base, hasBase) parses a URL; the result is the
// JSON of urlParts, or the error text.
func (r *Runtime) nativeURL(info *v8.FunctionCallbackInfo) (*v8.Value, error) {
	defer info.Release()
	args := info.Args()
	if len(args) < 4 || !args[0].IsSharedArrayBuffer() {
		return nil, nil
	}
	out, err := parseURL(args[1].String(), args[2].String(), args[3].Boolean())
	if err != nil {
		writeResult(args[0], 1, []byte(err.Error()))
	} else {
		writeResult(args[0], 0, out)
	}
	return nil, nil
}

// writeResult writes a native call's result to the caller's scratch buffer:
// a status byte (0 ok, 1 error: the prelude throws a TypeError with the
// text), the little-endian length, then the bytes when they fit (if not, the
// prelude grows the buffer and calls again).
func writeResult(scratch *v8.Value, status byte, out []byte) {
	buf, release, err := scratch.SharedArrayBufferGetContents()
	if err != nil {
		return
	}
	defer release()
	if len(buf) < 5 {
		return
	}
	buf[0] = status
	binary.LittleEndian.PutUint32(buf[1:5], uint32(len(out)))
	if len(out)+5 <= len(buf) {
		copy(buf[5:], out)
	}
}

// urlParts is the JSON shape the prelude's URL class reads.
type urlParts struct {
	Href     string `json:"href"`
	Origin   string `json:"origin"`
	Protocol string `json:"protocol"`
	Username string `json:"username"`
	Password string `json:"password"`
	Hostname string `json:"hostname"`
	Port     string `json:"port"`
	Pathname string `json:"pathname"`
	Search   string `json:"search"`
	Hash     string `json:"hash"`
}

var defaultPorts = map[string]string{"http": "80", "https": "443", "ws": "80", "wss": "443", "ftp": "21"}

// urlEscaper percent-encodes what the WHATWG URL parser encodes and Go's
// parser rejects.
var urlEscaper = strings.NewReplacer(" ", "%20", `"`, "%22", "<", "%3C", ">", "%3E", "`", "%60", "{", "%7B", "}", "%7D", "|", "%7C", "\\", "/")

// parseURL implements the URL constructor over net/url, close to WHATWG for
// the special schemes (http, https, ws, wss, ftp, file).
func parseURL(input, base string, hasBase bool) ([]byte, error) {
	invalid := fmt.Errorf("Invalid URL: %q", input)
	input = strings.TrimFunc(input, func(r rune) bool { return r <= ' ' })
	input = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(input)
	ref, err := url.Parse(escapeURL(input))
	if err != nil {
		return nil, invalid
	}
	u := ref
	if hasBase {
		b, err := url.Parse(escapeURL(strings.TrimSpace(base)))
		if err != nil || !b.IsAbs() {
			return nil, fmt.Errorf("Invalid base URL: %q", base)
		}
		u = b.ResolveReference(ref)
	}
	if !u.IsAbs() {
		return nil, invalid
	}
	scheme := strings.ToLower(u.Scheme)
	_, special := defaultPorts[scheme]
	if scheme == "file" {
		special = true
	}
	p := urlParts{Protocol: scheme + ":", Origin: "null"}
	if u.User != nil {
		p.Username = u.User.Username()
		p.Password, _ = u.User.Password()
		p.Username = url.PathEscape(p.Username)
		p.Password = url.PathEscape(p.Password)
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if special && scheme != "file" && host == "" {
		return nil, invalid
	}
	if host != "" && strings.ContainsAny(host, " %/?#@") {
		return nil, invalid
	}
	if special && scheme != "file" && host != "" && !strings.HasPrefix(host, "[") {
		v4, ok, err := parseIPv4Host(host)
		if err != nil {
			return nil, invalid
		}
		if ok {
			host = v4
		}
	}
	p.Hostname = host
	p.Port = u.Port()
	if p.Port != "" {
		n, err := net.LookupPort("tcp", p.Port)
		if err != nil || n > 65535 {
			return nil, invalid
		}
		p.Port = fmt.Sprint(n)
	}
	if defaultPorts[scheme] == p.Port {
		p.Port = ""
	}
	if u.Opaque != "" {
		p.Pathname = u.Opaque
	} else {
		p.Pathname = removeDotSegments(u.EscapedPath())
		if special && p.Pathname == "" {
			p.Pathname = "/"
		}
	}
	if u.RawQuery != "" {
		p.Search = "?" + u.RawQuery
	}
	if f := u.EscapedFragment(); f != "" {
		p.Hash = "#" + f
	}
	hostPort := p.Hostname
	if p.Port != "" {
		hostPort += ":" + p.Port
	}
	if special && scheme != "file" {
		p.Origin = scheme + "://" + hostPort
	}
	var sb strings.Builder
	sb.WriteString(p.Protocol)
	if u.Opaque == "" && (host != "" || special) {
		sb.WriteString("//")
		if p.Username != "" || p.Password != "" {
			sb.WriteString(p.Username)
			if p.Password != "" {
				sb.WriteString(":" + p.Password)
			}
			sb.WriteString("@")
		}
		sb.WriteString(hostPort)
	}
	sb.WriteString(p.Pathname + p.Search + p.Hash)
	p.Href = sb.String()
	return json.Marshal(p)
}

// escapeURL encodes characters Go's parser refuses, leaving an authority's
// backslashes as slashes like browsers do for special schemes.
func escapeURL(s string) string {
	if !strings.ContainsAny(s, " \"<>`{}|\\") {
		return s
	}
	return urlEscaper.Replace(s)
}

// removeDotSegments implements RFC 3986 section 5.2.4 on an escaped path.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch strings.ToLower(s) {
		case ".", "%2e":
			if last {
				out = append(out, "")
			}
		case "..", ".%2e", "%2e.", "%2e%2e":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return strings.Join(out, "/")
}

// parseIPv4Host applies the WHATWG IPv4 parser: a host whose last label is
// numeric ("2130706433", "0x7f.1", "127.1") is an IPv4 address in dotted,
// hex or octal parts. ok is false for an ordinary name.
func parseIPv4Host(host string) (v4 string, ok bool, err error) {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	num := func(s string) (uint64, bool) {
		base := 10
		switch {
		case len(s) > 1 && (strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X")):
			s, base = s[2:], 16
		case len(s) > 1 && s[0] == '0':
			s, base = s[1:], 8
		}
		if s == "" {
			return 0, base == 16
		}
		n, err := strconv.ParseUint(s, base, 64)
		return n, err == nil
	}
	if _, isNum := num(parts[len(parts)-1]); !isNum {
		return "", false, nil
	}
	if len(parts) > 4 {
		return "", false, errors.New("invalid IPv4 address")
	}
	var addr uint64
	for i, p := range parts {
		n, isNum := num(p)
		if !isNum {
			return "", false, errors.New("invalid IPv4 address")
		}
		if i < len(parts)-1 {
			if n > 255 {
				return "", false, errors.New("invalid IPv4 address")
			}
			addr |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(5-len(parts))) {
			return "", false, errors.New("invalid IPv4 address")
		}
		addr |= n
	}
	return fmt.Sprintf("%d.%d.%d.%d", byte(addr>>24), byte(addr>>16), byte(addr>>8), byte(addr)), true, nil
}
