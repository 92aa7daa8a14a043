package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pierhq/pier/edge/blob/dirblob"
	"github.com/pierhq/pier/edge/blob/s3blob"
	"github.com/pierhq/pier/jobs"
	"github.com/pierhq/pier/jobs/build"
)

// runBuild is the build worker: it reads a jobs.BuildRequest, builds, and
// writes a jobs.BuildResult. The build log goes to stdout.
func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("build", "Run one build: clone, install, build, upload, write the manifest.", stderr)
	reqPath := fs.String("request", "", "path of the JSON build request (required)")
	resPath := fs.String("result", "-", "path to write the JSON build result; - prints it as the last stdout line, prefixed \"PIER_RESULT \"")
	blobDir := fs.String("blob-dir", "", "local object store directory (the embedded default)")
	s3Endpoint := fs.String("s3-endpoint", "", "S3-compatible object store URL (instead of --blob-dir)")
	s3Bucket := fs.String("s3-bucket", "", "S3 bucket")
	s3Region := fs.String("s3-region", "us-east-1", "S3 region")
	s3Prefix := fs.String("s3-prefix", "", "key prefix inside the bucket")
	s3Access := fs.String("s3-access-key", "", "S3 access key (the secret comes from PIER_S3_SECRET_KEY)")
	workDir := fs.String("work-dir", os.TempDir(), "scratch directory for checkouts")
	sandbox := fs.String("sandbox", "auto", "auto (bubblewrap when installed), bwrap, or none")
	hide := fs.String("hide", "", "comma-separated directories the build must not see")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *reqPath == "" || (*blobDir == "") == (*s3Endpoint == "") {
		fmt.Fprintln(stderr, "--request and one of --blob-dir or --s3-endpoint are required")
		fs.Usage()
		return errUsage
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(*reqPath)
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	var req jobs.BuildRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return fmt.Errorf("read request %s: %w", *reqPath, err)
	}
	var blobs build.Uploader
	if *s3Endpoint != "" {
		blobs, err = s3blob.New(ctx, s3blob.Config{Endpoint: *s3Endpoint, Bucket: *s3Bucket, Region: *s3Region,
			Prefix: *s3Prefix, AccessKey: *s3Access, SecretKey: os.Getenv("PIER_S3_SECRET_KEY"), Logger: logger})
	} else {
		blobs, err = dirblob.New(*blobDir)
	}
	if err != nil {
		return err
	}
	var hidden []string
	for _, h := range strings.Split(*hide, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hidden = append(hidden, h)
		}
	}
	res := build.Run(ctx, build.Config{
		WorkDir:  *workDir,
		Sandbox:  *sandbox,
		HideDirs: hidden,
		Log:      stdout,
		Logger:   logger,
	}, blobs, req)
	switch *resPath {
	case "", "-":
		// The result is the last line of stdout, after the build log, so a
		// runner that only sees the task's output (Nomad) can read it.
		out, err := json.Marshal(res)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s%s\n", jobs.ResultMarker, out)
		return err
	default:
		out, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(*resPath, out, 0o600)
	}
}
