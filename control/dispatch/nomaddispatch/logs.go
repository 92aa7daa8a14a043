package nomaddispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/pierhq/pier/jobs"
)

const resultMarker = jobs.ResultMarker

// maxLine is the longest line held back waiting for its newline; longer
// output is passed on in pieces.
const maxLine = 64 << 10

// output merges the task's stdout and stderr into the build log a line at
// a time, and takes the result line out of stdout. A failing log writer
// never fails the build: later output is dropped.
type output struct {
	mu     sync.Mutex
	w      io.Writer
	failed bool
	closed bool // flushed: later output is ignored

	res        *jobs.BuildResult // from the last result line
	resErr     error             // the last result line did not decode
	resultLast bool              // no stdout line came after the result line
	splitters  []*splitter
}

func newOutput(w io.Writer) *output {
	if w == nil {
		w = io.Discard
	}
	return &output{w: w}
}

// splitter cuts one stream into lines for output.
type splitter struct {
	o      *output
	stdout bool
	buf    []byte
}

func (o *output) splitter(stdout bool) *splitter {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := &splitter{o: o, stdout: stdout}
	o.splitters = append(o.splitters, s)
	return s
}

// write passes every complete line of p on.
func (s *splitter) write(p []byte) {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			break
		}
		s.o.line(s.buf[:i+1], s.stdout)
		s.buf = s.buf[i+1:]
	}
	if len(s.buf) > maxLine {
		s.o.line(s.buf, s.stdout)
		s.buf = nil
	}
	if len(s.buf) == 0 {
		s.buf = nil
	}
}

// resultIsLast reports whether stdout has ended with the result line so
// far.
func (s *splitter) resultIsLast() bool {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	return s.o.resultLast && len(s.buf) == 0
}

// line handles one line (with its newline, if it had one). Called with
// o.mu held.
func (o *output) line(b []byte, stdout bool) {
	if o.closed {
		return
	}
	if stdout {
		if rest, ok := bytes.CutPrefix(b, []byte(resultMarker)); ok {
			var res jobs.BuildResult
			if err := json.Unmarshal(bytes.TrimSpace(rest), &res); err != nil {
				o.res, o.resErr = nil, fmt.Errorf("undecodable result line: %w", err)
			} else {
				o.res, o.resErr = &res, nil
			}
			o.resultLast = true
			return
		}
		if len(bytes.TrimSpace(b)) > 0 {
			o.resultLast = false
		}
	}
	if o.failed {
		return
	}
	if _, err := o.w.Write(b); err != nil {
		o.failed = true
	}
}

// flush passes on the unterminated last line of every stream, ending it
// with a newline. Nothing is written to the log after flush.
func (o *output) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.splitters {
		if len(s.buf) > 0 {
			b := s.buf
			if !bytes.HasPrefix(b, []byte(resultMarker)) {
				b = append(b, '\n')
			}
			o.line(b, s.stdout)
			s.buf = nil
		}
	}
	o.closed = true
}

// result is the worker's result: its last stdout line, which must be a
// result line (the worker prints it last; output after it means the
// worker did not get to report, and an earlier result line was printed by
// the build itself).
func (o *output) result() (*jobs.BuildResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.res == nil && o.resErr == nil:
		return nil, errors.New("no result line")
	case !o.resultLast:
		return nil, errors.New("output followed the result line")
	}
	return o.res, o.resErr
}

// stream reads one of a task's logs (stdout or stderr) into a splitter.
type stream struct {
	d      *Dispatcher
	alloc  *api.Allocation
	task   string
	typ    string // "stdout" or "stderr"
	lines  *splitter
	log    *slog.Logger
	offset int64 // bytes passed on so far, from the start of the first log file
}

// follow streams the log as the task writes it, until stop is closed or
// ctx ends, reconnecting where it left off when the stream breaks.
func (s *stream) follow(ctx context.Context, stop <-chan struct{}) {
	delay := retryMin
	for {
		err := s.read(ctx, true, stop)
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		s.log.Debug("log stream ended early: reconnecting", "log", s.typ, "err", err)
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, retryMax)
	}
}

// drainDelays space the reads of what is left of a log once the task has
// ended: the last bytes may reach the log file a moment after Nomad
// reports the task dead, so stdout is read again until it ends with the
// result line (3s in all), stderr once.
var drainDelays = []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond,
	400 * time.Millisecond, 800 * time.Millisecond, 1500 * time.Millisecond}

// drain reads the log from where follow stopped to its end.
func (s *stream) drain(ctx context.Context) {
	for i, delay := range drainDelays {
		if !sleep(ctx, delay) {
			return
		}
		if err := s.read(ctx, false, nil); err != nil {
			s.log.Debug("read the end of the log", "log", s.typ, "err", err)
		}
		if !s.lines.stdout || s.lines.resultIsLast() {
			if i > 0 {
				s.log.Debug("result line read late", "log", s.typ, "reads", i+1)
			}
			return
		}
	}
}

// read streams the log from s.offset: to its end (follow false), or until
// stop is closed, ctx ends or the stream breaks (follow true).
func (s *stream) read(ctx context.Context, follow bool, stop <-chan struct{}) error {
	rctx, cancel := context.WithCancel(ctx)
	cancelCh := make(chan struct{})
	frames, errs := s.d.fs.Logs(s.alloc, follow, s.task, s.typ, "start", s.offset, cancelCh, s.d.query(rctx, 0))
	ended := false // the API's reader goroutine is done
	defer func() {
		close(cancelCh)
		cancel()
		if !ended {
			// Unblock the reader until it notices the cancellation: it
			// then closes frames or reports an error.
			go func() {
				for {
					select {
					case _, ok := <-frames:
						if !ok {
							return
						}
					case <-errs:
						return
					}
				}
			}()
		}
	}()
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				ended = true
				select {
				case err := <-errs:
					return err
				default:
					return nil
				}
			}
			if len(f.Data) > 0 {
				s.offset += int64(len(f.Data))
				s.lines.write(f.Data)
			}
		case err := <-errs:
			ended = true
			return err
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
