// Package s3blob is the production object store: blobs and manifests as
// objects in one bucket (optionally under a key prefix) of any
// S3-compatible service — AWS S3, MinIO, Ceph RGW, Swift s3api, R2 —
// through aws-sdk-go-v2 with path-style addressing, a custom endpoint,
// static credentials and a region. Its embedded twin is edge/blob/dirblob;
// both pass the same conformance suite (edge/blob/blobtest).
//
// Semantics, as the suite pins them:
//   - Put is atomic: S3 makes an object visible only once the whole PUT
//     (or the CompleteMultipartUpload of a large one) succeeded, and Put
//     refuses a reader that yields fewer or more bytes than the size it
//     was given before the last byte leaves, so a failed Put leaves the
//     key as it was. Seekable bodies (files, bytes.Reader) are sent as
//     they are, signed and retryable; other readers are buffered in parts
//     of PartSize (8 MiB) by the SDK's upload manager, at most
//     partConcurrency parts in flight per Put.
//   - Keys are validated by edge.ValidKey, as in every blob store.
//   - A missing key wraps edge.ErrNotExist; credentials the endpoint
//     rejects wrap ErrAccessDenied; a missing bucket wraps ErrNoSuchBucket.
//
// Permissions the credentials need on the bucket (an IAM or MinIO policy):
// s3:ListBucket (New probes the bucket with ListObjectsV2; without it AWS
// also answers 403 instead of 404 for a missing key, so Exists and Get
// could not tell "missing" from "forbidden"), s3:GetObject, s3:PutObject,
// s3:DeleteObject, s3:AbortMultipartUpload (a failed large Put aborts its
// upload), and s3:CreateBucket only when Config.CreateBucket is set.
// Readers (edges) need only s3:ListBucket and s3:GetObject. A bucket
// lifecycle rule "AbortIncompleteMultipartUpload after 1 day" is
// recommended: a Put cancelled mid-way cannot always abort its upload.
//
// Only the composition root (control/cmd/pier) and tests import it; the
// consumers (jobs/build, the edge) see it through their own interfaces.
// This is the only package that imports aws-sdk-go-v2.
// Imports: edge, aws-sdk-go-v2, the standard library.
package s3blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/pierhq/pier/edge"
)

const (
	// DefaultRegion is used when Config.Region is empty. MinIO and most
	// S3-compatible services accept it whatever their location.
	DefaultRegion = "us-east-1"

	// PartSize is the size of the parts a large or non-seekable Put is
	// split into (a multipart upload above it, one PUT below).
	PartSize = 8 << 20

	// partConcurrency bounds the parts of one Put in flight, and so its
	// memory for a non-seekable reader: (partConcurrency+1) * PartSize.
	partConcurrency = 3
)

var (
	// ErrAccessDenied is returned (wrapped) when the endpoint rejects the
	// credentials (unknown access key, wrong secret key) or denies the
	// operation.
	ErrAccessDenied = errors.New("access denied by the object store")
	// ErrNoSuchBucket is returned (wrapped) when the bucket does not exist.
	ErrNoSuchBucket = errors.New("bucket does not exist")
)

// Config says where the store is and how to reach it.
type Config struct {
	// Endpoint is the base URL of an S3-compatible service
	// ("http://127.0.0.1:9000", "https://s3.example.com"). Empty means
	// AWS S3 itself (virtual-hosted addressing); otherwise requests use
	// path-style addressing (endpoint/bucket/key).
	Endpoint string
	// Region signs the requests; "" means DefaultRegion.
	Region string
	// Bucket holds every object (required).
	Bucket string
	// Prefix, if set, is prepended to every key ("pier" stores
	// "blobs/sha256/.." at "pier/blobs/sha256/.."), so several
	// installations can share a bucket.
	Prefix string
	// AccessKey and SecretKey are static credentials (both required).
	AccessKey string
	SecretKey string
	// CreateBucket creates Bucket in New when it does not exist yet.
	CreateBucket bool
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

// Store is a blob store on one bucket of an S3-compatible service. It is
// safe for concurrent use.
type Store struct {
	client   *s3.Client
	uploader *manager.Uploader
	bucket   string
	prefix   string // "" or ending in "/"
	where    string // endpoint, for error messages
	log      *slog.Logger
}

// New checks cfg, connects to the bucket (creating it when
// cfg.CreateBucket is set) and checks that the credentials may list it,
// so that a wrong key or a missing bucket fails here with a clear error
// rather than at the first Put.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3blob: no bucket configured")
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("s3blob: an access key and a secret key are both required")
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	where := "AWS S3"
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3blob: endpoint %q is not an http:// or https:// URL", cfg.Endpoint)
		}
		where = u.Scheme + "://" + u.Host
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := edge.ValidKey(prefix); err != nil {
			return nil, fmt.Errorf("s3blob: prefix: %w", err)
		}
		prefix += "/"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	opts := s3.Options{
		Region:       cfg.Region,
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")),
		UsePathStyle: cfg.Endpoint != "",
		// Payloads are SigV4-signed with their SHA-256 (every body the
		// SDK sends is seekable, see Put), which already guarantees
		// their integrity; the newer CRC checksum headers and
		// aws-chunked trailers are left out because several
		// S3-compatible services still reject them.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	client := s3.New(opts)
	s := &Store{
		client: client,
		uploader: manager.NewUploader(client, func(u *manager.Uploader) {
			u.PartSize = PartSize
			u.Concurrency = partConcurrency
			u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		}),
		bucket: cfg.Bucket,
		prefix: prefix,
		where:  where,
		log:    log.With("component", "s3blob", "bucket", cfg.Bucket),
	}

	if cfg.CreateBucket {
		if err := s.createBucket(ctx, cfg.Region); err != nil {
			return nil, err
		}
	}
	// The probe: the credentials are good, the bucket exists, and we may
	// list it (see the package comment).
	_, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(s.prefix),
		MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return nil, s.translate("open bucket", "", err)
	}
	return s, nil
}

func (s *Store) createBucket(ctx context.Context, region string) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(s.bucket)}
	if region != DefaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(region),
		}
	}
	_, err := s.client.CreateBucket(ctx, in)
	switch code := apiCode(err); {
	case err == nil:
		s.log.DebugContext(ctx, "created bucket")
		return nil
	case code == "BucketAlreadyOwnedByYou":
		return nil
	case code == "BucketAlreadyExists":
		return fmt.Errorf("s3blob: create bucket %q: the name is taken by another account", s.bucket)
	default:
		return s.translate("create bucket", "", err)
	}
}

// Bucket is the bucket the store writes to.
func (s *Store) Bucket() string { return s.bucket }

// object returns the object key of key, or an error for an invalid key.
func (s *Store) object(key string) (string, error) {
	if err := edge.ValidKey(key); err != nil {
		return "", err
	}
	if len(s.prefix)+len(key) > edge.MaxKeyLen {
		return "", fmt.Errorf("%w: %q: longer than %d bytes with the prefix %q", edge.ErrInvalidKey, key, edge.MaxKeyLen, s.prefix)
	}
	return s.prefix + key, nil
}

// Put stores size bytes from r at key, atomically. A reader that ends
// early, yields more than size bytes or fails leaves the key unchanged. A
// negative size means "unknown": everything r yields is stored.
//
// An io.ReadSeeker (a file, a bytes.Reader) is read from its current
// offset and may be read twice (to sign it, then to send it, and again on
// a retry); its length must match size. Any other reader is read once and
// buffered in parts of PartSize.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	obj, err := s.object(key)
	if err != nil {
		return err
	}
	var body io.Reader
	if rs, ok := r.(io.ReadSeeker); ok {
		start, n, err := remaining(rs)
		if err != nil {
			return fmt.Errorf("s3blob: put %q: %w", key, err)
		}
		switch {
		case size >= 0 && n < size:
			return fmt.Errorf("s3blob: put %q: reader ended after %d of %d bytes", key, n, size)
		case size >= 0 && n > size:
			return fmt.Errorf("s3blob: put %q: reader yields more than %d bytes", key, size)
		}
		body = rs
		if ra, ok := r.(io.ReaderAt); ok {
			// The uploader reads a ReaderAt from offset 0: give it a
			// view that starts where the caller's reader is.
			body = io.NewSectionReader(ra, start, n)
		}
	} else {
		body = r
		if size >= 0 {
			body = &exactReader{r: r, left: size, size: size}
		}
	}
	_, err = s.uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(obj),
		Body:        body,
		ContentType: aws.String("application/octet-stream"),
	})
	if err != nil {
		var short *sizeError
		if errors.As(err, &short) {
			return fmt.Errorf("s3blob: put %q: %w", key, short)
		}
		return s.translate("put", key, err)
	}
	return nil
}

// remaining returns the current offset of rs and the bytes left after it.
func remaining(rs io.ReadSeeker) (start, n int64, err error) {
	start, err = rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, 0, err
	}
	end, err := rs.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, 0, err
	}
	if _, err := rs.Seek(start, io.SeekStart); err != nil {
		return 0, 0, err
	}
	return start, end - start, nil
}

// Get opens the object at key. A missing key wraps edge.ErrNotExist. The
// body stays tied to ctx: cancelling ctx ends the read.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(obj),
	})
	if err != nil {
		return nil, s.translate("get", key, err)
	}
	return out.Body, nil
}

// Exists reports whether an object is stored at key (HeadObject).
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	obj, err := s.object(key)
	if err != nil {
		return false, err
	}
	_, err = s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(obj),
	})
	if err != nil {
		err = s.translate("exists", key, err)
		if errors.Is(err, edge.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Delete removes the object at key. A missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	obj, err := s.object(key)
	if err != nil {
		return err
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(obj),
	})
	if err != nil {
		err = s.translate("delete", key, err)
		if errors.Is(err, edge.ErrNotExist) {
			return nil
		}
		return err
	}
	return nil
}

// Error is an S3 failure translated at the boundary: a short, readable
// message (no request ids, no response bodies) that wraps both a sentinel
// (edge.ErrNotExist, ErrAccessDenied, ErrNoSuchBucket) and the SDK's own
// error, for errors.Is and errors.As.
type Error struct {
	Op   string // "put", "get", "exists", "delete", "open bucket", "create bucket"
	Key  string // the blob key, if any
	Code string // the S3 error code ("NoSuchKey", "SignatureDoesNotMatch"), if any
	msg  string
	kind error // a sentinel, or nil
	err  error // the SDK's error
}

func (e *Error) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("s3blob: %s %q: %s", e.Op, e.Key, e.msg)
	}
	return fmt.Sprintf("s3blob: %s: %s", e.Op, e.msg)
}

// Unwrap returns the sentinel (if any) and the SDK's error.
func (e *Error) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

// translate translates an SDK error. Errors that are not S3 answers (the
// context, the network) keep their own message.
func (s *Store) translate(op, key string, err error) error {
	code := apiCode(err)
	status := httpStatus(err)
	e := &Error{Op: op, Key: key, Code: code, err: err}
	switch {
	case code == "NoSuchKey" || (key != "" && (code == "NotFound" || (code == "" && status == 404))):
		e.kind, e.msg = edge.ErrNotExist, edge.ErrNotExist.Error()
	case code == "NoSuchBucket" || (code == "NotFound" && key == ""):
		e.kind = ErrNoSuchBucket
		e.msg = fmt.Sprintf("bucket %q does not exist at %s", s.bucket, s.where)
	case code == "InvalidAccessKeyId":
		e.kind = ErrAccessDenied
		e.msg = fmt.Sprintf("%s does not know the access key (InvalidAccessKeyId): check the access key", s.where)
	case code == "SignatureDoesNotMatch":
		e.kind = ErrAccessDenied
		e.msg = fmt.Sprintf("%s rejected the request signature (SignatureDoesNotMatch): check the secret key", s.where)
	case code == "RequestTimeTooSkewed":
		e.kind = ErrAccessDenied
		e.msg = fmt.Sprintf("%s rejected the request time (RequestTimeTooSkewed): this machine's clock is off", s.where)
	case code == "AccessDenied" || code == "Forbidden" || status == 403:
		e.kind = ErrAccessDenied
		e.msg = fmt.Sprintf("access denied by %s: the credentials lack permission on bucket %q (see the s3blob docs for the policy)", s.where, s.bucket)
		if code == "" || code == "Forbidden" {
			// A HEAD answer has no body: it may also be a wrong key.
			e.msg = fmt.Sprintf("access denied by %s: check the access key, the secret key and their permissions on bucket %q", s.where, s.bucket)
		}
	default:
		// Not a translated answer: keep the SDK's message, which names
		// the cause (connection refused, context canceled, a 5xx).
		return fmt.Errorf("s3blob: %s: %w", strings.TrimSpace(op+" "+quote(key)), err)
	}
	return e
}

func quote(key string) string {
	if key == "" {
		return ""
	}
	return fmt.Sprintf("%q", key)
}

// apiCode is the S3 error code of err ("NoSuchKey"), or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus is the HTTP status of the S3 answer behind err, or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// sizeError reports a reader whose length is not the size given to Put.
type sizeError struct{ msg string }

func (e *sizeError) Error() string { return e.msg }

// exactReader yields exactly size bytes of r or fails. It fails before
// handing over the last byte when r is too long or too short, so an
// upload of a wrong-sized reader never completes.
type exactReader struct {
	r    io.Reader
	left int64 // bytes still to hand over
	size int64
	done bool
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.done {
		return 0, io.EOF
	}
	if e.left == 0 {
		return 0, e.checkEnd()
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if e.left == 0 {
		// Hold the last bytes back until r is known to end here.
		if err := e.checkEnd(); err != io.EOF {
			return 0, err
		}
		return n, io.EOF
	}
	if err == io.EOF {
		return 0, &sizeError{fmt.Sprintf("reader ended after %d of %d bytes", e.size-e.left, e.size)}
	}
	return n, err
}

// checkEnd returns io.EOF if r has nothing after size bytes.
func (e *exactReader) checkEnd() error {
	var b [1]byte
	for range 100 {
		n, err := e.r.Read(b[:])
		if n > 0 {
			return &sizeError{fmt.Sprintf("reader yields more than %d bytes", e.size)}
		}
		if err == io.EOF {
			e.done = true
			return io.EOF
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}
