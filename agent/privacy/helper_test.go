package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"

	"github.com/kioskedge/kioskedge/drivers/credential"
)

// unprefixed is the hash without the domain prefix, to show the prefix is
// part of the input.
func unprefixed(key []byte, c credential.Credential) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(c.Normalized()))
	return hex.EncodeToString(m.Sum(nil)[:HashLen])
}

// pinned was computed outside Go (Python's hmac module) from the inputs
// named in TestKeyedHash.
const pinned = "f6d6f72d132e86af40a6d65cba35eeb6"
