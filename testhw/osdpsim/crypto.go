package osdpsim

import (
	"crypto/aes"
	"crypto/cipher"
)

// The secure channel from the PD's side (osdp.md §6), written apart from
// the driver's.

var scbkD = []byte("0123456789:;<=>?") // 0x30 … 0x3F

func aesBlock(key, in []byte) []byte {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys here are always 16 bytes
	}
	out := make([]byte, 16)
	b.Encrypt(out, in)
	return out
}

type scKeys struct{ enc, mac1, mac2 []byte }

func sessionKeys(scbk, rndA []byte) scKeys {
	derive := func(kind byte) []byte {
		in := make([]byte, 16)
		in[0], in[1] = 1, kind
		copy(in[2:], rndA[:6])
		return aesBlock(scbk, in)
	}
	return scKeys{enc: derive(0x82), mac1: derive(0x01), mac2: derive(0x02)}
}

func cat(a, b []byte) []byte { return append(append([]byte{}, a...), b...) }

func notBytes(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = ^c
	}
	return out
}

func padMsg(b []byte) []byte {
	out := append(append([]byte{}, b...), 0x80)
	for len(out)%16 != 0 {
		out = append(out, 0)
	}
	return out
}

func cbcMAC(k scKeys, iv, msg []byte) []byte {
	if len(msg)%16 != 0 {
		msg = padMsg(msg)
	}
	chain := append([]byte{}, iv...)
	for i := 0; i < len(msg); i += 16 {
		key := k.mac1
		if i+16 == len(msg) {
			key = k.mac2
		}
		x := make([]byte, 16)
		for j := range 16 {
			x[j] = chain[j] ^ msg[i+j]
		}
		chain = aesBlock(key, x)
	}
	return chain
}

func encrypt(k scKeys, lastMAC, data []byte) []byte {
	buf := padMsg(data)
	b, _ := aes.NewCipher(k.enc) // 16-byte key
	cipher.NewCBCEncrypter(b, notBytes(lastMAC)).CryptBlocks(buf, buf)
	return buf
}

func decrypt(k scKeys, lastMAC, data []byte) ([]byte, bool) {
	if len(data) == 0 || len(data)%16 != 0 {
		return nil, false
	}
	buf := append([]byte{}, data...)
	b, _ := aes.NewCipher(k.enc) // 16-byte key
	cipher.NewCBCDecrypter(b, notBytes(lastMAC)).CryptBlocks(buf, buf)
	end := len(buf)
	for end > len(buf)-16 && buf[end-1] == 0 {
		end--
	}
	if buf[end-1] != 0x80 {
		return nil, false
	}
	return buf[:end-1], true
}
