package edge

import "strings"

// FlatSeparator joins a deployment, stage or preview label to its project
// in a flat host name: <label>--<project>.<base>. Project and sandbox
// names may not contain it.
const FlatSeparator = "--"

// HostNames names the hosts the edges serve a project at, under the base
// domain. Nested names (the default) put the label one level under the
// project: <label>.<project>.<base>. Flat names keep every host one label
// under the base, <label>--<project>.<base>, so one wildcard certificate
// for *.<base> covers every project, preview, stage and deployment URL.
// Edges route both forms whatever the setting; it picks the form control
// reports.
type HostNames struct {
	Base string // the base domain, e.g. pier.example.com
	Flat bool
}

// Project is the host of the project's production site.
func (h HostNames) Project(project string) string {
	return strings.ToLower(project) + "." + h.Base
}

// Sub is the host of a deployment ID, stage alias (staging,
// sandbox-<name>) or preview alias of the project.
func (h HostNames) Sub(label, project string) string {
	sep := "."
	if h.Flat {
		sep = FlatSeparator
	}
	return label + sep + strings.ToLower(project) + "." + h.Base
}
