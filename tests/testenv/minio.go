// minio.go: an S3-compatible server for tests — one MinIO per test binary
// (built once per machine by tests/tools/build.sh), on random 127.0.0.1
// ports, with its data inside the server's scratch directory — and
// buckets on it, one per caller. Packages that use it should stop it when
// their tests end:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// (a watchdog stops it anyway when the test binary exits).
//
// Environment:
//
//	PIER_S3_ENDPOINT=http://host:port   use this S3-compatible server instead
//	PIER_S3_ACCESS_KEY, PIER_S3_SECRET_KEY   its credentials (required with it)
//	PIER_S3_REGION                      its region (default us-east-1)
//	PIER_MINIO_BIN=/path/to/minio       use this binary instead of building one
//	PIER_REQUIRE_SERVERS=1              fail instead of skip when no server can be had
//
// Buckets are created and emptied with a small SigV4 client written here
// on the standard library, so that this package (imported by every
// integration test) does not pull in the AWS SDK.

package testenv

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// S3Endpoint is an S3-compatible server and credentials that may create
// buckets on it.
type S3Endpoint struct {
	URL       string // http://127.0.0.1:PORT, no trailing slash
	AccessKey string
	SecretKey string
	Region    string
}

// minioState is the one MinIO of this test binary, shared by every test.
var minioState struct {
	once     sync.Once
	ep       S3Endpoint
	err      error
	external bool // PIER_S3_ENDPOINT: buckets are removed when their test ends
	prefix   string
	n        atomic.Int64
}

// MinIO returns an S3 endpoint for t: the server named by PIER_S3_ENDPOINT,
// or this test binary's MinIO, started on first use (well under a second
// once the binary is built; building it takes minutes, once per machine).
// Each caller should work in its own bucket: see NewBucket and BucketName.
// Without a MinIO binary the test is skipped (or failed, see Unavailable).
func MinIO(t testing.TB) S3Endpoint {
	t.Helper()
	if u := os.Getenv("PIER_S3_ENDPOINT"); u != "" {
		minioState.once.Do(func() { externalS3(u) })
	} else {
		bin := Tool(t, "minio") // before the Once: it may skip t
		minioState.once.Do(func() { startMinIO(bin) })
	}
	if minioState.err != nil {
		t.Fatalf("testenv: %v", minioState.err)
	}
	return minioState.ep
}

func externalS3(u string) {
	minioState.external = true
	minioState.prefix = "pier-t-" + randomHex(4) + "-" // several runs may share the server
	minioState.ep = S3Endpoint{
		URL:       strings.TrimRight(u, "/"),
		AccessKey: os.Getenv("PIER_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("PIER_S3_SECRET_KEY"),
		Region:    os.Getenv("PIER_S3_REGION"),
	}
	if minioState.ep.Region == "" {
		minioState.ep.Region = "us-east-1"
	}
	if minioState.ep.AccessKey == "" || minioState.ep.SecretKey == "" {
		minioState.err = errors.New("PIER_S3_ENDPOINT is set but PIER_S3_ACCESS_KEY or PIER_S3_SECRET_KEY is not")
	}
}

func startMinIO(bin string) {
	minioState.prefix = "pier-t-"
	ep := S3Endpoint{AccessKey: "pier-test", SecretKey: "pier-" + randomHex(12), Region: "us-east-1"}
	// A free port can be taken between the probe and the bind: retry.
	var errs []error
	for range 3 {
		ports, err := FreePorts(2)
		if err != nil {
			minioState.err = err
			return
		}
		addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
		// Relative paths are inside the server's scratch directory.
		srv, err := StartServer("minio", []string{bin, "server", "--quiet",
			"--address", addr, "--console-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
			"--certs-dir", "certs", "data"},
			[]string{
				"MINIO_ROOT_USER=" + ep.AccessKey,
				"MINIO_ROOT_PASSWORD=" + ep.SecretKey,
				"MINIO_BROWSER=off",
				"MINIO_UPDATE=off",
				"AWS_CA_BUNDLE=",
				// Credentials or endpoints from the environment must
				// not reach the server.
				"MINIO_ACCESS_KEY=", "MINIO_SECRET_KEY=", "MINIO_VOLUMES=",
			})
		if err != nil {
			minioState.err = err
			return
		}
		ep.URL = "http://" + addr
		if err := srv.WaitHTTP(ep.URL+"/minio/health/ready", 60*time.Second, nil); err != nil {
			srv.Stop()
			errs = append(errs, err)
			continue
		}
		// "ready" can come before the object layer is up (503
		// XMinioServerNotInitialized): wait until a signed request works.
		if err := ep.waitS3(srv, 60*time.Second); err != nil {
			srv.Stop()
			errs = append(errs, err)
			continue
		}
		minioState.ep = ep
		return
	}
	minioState.err = fmt.Errorf("start minio: %w", errors.Join(errs...))
}

// waitS3 retries ListBuckets until it succeeds, srv exits or timeout
// passes.
func (e S3Endpoint) waitS3(srv *Server, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		_, err := e.do(ctx, http.MethodGet, "/", nil, nil)
		if err == nil {
			return nil
		}
		select {
		case <-srv.Exited():
			return fmt.Errorf("%s exited before it was ready:\n%s", srv.Name, srv.Log())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w\n%s", srv.Name, timeout, err, srv.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// BucketName returns a bucket name no other caller gets, for code that
// creates its bucket itself. On a PIER_S3_ENDPOINT server the bucket, if
// it was created, is emptied and removed when t ends.
func (e S3Endpoint) BucketName(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("%s%d", minioState.prefix, minioState.n.Add(1))
	if minioState.prefix == "" { // an S3Endpoint not from MinIO
		name = fmt.Sprintf("pier-t-%s", randomHex(8))
	}
	if minioState.external || minioState.prefix == "" {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := e.removeBucket(ctx, name); err != nil {
				t.Logf("testenv: remove bucket %s: %v", name, err)
			}
		})
	}
	return name
}

// NewBucket creates an empty bucket that no other caller gets and returns
// its name. On a PIER_S3_ENDPOINT server it is emptied and removed when t
// ends; on the test binary's MinIO it goes with the server.
func (e S3Endpoint) NewBucket(t testing.TB) string {
	t.Helper()
	name := e.BucketName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var body []byte
	if e.Region != "" && e.Region != "us-east-1" {
		body = []byte(`<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
			`<LocationConstraint>` + e.Region + `</LocationConstraint></CreateBucketConfiguration>`)
	}
	if _, err := e.do(ctx, http.MethodPut, "/"+name, nil, body); err != nil {
		t.Fatalf("testenv: create bucket %s: %v", name, err)
	}
	return name
}

// do sends a SigV4-signed request for path ("/bucket" or "/bucket/key",
// unescaped) with query and body, and returns the response body; an
// answer other than 2xx is an error carrying the S3 error code.
func (e S3Endpoint) do(ctx context.Context, method, path string, query url.Values, body []byte) ([]byte, error) {
	u, err := url.Parse(e.URL)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", e.URL, err)
	}
	escaped := s3Escape(path, false)
	u.RawPath = strings.TrimRight(u.Path, "/") + escaped
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = s3Query(query)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	e.sign(req, u.EscapedPath(), body, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var ae struct {
			Code    string
			Message string
		}
		_ = xml.Unmarshal(data, &ae)
		return nil, fmt.Errorf("%s %s: %s %s: %s", method, path, resp.Status, ae.Code, ae.Message)
	}
	return data, nil
}

// removeBucket deletes every object of bucket, then the bucket. A bucket
// that does not exist is not an error.
func (e S3Endpoint) removeBucket(ctx context.Context, bucket string) error {
	token := ""
	for {
		q := url.Values{"list-type": {"2"}}
		if token != "" {
			q.Set("continuation-token", token)
		}
		data, err := e.do(ctx, http.MethodGet, "/"+bucket, q, nil)
		if err != nil {
			if strings.Contains(err.Error(), "NoSuchBucket") {
				return nil
			}
			return err
		}
		var list struct {
			Contents []struct{ Key string }
			// IsTruncated and NextContinuationToken page the listing.
			IsTruncated           bool
			NextContinuationToken string
		}
		if err := xml.Unmarshal(data, &list); err != nil {
			return fmt.Errorf("list %s: %w", bucket, err)
		}
		for _, c := range list.Contents {
			if _, err := e.do(ctx, http.MethodDelete, "/"+bucket+"/"+c.Key, nil, nil); err != nil {
				return err
			}
		}
		if !list.IsTruncated || list.NextContinuationToken == "" {
			break
		}
		token = list.NextContinuationToken
	}
	_, err := e.do(ctx, http.MethodDelete, "/"+bucket, nil, nil)
	return err
}

// sign adds AWS Signature Version 4 headers to req (service s3, payload
// signed by its SHA-256).
func (e S3Endpoint) sign(req *http.Request, escapedPath string, body []byte, now time.Time) {
	now = now.UTC()
	amzDate := now.Format("20060102T150405Z")
	day := now.Format("20060102")
	payload := sha256.Sum256(body)
	payloadHex := hex.EncodeToString(payload[:])
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", payloadHex)

	const signed = "host;x-amz-content-sha256;x-amz-date"
	canonical := strings.Join([]string{
		req.Method,
		escapedPath,
		req.URL.RawQuery,
		"host:" + req.URL.Host,
		"x-amz-content-sha256:" + payloadHex,
		"x-amz-date:" + amzDate,
		"",
		signed,
		payloadHex,
	}, "\n")
	scope := day + "/" + e.Region + "/s3/aws4_request"
	creq := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(creq[:])

	mac := func(key []byte, data string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(data))
		return h.Sum(nil)
	}
	key := mac([]byte("AWS4"+e.SecretKey), day)
	key = mac(key, e.Region)
	key = mac(key, "s3")
	key = mac(key, "aws4_request")
	sig := hex.EncodeToString(mac(key, toSign))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+e.AccessKey+"/"+scope+
		", SignedHeaders="+signed+", Signature="+sig)
}

// s3Query is the canonical query string: keys sorted, every byte outside
// A-Z a-z 0-9 - _ . ~ percent-encoded.
func s3Query(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, s3Escape(k, true)+"="+s3Escape(v, true))
		}
	}
	return strings.Join(parts, "&")
}

// s3Escape percent-encodes s as SigV4 wants; slashes stay unless all.
func s3Escape(s string, all bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/' && !all:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
