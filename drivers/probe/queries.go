package probe

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/kioskedge/kioskedge/drivers/escpos"
	"github.com/kioskedge/kioskedge/drivers/idcard"
	"github.com/kioskedge/kioskedge/drivers/osdp"
	"github.com/kioskedge/kioskedge/drivers/sscard"
)

// Query is one byte sequence the package may send, and what it asks.
type Query struct {
	Kind  Kind   // the device it is meant for
	Name  string // e.g. "DLE EOT 1", "osdp_ID to 0x7F"
	Bytes []byte
}

// Queries returns every query the package may send, each a read-only status
// request. Tests check that devices received nothing else.
func Queries() []Query {
	qs := []Query{
		{IDCard, "SAM status", idcardRequest},
		{SSCard, "CARD STATUS", sscardRequest},
		{OSDP, "osdp_ID to 0x7F", osdpRequest},
	}
	for n := byte(1); n <= 4; n++ {
		qs = append(qs, Query{ESCPOS, fmt.Sprintf("DLE EOT %d", n), escpos.StatusQuery(n)})
	}
	return qs
}

// The requests, built once with the drivers' codecs.
var (
	idcardRequest = idcard.AppendRequest(nil, idcard.CmdSAMStatus, nil)
	sscardRequest = must(sscard.AppendFrame(nil, []byte{sscard.CmdCardStatus}))
	// osdp_ID, standard report, at SQN 0 with CRC (osdp.md §4.1). SQN 0
	// restarts the reader's link state; a reader in use by a control panel
	// is on a port kioskd holds, which is never probed.
	osdpRequest = must(osdp.Encode(osdp.Packet{Addr: osdp.Broadcast, CRC: true, Code: osdp.CmdID, Data: []byte{0x00}}))
)

func must(b []byte, err error) []byte {
	if err != nil {
		panic("probe: building a query: " + err.Error())
	}
	return b
}

// askStep asks one kind of device whether it is there.
func askStep(ctx context.Context, pr *prober, kind Kind) (Result, bool, error) {
	switch kind {
	case OSDP:
		return ask(ctx, pr, OSDP, osdpRequest)
	case IDCard:
		return ask(ctx, pr, IDCard, idcardRequest)
	case SSCard:
		return ask(ctx, pr, SSCard, sscardRequest)
	}
	return askESCPOS(ctx, pr)
}

// escposSettle is how long after a printer's status byte the probe listens
// for more: a printer sends exactly one byte per query, a talking device
// more.
const escposSettle = 30 * time.Millisecond

// askESCPOS sends DLE EOT 1; when exactly one status byte comes back it
// reads the other three statuses (all real-time queries, escpos.md §5).
func askESCPOS(ctx context.Context, pr *prober) (Result, bool, error) {
	var st escpos.Status
	for n := byte(1); n <= 4; n++ {
		b, ok, err := askStatusByte(ctx, pr, n)
		if err != nil || !ok {
			return Result{}, false, err
		}
		// askStatusByte checked the fixed bits; DecodeStatus cannot fail.
		_ = escpos.DecodeStatus(&st, n, b)
	}
	return Result{Kind: ESCPOS, Detail: "printer status: " + st.String()}, true, nil
}

func askStatusByte(ctx context.Context, pr *prober, n byte) (byte, bool, error) {
	if err := pr.send(escpos.StatusQuery(n)); err != nil {
		return 0, false, err
	}
	start := time.Now()
	got, err := pr.listen(ctx, nil, start, pr.wait, func(b []byte) bool { return len(b) > 0 })
	if err != nil || len(got) == 0 {
		return 0, false, err
	}
	got, err = pr.listen(ctx, got, time.Now(), escposSettle, func(b []byte) bool { return len(b) > 1 })
	if err != nil {
		return 0, false, err
	}
	b, ok := escposReply(bytes.TrimPrefix(got, pr.last)) // an adapter's echo first
	if !ok {
		pr.heard(got)
	}
	return b, ok, nil
}

// escposReply: a printer's reply is one byte with the status fixed bits.
func escposReply(got []byte) (byte, bool) {
	if len(got) != 1 || !escpos.StatusOK(got[0]) {
		return 0, false
	}
	return got[0], true
}

// ask sends kind's request q and reads until its reply is recognised or the
// reply wait ends. Bytes that do not answer it may still be a late answer
// to a query sent earlier at this rate (a device slower than the wait):
// that identifies the device too. Otherwise they count as unasked.
func ask(ctx context.Context, pr *prober, kind Kind, q []byte) (Result, bool, error) {
	if err := pr.send(q); err != nil {
		return Result{}, false, err
	}
	pr.asked[kind] = true
	got, err := pr.listen(ctx, nil, time.Now(), pr.wait, func(b []byte) bool { _, ok := recognise(kind, b); return ok })
	if err != nil {
		return Result{}, false, err
	}
	if r, ok := recognise(kind, got); ok {
		return r, true, nil
	}
	for _, k := range []Kind{OSDP, IDCard, SSCard} {
		if k != kind && pr.asked[k] {
			if r, ok := recognise(k, got); ok {
				return r, true, nil
			}
		}
	}
	pr.heard(got)
	return Result{}, false, nil
}

// recognise looks in got for a reply of kind (OSDP, IDCard or SSCard).
func recognise(kind Kind, got []byte) (Result, bool) {
	switch kind {
	case OSDP:
		if p, ok := osdpReply(got); ok {
			return Result{Kind: OSDP, Addr: int(p.Addr), Detail: osdpDetail(p)}, true
		}
	case IDCard:
		if r, ok := idcardReply(got); ok {
			return Result{Kind: IDCard, Detail: fmt.Sprintf("SAM status %02X: %s", r.SW3, idcard.StatusText(r.SW3))}, true
		}
	case SSCard:
		if status, data, ok := sscardReply(got); ok {
			return Result{Kind: SSCard, Detail: sscardDetail(status, data)}, true
		}
	}
	return Result{}, false
}

// osdpReply finds the first reply packet in got. Packets without the reply
// bit are our own command echoed by a half-duplex adapter (osdp.md §8).
func osdpReply(got []byte) (osdp.Packet, bool) {
	var f osdp.Framer
	f.Write(got)
	for {
		p, _, _, _, ok := f.Next()
		if !ok {
			return osdp.Packet{}, false
		}
		if p.Reply {
			return p, true
		}
	}
}

func osdpDetail(p osdp.Packet) string {
	switch p.Code {
	case osdp.ReplyPDID:
		id, err := osdp.ParseIdentity(p.Data)
		if err != nil {
			return "answered osdp_ID with a short identity"
		}
		return fmt.Sprintf("vendor %02X%02X%02X model %d version %d serial %d firmware %d.%d.%d",
			id.Vendor[0], id.Vendor[1], id.Vendor[2], id.Model, id.Version, id.Serial,
			id.Firmware[0], id.Firmware[1], id.Firmware[2])
	case osdp.ReplyNAK:
		if len(p.Data) > 0 {
			return fmt.Sprintf("answered osdp_ID with NAK %#02x", p.Data[0])
		}
		return "answered osdp_ID with NAK"
	}
	return fmt.Sprintf("answered osdp_ID with reply %#02x", p.Code)
}

// idcardReply finds the first whole response frame in got (idcard.md §7).
func idcardReply(got []byte) (idcard.Response, bool) {
	for len(got) > 0 {
		drop, frame, _ := idcard.Split(got)
		if frame != nil {
			r, err := idcard.DecodeResponse(frame)
			return r, err == nil
		}
		if drop == 0 {
			break
		}
		got = got[drop:]
	}
	return idcard.Response{}, false
}

// sscardReply finds the reply to CARD STATUS in got: a valid frame whose
// payload echoes the command and carries a status byte (sscard.md §1.2).
func sscardReply(got []byte) (status byte, data []byte, ok bool) {
	for len(got) > 0 {
		payload, n, err := sscard.ParseFrame(got)
		if err == nil && len(payload) >= 2 && payload[0] == sscard.CmdCardStatus {
			return payload[1], payload[2:], true
		}
		if n == 0 {
			break
		}
		got = got[n:]
	}
	return 0, nil, false
}

func sscardDetail(status byte, data []byte) string {
	if status != sscard.StatusOK {
		return fmt.Sprintf("reader status %02X", status)
	}
	if len(data) == 0 {
		return "reader ok"
	}
	switch data[0] {
	case 0:
		return "reader ok, no card"
	case 1:
		return "reader ok, card present"
	case 2:
		return "reader ok, card present and powered"
	}
	return fmt.Sprintf("reader ok, card state %02X", data[0])
}
