package osdpvectors

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/kioskedge/kioskedge/firmware-specs/hexjson"
)

//go:embed vectors.json
var raw []byte

// JSON returns the embedded vectors file as is.
func JSON() []byte { return append([]byte(nil), raw...) }

// Hex is a byte string written as lowercase hex in the JSON.
type Hex = hexjson.Hex

// CRC is one CRC-16/AUG-CCITT example.
type CRC struct {
	Input Hex    `json:"input"`
	CRC   uint16 `json:"crc"`
}

// Checksum is one 8-bit checksum example.
type Checksum struct {
	Input    Hex  `json:"input"`
	Checksum byte `json:"checksum"`
}

// Packet is a well-formed plaintext packet and its fields.
type Packet struct {
	Name  string `json:"name"`
	Note  string `json:"note"`
	Hex   Hex    `json:"hex"`
	Addr  byte   `json:"addr"` // without the reply bit
	Reply bool   `json:"reply"`
	Seq   byte   `json:"sqn"`
	CRC   bool   `json:"crc"`  // CRC-16 (true) or checksum
	SCB   Hex    `json:"scb"`  // whole security control block, empty when absent
	Code  byte   `json:"code"` // command or reply code
	Data  Hex    `json:"data"`
	MAC   Hex    `json:"mac"`
}

// Malformed is a byte string a decoder must reject with Error, one of
// "truncated", "bad-som", "bad-length", "bad-crc", "bad-checksum", "bad-scb".
type Malformed struct {
	Name  string `json:"name"`
	Hex   Hex    `json:"hex"`
	Error string `json:"error"`
}

// SCBK is a secure channel base key diversified from a master key.
type SCBK struct {
	MasterKey Hex `json:"master_key"`
	CUID      Hex `json:"cuid"`
	SCBK      Hex `json:"scbk"`
}

// Message is one packet of a secure session, in order.
type Message struct {
	Dir       string `json:"dir"` // "cmd" (CP to PD) or "reply"
	Seq       byte   `json:"sqn"`
	Code      byte   `json:"code"`
	PlainData Hex    `json:"plain_data"` // the data before encryption
	Hex       Hex    `json:"hex"`        // the whole packet on the wire
	MAC       Hex    `json:"mac"`        // the 4 MAC bytes sent, empty for the handshake
	MAC16     Hex    `json:"mac16"`      // the full MAC, the next chaining value
}

// Session is a whole secure-channel session between a CP and one PD.
type Session struct {
	Name             string    `json:"name"`
	Addr             byte      `json:"addr"`
	SCBK             Hex       `json:"scbk"`
	SCBKDefault      bool      `json:"scbk_default"` // the handshake uses SCBK-D (install mode)
	RndA             Hex       `json:"rnd_a"`        // the CP's random
	RndB             Hex       `json:"rnd_b"`        // the PD's random
	CUID             Hex       `json:"cuid"`
	SEnc             Hex       `json:"s_enc"`
	SMAC1            Hex       `json:"s_mac1"`
	SMAC2            Hex       `json:"s_mac2"`
	ClientCryptogram Hex       `json:"client_cryptogram"`
	ServerCryptogram Hex       `json:"server_cryptogram"`
	RMACI            Hex       `json:"rmac_i"`
	Messages         []Message `json:"messages"`
}

// Vectors is the whole file.
type Vectors struct {
	CRC16          []CRC       `json:"crc16"`
	Checksum       []Checksum  `json:"checksum"`
	Packets        []Packet    `json:"packets"`
	Malformed      []Malformed `json:"malformed"`
	SCBKFromMaster []SCBK      `json:"scbk_from_master"`
	Secure         []Session   `json:"secure"`
}

// Load decodes the embedded vectors. It fails only if vectors.json is
// broken, which the package's own test catches.
func Load() (*Vectors, error) {
	var v Vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("osdpvectors: %w", err)
	}
	return &v, nil
}

// MustLoad is Load for tests; it panics on a broken file.
func MustLoad() *Vectors {
	v, err := Load()
	if err != nil {
		panic(err)
	}
	return v
}
