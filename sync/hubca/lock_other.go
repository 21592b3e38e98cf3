//go:build !unix

package hubca

import "errors"

// lockDir: the CA's state lock needs flock; the hub runs on Linux.
func lockDir(string) (func(), error) {
	return nil, errors.New("hubca: the CA state lock is only implemented on unix")
}
