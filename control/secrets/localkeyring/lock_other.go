//go:build !unix

package localkeyring

// lockFile is a no-op where flock is missing: the in-process mutex still
// serialises changes, but processes sharing a key file may race.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
