// Package github is Pier's side of GitHub: webhook signature checks
// (X-Hub-Signature-256, HMAC-SHA256 compared in constant time), webhook
// event parsing reduced to what Pier acts on (Event), and an HTTP client for
// the commit statuses API (Client), which reports each deployment's state
// and URL back on its commit.
//
// # Webhooks
//
// Each project gets its own webhook secret when it is created (returned
// once by the API, stored sealed). In the repository's settings, add a
// webhook with:
//
//	Payload URL   https://<control>/v1/webhooks/github
//	Content type  application/json
//	Secret        the project's webhook_secret
//	Events        "Pushes" and "Pull requests"
//
// Control finds the project by the payload's repository (the project's
// github_repo, "owner/name"), or by ?project=<name> on the payload URL. A
// delivery whose signature does not verify with the project's secret is
// refused with 401 and changes nothing; a delivery GitHub sends again (the
// same X-GitHub-Delivery) is acted on once.
//
//   - push to the production branch: a production deployment of that
//     commit, live once built;
//   - push to another branch: a preview, served at
//     <branch-slug>.<project>.<base-domain> and at its own
//     <deployment-id>.<project>.<base-domain>;
//   - pull request opened, reopened or synchronized: a preview of the head
//     commit at the branch's URL; from a fork, at pr-<number> instead, with
//     no secrets, and only once an admin approves it
//     (POST /v1/deployments/<id>/approve);
//   - pull request closed, or the branch deleted: the preview URL is
//     retired (the per-deployment URLs stay).
//
// Statuses go to https://api.github.com (Config.BaseURL for GitHub
// Enterprise or tests) with the project's git token, which needs the
// "repo:status" scope (classic) or "Commit statuses: write"
// (fine-grained). The token is never logged nor returned by the API.
//
// It parses webhooks with the standard library; the go-github status
// client is control/github/ghstatus. It imports control; it
// is used by control/api (webhooks) and by control/cmd/pier (the Client, as
// control/deploy's StatusReporter). githubtest is its fake GitHub.
package github
