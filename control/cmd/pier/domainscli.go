package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// `pier domains add|ls|verify|rm`: a project's custom domains through the
// API (docs/domains.md).

type domainView struct {
	Name       string          `json:"name"`
	State      string          `json:"state"`
	Token      string          `json:"token"`
	Records    []dnsRecordView `json:"records"`
	URL        string          `json:"url"`
	CreatedAt  string          `json:"created_at"`
	VerifiedAt string          `json:"verified_at"`
}

type dnsRecordView struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

func runDomains(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const help = `Usage: pier domains <add|ls|verify|rm> [flags]

Serve the project's production deployment at domains you own. A domain is
added pending; set the DNS records it prints (a TXT record proving you own
it, and a CNAME or A/AAAA records pointing it at the edges), then verify
it: the edges serve it (over HTTPS where they have it) from then on.

  pier domains add www.example.com
  pier domains verify www.example.com
  pier domains ls [--json]
  pier domains rm www.example.com

Run 'pier domains <command> -h' for its flags.
`
	if len(args) == 0 {
		fmt.Fprint(stderr, help)
		return errUsage
	}
	switch args[0] {
	case "add":
		return runDomainsAdd(ctx, args[1:], stdout, stderr)
	case "ls", "list":
		return runDomainsList(ctx, args[1:], stdout, stderr)
	case "verify":
		return runDomainsVerify(ctx, args[1:], stdout, stderr)
	case "rm", "remove":
		return runDomainsRm(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, help)
		return nil
	}
	fmt.Fprintf(stderr, "pier domains: unknown command %q\n\n%s", args[0], help)
	return errUsage
}

// domainCommand parses a command that takes one DOMAIN and returns the
// project, the domain and a client.
func domainCommand(fs *flag.FlagSet, stderr io.Writer, project string, c conn) (string, string, *apiClient, error) {
	if fs.NArg() != 1 || strings.TrimSpace(fs.Arg(0)) == "" {
		fmt.Fprintln(stderr, "the DOMAIN is required (like www.example.com)")
		fs.Usage()
		return "", "", nil, errUsage
	}
	p, err := projectName(project)
	if err != nil {
		return "", "", nil, err
	}
	client, err := c.client()
	if err != nil {
		return "", "", nil, err
	}
	return p, strings.ToLower(strings.TrimSuffix(strings.TrimSpace(fs.Arg(0)), ".")), client, nil
}

func domainsPath(project string) string {
	return "/v1/projects/" + url.PathEscape(project) + "/domains"
}

// domainErr adds what to do to the API's domain errors.
func domainErr(err error, project, domain string) error {
	var e *apiError
	if !errors.As(err, &e) {
		return err
	}
	switch {
	case e.Status == http.StatusNotFound && strings.Contains(e.Message, "not enabled"):
		return fmt.Errorf("%s: this server has no custom domains", e.Message)
	case e.Status == http.StatusNotFound && !strings.HasPrefix(e.Message, "project "):
		return fmt.Errorf("%s has no domain %s (`pier domains ls` lists them; `pier domains add %s` adds it)", project, domain, domain)
	}
	return err
}

func printRecords(w io.Writer, d domainView) {
	tw := table(w)
	first := true
	for _, r := range d.Records {
		note := ""
		switch {
		case r.Type == "TXT":
			note = "proves you own the domain"
		case first:
			note = "points it at the edges (one of these)"
			first = false
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.Type, r.Name, r.Value, note)
	}
	tw.Flush()
}

func runDomainsAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("domains add", "Add a custom domain to the project: pier domains add [flags] DOMAIN.\n"+
		"It starts pending; the DNS records to set are printed.", stderr)
	cn := addConn(fs)
	project := fs.String("project", "", "project (PIER_PROJECT; default: pier.json)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if err := parseN(fs, args, 1); err != nil {
		return err
	}
	p, domain, c, err := domainCommand(fs, stderr, *project, cn)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do(ctx, "POST", domainsPath(p), map[string]string{"name": domain}, &raw); err != nil {
		return domainErr(err, p, domain)
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var d domainView
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added %s to %s (%s)\n\nSet these DNS records:\n", d.Name, p, d.State)
	printRecords(stdout, d)
	fmt.Fprintf(stdout, "\nthen run: pier domains verify %s\n", d.Name)
	return nil
}

func runDomainsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("domains ls", "List the project's custom domains, their verification state and TXT record.", stderr)
	cn := addConn(fs)
	project := fs.String("project", "", "project (PIER_PROJECT; default: pier.json)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if err := parseN(fs, args, 0); err != nil {
		return err
	}
	p, c, err := cn.forProject(*project)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do(ctx, "GET", domainsPath(p), nil, &raw); err != nil {
		return domainErr(err, p, "")
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var list struct {
		Domains []domainView `json:"domains"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	if len(list.Domains) == 0 {
		fmt.Fprintf(stderr, "%s has no custom domains: `pier domains add DOMAIN` adds one\n", p)
		return nil
	}
	w := table(stdout)
	fmt.Fprintln(w, "DOMAIN\tSTATE\tVERIFIED\tTXT RECORD")
	for _, d := range list.Domains {
		txt := "-"
		for _, r := range d.Records {
			if r.Type == "TXT" {
				txt = r.Name + " = " + r.Value
				break
			}
		}
		verified := "-"
		if d.VerifiedAt != "" {
			verified = ago(d.VerifiedAt)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", d.Name, d.State, verified, txt)
	}
	return w.Flush()
}

func runDomainsVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("domains verify", "Check a domain's DNS records now: pier domains verify [flags] DOMAIN.\n"+
		"Verified, the edges serve the production deployment at it; otherwise the reason\n"+
		"is printed and nothing changes.", stderr)
	cn := addConn(fs)
	project := fs.String("project", "", "project (PIER_PROJECT; default: pier.json)")
	if err := parseN(fs, args, 1); err != nil {
		return err
	}
	p, domain, c, err := domainCommand(fs, stderr, *project, cn)
	if err != nil {
		return err
	}
	var d domainView
	if err := c.do(ctx, "POST", domainsPath(p)+"/"+url.PathEscape(domain)+"/verify", map[string]any{}, &d); err != nil {
		var e *apiError
		if errors.As(err, &e) && e.Status == http.StatusUnprocessableEntity {
			return fmt.Errorf("%s is not verified (%s): %s", domain, e.Code, e.Message)
		}
		return domainErr(err, p, domain)
	}
	fmt.Fprintf(stdout, "%s is verified: every edge serves %s's production deployment at %s\n", d.Name, p, d.URL)
	return nil
}

func runDomainsRm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("domains rm", "Remove a custom domain: pier domains rm [flags] DOMAIN. The edges stop serving it.", stderr)
	cn := addConn(fs)
	project := fs.String("project", "", "project (PIER_PROJECT; default: pier.json)")
	if err := parseN(fs, args, 1); err != nil {
		return err
	}
	p, domain, c, err := domainCommand(fs, stderr, *project, cn)
	if err != nil {
		return err
	}
	if err := c.do(ctx, "DELETE", domainsPath(p)+"/"+url.PathEscape(domain), nil, nil); err != nil {
		return domainErr(err, p, domain)
	}
	fmt.Fprintf(stdout, "removed %s from %s\n", domain, p)
	return nil
}
