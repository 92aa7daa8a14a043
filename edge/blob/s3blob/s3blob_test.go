package s3blob_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/blob/blobtest"
	"github.com/pierhq/pier/edge/blob/s3blob"
	"github.com/pierhq/pier/tests/testenv"
)

var _ blobtest.Store = (*s3blob.Store)(nil)

func TestMain(m *testing.M) { testenv.Main(m) }

func config(ep testenv.S3Endpoint, bucket string) s3blob.Config {
	return s3blob.Config{
		Endpoint:  ep.URL,
		Region:    ep.Region,
		Bucket:    bucket,
		AccessKey: ep.AccessKey,
		SecretKey: ep.SecretKey,
	}
}

func open(t *testing.T, cfg s3blob.Config) *s3blob.Store {
	t.Helper()
	s, err := s3blob.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// One fresh bucket per subtest.
func TestConformance(t *testing.T) {
	ep := testenv.MinIO(t)
	blobtest.Run(t, func(t *testing.T) blobtest.Store {
		return open(t, config(ep, ep.NewBucket(t)))
	})
}

// One shared bucket, a fresh prefix per subtest: the prefix isolates
// stores that share a bucket.
func TestConformancePrefix(t *testing.T) {
	ep := testenv.MinIO(t)
	bucket := ep.NewBucket(t)
	n := 0
	blobtest.Run(t, func(t *testing.T) blobtest.Store {
		n++
		cfg := config(ep, bucket)
		cfg.Prefix = fmt.Sprintf("/install-%d/pier/", n) // slashes are trimmed
		return open(t, cfg)
	})
}

func TestPrefixKeyLength(t *testing.T) {
	ep := testenv.MinIO(t)
	cfg := config(ep, ep.NewBucket(t))
	cfg.Prefix = strings.Repeat("p", 100)
	s := open(t, cfg)
	key := strings.Repeat("k", 1000) // valid alone, too long with the prefix
	if err := s.Put(t.Context(), key, strings.NewReader("x"), 1); !errors.Is(err, edge.ErrInvalidKey) {
		t.Fatalf("Put of a 1000-byte key under a 100-byte prefix = %v, want ErrInvalidKey", err)
	}
}

func TestConfigErrors(t *testing.T) {
	good := s3blob.Config{Endpoint: "http://127.0.0.1:1", Bucket: "b", AccessKey: "a", SecretKey: "s"}
	tests := []struct {
		name   string
		change func(*s3blob.Config)
		want   string
	}{
		{"no bucket", func(c *s3blob.Config) { c.Bucket = "" }, "no bucket"},
		{"no access key", func(c *s3blob.Config) { c.AccessKey = "" }, "access key and a secret key"},
		{"no secret key", func(c *s3blob.Config) { c.SecretKey = "" }, "access key and a secret key"},
		{"endpoint without scheme", func(c *s3blob.Config) { c.Endpoint = "127.0.0.1:9000" }, "not an http"},
		{"endpoint ftp", func(c *s3blob.Config) { c.Endpoint = "ftp://example.com" }, "not an http"},
		{"prefix with ..", func(c *s3blob.Config) { c.Prefix = "a/../b" }, "invalid blob key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			_, err := s3blob.New(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// Rejected credentials give a short error that says what to check, wraps
// ErrAccessDenied and never shows the secret.
func TestCredentialsRejected(t *testing.T) {
	ep := testenv.MinIO(t)
	bucket := ep.NewBucket(t)
	tests := []struct {
		name   string
		change func(*s3blob.Config)
		want   []string
	}{
		{"wrong secret key", func(c *s3blob.Config) { c.SecretKey = "not-the-secret-0123" },
			[]string{"SignatureDoesNotMatch", "check the secret key"}},
		{"unknown access key", func(c *s3blob.Config) { c.AccessKey = "nobody-here" },
			[]string{"InvalidAccessKeyId", "check the access key"}},
	}
	for _, tt := range tests {
		for _, create := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/create=%v", tt.name, create), func(t *testing.T) {
				cfg := config(ep, bucket)
				cfg.CreateBucket = create
				tt.change(&cfg)
				s, err := s3blob.New(t.Context(), cfg)
				if err == nil {
					t.Fatalf("New with %s: no error (store %v)", tt.name, s)
				}
				t.Logf("error: %v", err)
				if !errors.Is(err, s3blob.ErrAccessDenied) {
					t.Errorf("error does not wrap ErrAccessDenied: %v", err)
				}
				if errors.Is(err, edge.ErrNotExist) {
					t.Errorf("error wraps edge.ErrNotExist: %v", err)
				}
				msg := err.Error()
				for _, w := range tt.want {
					if !strings.Contains(msg, w) {
						t.Errorf("error %q does not contain %q", msg, w)
					}
				}
				for _, leak := range []string{cfg.SecretKey, ep.SecretKey, "RequestID", "HostID"} {
					if strings.Contains(msg, leak) {
						t.Errorf("error %q shows %q", msg, leak)
					}
				}
				var se *s3blob.Error
				wantOp := "open bucket"
				if create {
					wantOp = "create bucket"
				}
				if !errors.As(err, &se) || se.Op != wantOp {
					t.Errorf("error is not an *s3blob.Error of op %q: %#v", wantOp, se)
				}
			})
		}
	}
}

func TestBucket(t *testing.T) {
	ep := testenv.MinIO(t)

	t.Run("missing", func(t *testing.T) {
		_, err := s3blob.New(t.Context(), config(ep, ep.BucketName(t)))
		if !errors.Is(err, s3blob.ErrNoSuchBucket) {
			t.Fatalf("New on a missing bucket = %v, want ErrNoSuchBucket", err)
		}
		if !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("error %q does not say the bucket does not exist", err)
		}
	})
	t.Run("created", func(t *testing.T) {
		cfg := config(ep, ep.BucketName(t))
		cfg.CreateBucket = true
		s := open(t, cfg)
		if err := s.Put(t.Context(), "k", strings.NewReader("v"), 1); err != nil {
			t.Fatal(err)
		}
		// A second store on the bucket it already owns finds the object.
		s2 := open(t, cfg)
		if ok, err := s2.Exists(t.Context(), "k"); err != nil || !ok {
			t.Fatalf("Exists on a reopened bucket = %v, %v", ok, err)
		}
		if s2.Bucket() != cfg.Bucket {
			t.Fatalf("Bucket() = %q, want %q", s2.Bucket(), cfg.Bucket)
		}
	})
}

// nonSeekable hides every method of r but Read.
type nonSeekable struct{ r io.Reader }

func (n nonSeekable) Read(p []byte) (int, error) { return n.r.Read(p) }

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func TestPutReaders(t *testing.T) {
	ep := testenv.MinIO(t)
	s := open(t, config(ep, ep.NewBucket(t)))
	data3 := pattern(3<<20, 1)
	data20 := pattern(20<<20, 2) // three parts of s3blob.PartSize
	seeked := bytes.NewReader(data3)
	seeked.Seek(1000, io.SeekStart)

	tests := []struct {
		name string
		r    io.Reader
		size int64
		want []byte
	}{
		{"3MiB non-seekable", nonSeekable{bytes.NewReader(data3)}, int64(len(data3)), data3},
		{"3MiB non-seekable one byte at a time at the end", io.MultiReader(bytes.NewReader(data3[:len(data3)-3]), iotest.OneByteReader(bytes.NewReader(data3[len(data3)-3:]))), int64(len(data3)), data3},
		{"20MiB non-seekable (multipart)", nonSeekable{bytes.NewReader(data20)}, int64(len(data20)), data20},
		{"20MiB seekable (multipart)", bytes.NewReader(data20), int64(len(data20)), data20},
		{"exactly one part", nonSeekable{bytes.NewReader(data20[:s3blob.PartSize])}, s3blob.PartSize, data20[:s3blob.PartSize]},
		{"unknown size", nonSeekable{bytes.NewReader(data3)}, -1, data3},
		{"unknown size, multipart", nonSeekable{bytes.NewReader(data20)}, -1, data20},
		{"seekable from its offset", seeked, int64(len(data3) - 1000), data3[1000:]},
		{"empty non-seekable", nonSeekable{strings.NewReader("")}, 0, []byte{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("put/%d", i)
			if err := s.Put(t.Context(), key, tt.r, tt.size); err != nil {
				t.Fatalf("Put: %v", err)
			}
			rc, err := s.Get(t.Context(), key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("Get: %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

// A Put whose reader does not match its size, or fails, leaves nothing:
// no object, no multipart upload in progress.
func TestPutFailsCleanly(t *testing.T) {
	ep := testenv.MinIO(t)
	bucket := ep.NewBucket(t)
	s := open(t, config(ep, bucket))
	data := pattern(20<<20, 3)
	fail := func(n int) io.Reader {
		return io.MultiReader(bytes.NewReader(data[:n]), iotest.ErrReader(errors.New("disk on fire")))
	}

	tests := []struct {
		name string
		r    io.Reader
		size int64
		want string
	}{
		{"non-seekable too long", nonSeekable{bytes.NewReader(data[:11])}, 10, "more than 10 bytes"},
		{"non-seekable too short", nonSeekable{bytes.NewReader(data[:9])}, 10, "after 9 of 10 bytes"},
		{"non-seekable too long, multipart", nonSeekable{bytes.NewReader(data)}, int64(len(data) - 1), "more than"},
		{"non-seekable too short, multipart", nonSeekable{bytes.NewReader(data[:len(data)-1])}, int64(len(data)), "of 20971520 bytes"},
		{"seekable too long", bytes.NewReader(data[:11]), 10, "more than 10 bytes"},
		{"seekable too short", bytes.NewReader(data[:9]), 10, "after 9 of 10 bytes"},
		{"fails in the first part", fail(1000), int64(len(data)), "disk on fire"},
		{"fails in the third part", fail(17 << 20), int64(len(data)), "disk on fire"},
		{"fails, unknown size", fail(17 << 20), -1, "disk on fire"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("fail/%d", i)
			err := s.Put(t.Context(), key, tt.r, tt.size)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Put = %v, want an error containing %q", err, tt.want)
			}
			if ok, err := s.Exists(t.Context(), key); err != nil || ok {
				t.Fatalf("Exists after a failed Put = %v, %v; want false", ok, err)
			}
		})
	}

	client := s3.New(s3.Options{
		Region:       ep.Region,
		BaseEndpoint: aws.String(ep.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(ep.AccessKey, ep.SecretKey, ""),
	})
	out, err := client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	for _, u := range out.Uploads {
		t.Errorf("multipart upload of %q left in progress", aws.ToString(u.Key))
	}
}

// Get, Exists and Delete on a bucket removed under the store say so.
func TestBucketRemoved(t *testing.T) {
	ep := testenv.MinIO(t)
	bucket := ep.NewBucket(t)
	s := open(t, config(ep, bucket))
	client := s3.New(s3.Options{
		Region:       ep.Region,
		BaseEndpoint: aws.String(ep.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(ep.AccessKey, ep.SecretKey, ""),
	})
	if _, err := client.DeleteBucket(t.Context(), &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("DeleteBucket: %v", err)
	}
	ctx := t.Context()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, s3blob.ErrNoSuchBucket) || errors.Is(err, edge.ErrNotExist) {
		t.Errorf("Get = %v, want ErrNoSuchBucket (and not ErrNotExist)", err)
	}
	if err := s.Put(ctx, "k", strings.NewReader("v"), 1); !errors.Is(err, s3blob.ErrNoSuchBucket) {
		t.Errorf("Put = %v, want ErrNoSuchBucket", err)
	}
	if err := s.Delete(ctx, "k"); !errors.Is(err, s3blob.ErrNoSuchBucket) {
		t.Errorf("Delete = %v, want ErrNoSuchBucket", err)
	}
}
