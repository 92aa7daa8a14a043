package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/robfig/cron/v3"

	"github.com/pierhq/pier/edge"
)

// ConfigFile is the optional project file at the repository root that
// names the deployment's server code:
//
//	{"server": "dist/server.js", "functions": {"/api/*": "dist/api.js"}}
//
// Paths are relative to the repository root and must name files of the
// output directory. Without it, a _worker.js at the root of the output
// (the Cloudflare Pages convention) is the server entry.
const ConfigFile = "pier.json"

// WorkerFile is the conventional server entry at the output root.
const WorkerFile = "_worker.js"

// maxConfigFile bounds pier.json.
const maxConfigFile = 1 << 20

type pierConfig struct {
	Server    string            `json:"server"`
	Functions map[string]string `json:"functions"`
	Schedules []edge.Schedule   `json:"schedules"`
	Queues    []edge.Queue      `json:"queues"`
}

// markQueues validates pier.json's queues into m.Queues.
func (b *builder) markQueues(cfg *pierConfig, m *edge.Manifest) error {
	if len(cfg.Queues) == 0 {
		return nil
	}
	if m.Server == nil {
		return public(ConfigFile+": queues need a server entry (\"server\" or a _worker.js) whose exports consume them", errors.New("queues without server"))
	}
	seen := map[string]bool{}
	for i, q := range cfg.Queues {
		bad := func(why string) error {
			return public(fmt.Sprintf("%s: queue %d (%q): %s", ConfigFile, i+1, q.Name, why), errors.New("bad queue"))
		}
		switch {
		case q.Name == "" || len(q.Name) > 64 || strings.ContainsFunc(q.Name, func(r rune) bool {
			return !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}):
			return bad("a name is 1 to 64 letters, digits, '-' or '_'")
		case seen[q.Name]:
			return bad("declared twice")
		case q.BatchSize < 0 || q.BatchSize > 100:
			return bad("batch_size is 1 to 100")
		case q.MaxAttempts < 0 || q.MaxAttempts > 100:
			return bad("max_attempts is 1 to 100")
		case q.RetryDelay < 0 || q.RetryDelay > 3600:
			return bad("retry_delay is 1 to 3600 seconds")
		case q.VisibilityTimeout < 0 || q.VisibilityTimeout > 12*3600:
			return bad("visibility_timeout is 1 to 43200 seconds")
		}
		seen[q.Name] = true
		m.Queues = append(m.Queues, q)
		d := q.Defaults()
		b.log.Printf("==> Queue %s -> %s (batches of %d, %d attempts)", q.Name, d.Function, d.BatchSize, d.MaxAttempts)
	}
	return nil
}

// cronParser accepts the schedules' cron expressions: 5 fields, or 6 with
// leading seconds, or a descriptor (@hourly); control's scheduler parses
// them the same way.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// markSchedules validates pier.json's schedules into m.Schedules.
func (b *builder) markSchedules(cfg *pierConfig, m *edge.Manifest) error {
	if len(cfg.Schedules) == 0 {
		return nil
	}
	if m.Server == nil {
		return public(ConfigFile+": schedules need a server entry (\"server\" or a _worker.js) whose exports they run", errors.New("schedules without server"))
	}
	if len(cfg.Schedules) > edge.MaxSchedules {
		return public(fmt.Sprintf("%s: at most %d schedules", ConfigFile, edge.MaxSchedules), errors.New("too many schedules"))
	}
	seen := map[string]bool{}
	for i, s := range cfg.Schedules {
		if s.Name == "" {
			s.Name = s.Function
		}
		if s.Name == "" {
			s.Name = "scheduled"
		}
		bad := func(why string) error {
			return public(fmt.Sprintf("%s: schedule %d (%q): %s", ConfigFile, i+1, s.Name, why), errors.New("bad schedule"))
		}
		if len(s.Name) > 64 || strings.ContainsFunc(s.Name, func(r rune) bool {
			return !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) {
			return bad("a name is 1 to 64 letters, digits, '-' or '_'")
		}
		if seen[s.Name] {
			return bad("two schedules have this name: give each a \"name\"")
		}
		seen[s.Name] = true
		if _, isRate, err := edge.ParseRate(s.Cron); isRate {
			if err != nil {
				return bad(err.Error())
			}
		} else if _, err := cronParser.Parse(s.Cron); err != nil {
			return bad(fmt.Sprintf("cron %q: %v (want 5 fields like \"*/5 * * * *\", or rate(1 hour))", s.Cron, err))
		}
		m.Schedules = append(m.Schedules, s)
		b.log.Printf("==> Schedule %s: %s -> %s", s.Name, s.Cron, cmpOr(s.Function, "scheduled"))
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// markCode sets m.Server and m.Functions from pier.json, else from a
// _worker.js at the output root. The files are already in m.Files (they
// were uploaded like every output file); the edge runs them and never
// serves them as files.
func (b *builder) markCode(repo *os.Root, outDir string, m *edge.Manifest) error {
	var cfg pierConfig
	data, err := readLimited(repo, ConfigFile, maxConfigFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return public(ConfigFile+" could not be read", err)
	default:
		if err := json.Unmarshal(data, &cfg); err != nil {
			return public(ConfigFile+" is not valid JSON", err)
		}
	}

	if cfg.Server == "" {
		if _, ok := m.Files[WorkerFile]; ok {
			cfg.Server = path.Join(outDir, WorkerFile)
		}
	}
	if cfg.Server != "" {
		name, err := codePath(cfg.Server, outDir, m, "server entry")
		if err != nil {
			return err
		}
		m.Server = &edge.ServerEntry{Entry: name}
		b.log.Printf("==> Server entry: %s", name)
	}
	routes := slices.Sorted(func(yield func(string) bool) {
		for r := range cfg.Functions {
			if !yield(r) {
				return
			}
		}
	})
	for _, route := range routes {
		if err := edge.ValidRoute(route); err != nil {
			return public(fmt.Sprintf("%s: invalid function route %q: use a path such as /api/hello or /api/*", ConfigFile, route), err)
		}
		name, err := codePath(cfg.Functions[route], outDir, m, "function "+route)
		if err != nil {
			return err
		}
		if m.Functions == nil {
			m.Functions = make(map[string]string)
		}
		m.Functions[route] = name
		b.log.Printf("==> Function %s: %s", route, name)
	}
	if err := b.markSchedules(&cfg, m); err != nil {
		return err
	}
	return b.markQueues(&cfg, m)
}

// codePath maps a repository path from pier.json to the manifest path of
// that file in the output directory.
func codePath(p, outDir string, m *edge.Manifest, what string) (string, error) {
	clean := path.Clean(strings.TrimPrefix(p, "./"))
	bad := func(why string) error {
		return public(fmt.Sprintf("%s: %s %q %s", ConfigFile, what, p, why), errors.New("bad code path"))
	}
	if !fs.ValidPath(clean) || clean == "." || strings.ContainsRune(p, '\\') {
		return "", bad("must be a relative path inside the repository")
	}
	name := clean
	if outDir != "." {
		rel, ok := strings.CutPrefix(clean, outDir+"/")
		if !ok {
			return "", bad(fmt.Sprintf("is not in the output directory %q: the build must write it there", outDir))
		}
		name = rel
	}
	if _, ok := m.Files[name]; !ok {
		return "", bad(fmt.Sprintf("is not a file of the output directory %q after the build", outDir))
	}
	return name, nil
}

// readLimited reads a regular file of root, up to limit bytes.
func readLimited(root *os.Root, name string, limit int64) ([]byte, error) {
	fi, err := root.Stat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return root.ReadFile(name)
}
