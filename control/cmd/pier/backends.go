package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/config"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/dispatch/localdispatch"
	"github.com/pierhq/pier/control/dispatch/nomaddispatch"
	"github.com/pierhq/pier/control/secrets/localkeyring"
	"github.com/pierhq/pier/control/secrets/vaulttransit"
	"github.com/pierhq/pier/control/store/pgstore"
	"github.com/pierhq/pier/control/store/sqlitestore"
	"github.com/pierhq/pier/edge/blob/dirblob"
	"github.com/pierhq/pier/edge/blob/s3blob"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/coord/consulkv"
	"github.com/pierhq/pier/edge/coord/raftkv"
	"github.com/pierhq/pier/jobs/specs"
)

// blobStore is what the roles need of the object store: the edge reads,
// the builder writes.
type blobStore interface {
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Exists(ctx context.Context, key string) (bool, error)
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	Delete(ctx context.Context, key string) error
}

// backends are the adapters a config selects: the production one where a
// section is set, the embedded twin where it is not.
type backends struct {
	store      control.Store     // control only
	sealer     deploy.Sealer     // control only
	dispatcher deploy.Dispatcher // control only
	blobs      blobStore
	kv         coord.KV
	consul     *consulkv.Store           // set when kv is Consul
	nomad      *nomaddispatch.Dispatcher // set when builds run on Nomad
	// buildArgs are the object-store flags a `pier build` worker needs,
	// buildEnv its secrets.
	buildArgs []string
	buildEnv  []string
	closers   []func() error
}

func (b *backends) Close() error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		errs = append(errs, b.closers[i]())
	}
	return errors.Join(errs...)
}

// openBackends builds every adapter rt selects. The caller closes them.
func openBackends(ctx context.Context, rt *config.Runtime, logger *slog.Logger) (_ *backends, err error) {
	b := &backends{}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if err := os.MkdirAll(rt.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}

	// Object store.
	switch {
	case rt.S3 != nil:
		s, err := s3blob.New(ctx, s3blob.Config{
			Endpoint: rt.S3.Endpoint, Region: rt.S3.Region, Bucket: rt.S3.Bucket, Prefix: rt.S3.Prefix,
			AccessKey: rt.S3.AccessKey, SecretKey: rt.S3.SecretKey, Logger: logger,
		})
		if err != nil {
			return nil, err
		}
		b.blobs = s
		// The secret key reaches workers through PIER_S3_SECRET_KEY, not argv.
		b.buildArgs = []string{"--s3-endpoint", rt.S3.Endpoint, "--s3-bucket", rt.S3.Bucket,
			"--s3-region", rt.S3.Region, "--s3-prefix", rt.S3.Prefix, "--s3-access-key", rt.S3.AccessKey}
		b.buildEnv = []string{"PIER_S3_SECRET_KEY=" + rt.S3.SecretKey}
	default:
		dir := filepath.Join(rt.DataDir, "blobs")
		s, err := dirblob.New(dir)
		if err != nil {
			return nil, err
		}
		b.blobs = s
		b.buildArgs = []string{"--blob-dir", dir}
	}

	// Coordination.
	switch {
	case rt.Consul != nil:
		s, err := consulkv.New(consulkv.Config{Address: rt.Consul.Address, Token: rt.Consul.Token,
			Datacenter: rt.Consul.Datacenter, KeyPrefix: consulPrefix(rt.Consul.Prefix), Logger: logger})
		if err != nil {
			return nil, err
		}
		b.kv, b.consul = s, s
	default:
		kv, err := raftkv.Open(raftkv.Config{Dir: filepath.Join(rt.DataDir, "raft"), Logger: logger})
		if err != nil {
			return nil, err
		}
		b.kv = kv
		b.closers = append(b.closers, kv.Close)
	}

	// Secrets.
	switch {
	case rt.Vault != nil:
		v, err := vaulttransit.New(ctx, vaulttransit.Config{Address: rt.Vault.Address, Token: rt.Vault.Token,
			Mount: rt.Vault.Mount, Key: rt.Vault.Key, CreateKey: rt.Vault.CreateKey, Logger: logger})
		if err != nil {
			return nil, err
		}
		b.sealer = v
	default:
		path := filepath.Join(rt.DataDir, "keyring")
		k, err := localkeyring.Open(path)
		if err != nil {
			return nil, err
		}
		if rt.RunControl {
			logger.Warn("secrets are encrypted with a local key file (dev only): anyone who can read it can read them; configure vault for production", "key", path)
		}
		b.sealer = k
	}

	if !rt.RunControl {
		return b, nil
	}

	// Metadata.
	switch {
	case rt.Postgres != nil:
		s, err := pgstore.Open(ctx, rt.Postgres.DSN, logger)
		if err != nil {
			return nil, err
		}
		b.store = s
		b.closers = append(b.closers, s.Close)
	default:
		s, err := sqlitestore.Open(ctx, filepath.Join(rt.DataDir, "control.db"), logger)
		if err != nil {
			return nil, err
		}
		b.store = s
		b.closers = append(b.closers, s.Close)
	}

	// Builds.
	switch {
	case rt.Nomad != nil:
		n := rt.Nomad
		env := map[string]string{}
		for _, kv := range b.buildEnv {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		spec, err := specs.Render(specs.BuildVars{
			Driver: n.Driver, Image: n.Image, PierPath: n.PierPath,
			Args: append(append([]string{}, b.buildArgs...), "--work-dir=${NOMAD_TASK_DIR}/work", "--sandbox", rt.Control.Sandbox),
			CPU:  n.CPU, MemoryMB: n.MemoryMB, Datacenters: n.Datacenters, NodePool: n.NodePool, Namespace: n.Namespace,
			Env: env,
		})
		if err != nil {
			return nil, err
		}
		d, err := nomaddispatch.New(nomaddispatch.Config{Address: n.Address, Token: n.Token, Region: n.Region,
			Namespace: n.Namespace, JobSpec: spec, JobID: n.JobID, Logger: logger})
		if err != nil {
			return nil, err
		}
		if err := d.Register(ctx); err != nil {
			return nil, fmt.Errorf("register the build job with nomad: %w", err)
		}
		b.dispatcher, b.nomad = d, d
		b.closers = append(b.closers, func() error { d.Close(); return nil })
	default:
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own executable: %w", err)
		}
		argv := append([]string{exe, "build"}, b.buildArgs...)
		argv = append(argv, "--work-dir", filepath.Join(os.TempDir(), "pier-builds"),
			"--sandbox", rt.Control.Sandbox, "--hide", hiddenFromBuilds(rt.DataDir))
		b.dispatcher = localdispatch.New(localdispatch.Config{Command: argv, Env: b.buildEnv, Logger: logger})
	}
	return b, nil
}

// hiddenFromBuilds lists what a local build must not see: Pier's data dir
// (keys, database) and the credentials in the builder's home.
func hiddenFromBuilds(dataDir string) string {
	hide := dataDir
	if home, err := os.UserHomeDir(); err == nil {
		for _, d := range []string{".ssh", ".aws", ".gnupg", ".docker", ".kube", ".netrc", ".git-credentials", ".config/gcloud"} {
			p := filepath.Join(home, d)
			if _, err := os.Lstat(p); err == nil {
				hide += "," + p
			}
		}
	}
	return hide
}

// consulPrefix makes a configured prefix a key folder ("staging" →
// "staging/").
func consulPrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}
