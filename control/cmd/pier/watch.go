package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// watchDir is `pier deploy --watch`: it deploys dir once, then scans it
// every interval and deploys again whenever a file was added, changed or
// removed. Each sync sends only the files the server lacks (the changed
// ones). A failed sync is reported and the watch goes on.
func watchDir(ctx context.Context, c *apiClient, dir string, interval time.Duration, o deployOptions, stdout io.Writer) error {
	hc := newHashCache()
	quiet := o
	quiet.progress = io.Discard
	prev, err := snapshot(dir)
	if err != nil {
		return err
	}
	sync := func(first bool) {
		start := time.Now()
		opts := quiet
		if first {
			opts = o
		}
		d, err := deployDir(ctx, c, dir, hc, opts)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			fmt.Fprintf(o.progress, "sync failed (still watching): %v\n", err)
		default:
			url := d.PreviewURL
			if url == "" {
				url = d.URL
			}
			fmt.Fprintf(stdout, "synced %s in %s: %s\n", d.ID, time.Since(start).Round(time.Millisecond), url)
		}
	}
	sync(true)
	fmt.Fprintf(o.progress, "==> watching %s for changes (Ctrl-C stops)\n", dir)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cur, err := snapshot(dir)
		if err != nil {
			fmt.Fprintf(o.progress, "scan %s: %v\n", dir, err)
			continue
		}
		if sameSnapshot(prev, cur) {
			continue
		}
		prev = cur
		sync(false)
	}
}

type fileStamp struct {
	size  int64
	mtime time.Time
}

// snapshot is the size and modification time of every file under dir that
// a deploy would send.
func snapshot(dir string) (map[string]fileStamp, error) {
	out := map[string]fileStamp{}
	err := walkDeployable(dir, func(p, _ string, info fs.FileInfo) error {
		out[p] = fileStamp{size: info.Size(), mtime: info.ModTime()}
		return nil
	})
	return out, err
}

func sameSnapshot(a, b map[string]fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w.size != v.size || !w.mtime.Equal(v.mtime) {
			return false
		}
	}
	return true
}
