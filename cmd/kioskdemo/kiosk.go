package main

// The virtual kiosk: one kiosk agent opened through cmd/internal/kiosk
// (node + local API) with simulated devices on pty pairs, a demo page
// served on the demo's own loopback port, and a scripted resident that
// walks through the kiosk flow through the local API as the page does.

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/agent/localapi"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/cmd/internal/kiosk"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/sealed"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/escpossim"
	"github.com/kioskedge/kioskedge/testhw/idcardsim"
	"github.com/kioskedge/kioskedge/testhw/pty"
	"github.com/kioskedge/kioskedge/testhw/qrscansim"
	"github.com/kioskedge/kioskedge/testhw/sscardsim"
)

const kioskID = "demo-kiosk-01"

//go:embed page/index.html
var pageFS embed.FS

// hubKeys generates the demo's site key and hub key pair into dir and
// returns the hub's private key (the hub opens sealed values with it).
func hubKeys(dir string) (*sealed.PrivateKey, error) {
	site, err := privacy.NewSiteKey()
	if err != nil {
		return nil, err
	}
	if err := privacy.WriteSiteKey(filepath.Join(dir, "site.key"), site); err != nil {
		return nil, err
	}
	priv, pub, err := sealed.GenerateKeyPair()
	if err != nil {
		return nil, err
	}
	if err := sealed.WritePrivateKey(filepath.Join(dir, "hub.key"), priv); err != nil {
		return nil, err
	}
	if err := sealed.WritePublicKey(filepath.Join(dir, "hub.pub"), pub); err != nil {
		return nil, err
	}
	return priv, nil
}

// maskPersonal masks an opened sealed value in the hub's records API, as
// cmd/hubd does: names keep their first character, numbers their first
// and last four.
func maskPersonal(field, value string) string {
	if strings.HasSuffix(field, "name_sealed") {
		return credential.MaskName(value)
	}
	return credential.Mask(value)
}

// virtualKiosk is the kiosk agent, its simulated devices and the demo page.
type virtualKiosk struct {
	agent *agent
	k     *kiosk.Kiosk
	token string
	api   string // the local API's base URL
	page  string // the demo page's base URL

	idSim *idcardsim.Sim
	ssSim *sscardsim.Sim
	qrSim *qrscansim.Scanner
	prSim *escpossim.Printer
	pairs []*pty.Pair

	pageLn  net.Listener
	pageSrv *http.Server

	simCancel context.CancelFunc
	simWG     sync.WaitGroup
	pageWG    sync.WaitGroup

	mu      sync.Mutex
	seqs    []uint64 // outbox sequences of the transactions that got a 201
	printed atomic.Uint64
	events  atomic.Uint64
}

// openKiosk starts the simulators on pty pairs under dir, the page's
// listener, and opens the kiosk agent (not yet running) against broker.
func openKiosk(dir, broker string, codec *wire.Codec, log *slog.Logger, tune func(*config.Config)) (*virtualKiosk, error) {
	v := &virtualKiosk{idSim: idcardsim.New(), ssSim: sscardsim.New(), qrSim: qrscansim.New(qrscansim.Options{}), prSim: escpossim.New()}
	ok := false
	defer func() {
		if !ok {
			v.close()
		}
	}()
	simCtx, cancel := context.WithCancel(context.Background())
	v.simCancel = cancel
	kdir := filepath.Join(dir, kioskID)
	names := []string{"idcard", "sscard", "qrscan", "printer"}
	paths := map[string]string{}
	for _, n := range names {
		p, err := pty.New(filepath.Join(dir, "tty-"+n))
		if err != nil {
			return nil, fmt.Errorf("kiosk: pty: %w", err)
		}
		v.pairs = append(v.pairs, p)
		paths[n] = p.Path()
	}
	// Each simulator serves its pty's device side; Serve ends with the
	// close error when the pair is closed at exit, which is expected.
	idDev, ssDev, qrDev, prDev := v.pairs[0].Device(), v.pairs[1].Device(), v.pairs[2].Device(), v.pairs[3].Device()
	v.simWG.Go(func() { _ = v.idSim.Serve(idDev) })
	v.simWG.Go(func() { _ = v.ssSim.Serve(ssDev) })
	v.simWG.Go(func() { _ = v.qrSim.Serve(simCtx, qrDev) })
	v.simWG.Go(func() { _ = v.prSim.Serve(simCtx, prDev) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	v.pageLn = ln
	v.page = "http://" + ln.Addr().String()

	cfg, err := config.Parse(fmt.Appendf(nil, `
[agent]
id = %q
data_dir = %q
[hub]
broker = "tcp://127.0.0.1:1"
root = %q
plaintext = true
[localapi]
listen = "127.0.0.1:0"
allowed_origins = [%q]
[privacy]
site_key_file = "site.key"
hub_public_key_file = "hub.pub"
[[device]]
name = "idcard"
kind = "idcard"
path = %q
[device.idcard]
poll_interval = "50ms"
[[device]]
name = "sscard"
kind = "sscard"
path = %q
[device.sscard]
poll_interval = "100ms"
[[device]]
name = "qrscan"
kind = "qrscan"
path = %q
[[device]]
name = "printer"
kind = "escpos"
path = %q
[device.escpos]
poll_interval = "1s"
`, kioskID, kdir, root, v.page, paths["idcard"], paths["sscard"], paths["qrscan"], paths["printer"]), dir)
	if err != nil {
		return nil, fmt.Errorf("kiosk config: %w", err)
	}
	cfg.Hub.Broker = broker
	tune(&cfg)
	k, err := kiosk.Open(node.Options{Config: cfg, Version: "demo", Codec: codec, Logger: log})
	if err != nil {
		return nil, err
	}
	v.k = k
	if v.token, err = localapi.LoadOrCreateToken(cfg.LocalAPI.TokenFile); err != nil {
		return nil, err
	}
	v.api = "http://" + k.API.Addr().String()
	v.agent = &agent{id: kioskID, node: k.Node}
	ok = true
	return v, nil
}

// servePage serves the demo page and its control endpoints until close.
func (v *virtualKiosk) servePage() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := pageFS.ReadFile("page/index.html") // embedded at build time
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(b)
	})
	// This is a demo: the page fetches the local API's bearer token from
	// the demo server. A real kiosk UI reads the token file
	// (localapi.token_file, mode 0600) through its own backend or
	// launcher; never serve the token to whatever asks.
	mux.HandleFunc("GET /demo/config", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"api": v.api, "token": v.token})
	})
	// The simulator controls stand in for the resident's hands; they are
	// the demo's, not the local API's.
	mux.HandleFunc("POST /demo/insert", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("reader") {
		case "sscard":
			v.ssSim.Insert(sscardsim.VectorCard()) // the spec vectors' fake card
		default:
			v.idSim.Insert(idcardsim.Fake()) // a fake person
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /demo/remove", func(w http.ResponseWriter, r *http.Request) {
		v.idSim.Remove()
		v.ssSim.Remove()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /demo/scan", func(w http.ResponseWriter, r *http.Request) {
		if err := v.qrSim.Scan(fmt.Sprintf("APPT-%d", time.Now().Unix()%100000)); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	v.pageSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	v.pageWG.Go(func() { _ = v.pageSrv.Serve(v.pageLn) }) // ErrServerClosed at close
}

// close stops the page server, the simulators and the pty pairs; call it
// after the kiosk agent stopped and was closed.
func (v *virtualKiosk) close() {
	if v.pageSrv != nil {
		_ = v.pageSrv.Close()
	} else if v.pageLn != nil {
		_ = v.pageLn.Close()
	}
	v.pageWG.Wait()
	if v.simCancel != nil {
		v.simCancel()
	}
	for _, p := range v.pairs {
		p.Close()
	}
	v.simWG.Wait()
}

func (v *virtualKiosk) transactions() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.seqs)
}

// accounted is accounted for the kiosk: its outbox also holds device
// records, so only the transactions' own sequences are checked.
func (v *virtualKiosk) accounted(r receivedView, ok bool) (delivered, lost uint64) {
	v.mu.Lock()
	seqs := slices.Clone(v.seqs)
	v.mu.Unlock()
	for _, s := range seqs {
		if ok && s <= r.highest && !slices.ContainsFunc(r.missing, func(m [2]uint64) bool { return m[0] <= s && s <= m[1] }) {
			delivered++
		} else {
			lost++
		}
	}
	return delivered, lost
}

type receivedView struct {
	highest uint64
	missing [][2]uint64
}

// resident walks through the kiosk flow every interval until ctx ends,
// calling the demo's controls and the local API exactly as the page does.
func (v *virtualKiosk) resident(ctx context.Context, interval time.Duration, out io.Writer) {
	c := &client{v: v, hc: &http.Client{Timeout: 15 * time.Second}}
	var wg sync.WaitGroup
	defer wg.Wait()
	wsCtx, stopWS := context.WithCancel(context.Background())
	defer stopWS()
	if ws, err := c.events(); err != nil {
		fmt.Fprintln(out, "kiosk: events:", err)
	} else {
		wg.Go(func() {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
				v.events.Add(1)
			}
		})
		wg.Go(func() { <-wsCtx.Done(); _ = ws.Close() })
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 1; ; i++ {
		if err := c.visit(i); err != nil {
			fmt.Fprintf(out, "kiosk: visit %d: %v\n", i, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type client struct {
	v  *virtualKiosk
	hc *http.Client
}

// visit is one resident: insert the card, read it, record the service
// with its credential, print the receipt with a QR code, take the card.
func (c *client) visit(i int) error {
	reader := "idcard"
	if i%2 == 0 {
		reader = "sscard"
	}
	if _, err := c.do(c.v.page+"/demo/insert?reader="+reader, "", nil, nil); err != nil {
		return err
	}
	defer c.do(c.v.page+"/demo/remove", "", nil, nil) //nolint:errcheck // best effort; the next visit inserts anew
	start := time.Now()
	var card localapi.Card
	if _, err := c.do(c.v.api+"/v1/cards/read", `{"reader":"`+reader+`","timeout_ms":5000}`, nil, &card); err != nil {
		return fmt.Errorf("read card: %w", err)
	}
	number, _ := card.Fields["number"].(string)
	if reader == "sscard" {
		number, _ = card.Fields["ssn"].(string)
	}
	tx, _ := json.Marshal(map[string]any{
		"type": "service", "service_code": "SS-PRINT-CERT", "outcome": "completed",
		"started_at": start.Format(time.RFC3339Nano), "ended_at": time.Now().Format(time.RFC3339Nano),
		"credential": map[string]string{"kind": reader, "number": number},
		"details":    map[string]any{"demo": true, "visit": i},
	})
	var res localapi.TransactionResponse
	key := map[string]string{"Idempotency-Key": fmt.Sprintf("demo-resident-%d-%d", i, start.UnixNano())}
	if _, err := c.do(c.v.api+"/v1/transactions", string(tx), key, &res); err != nil {
		return fmt.Errorf("transaction: %w", err)
	}
	c.v.mu.Lock()
	c.v.seqs = append(c.v.seqs, res.Seq)
	c.v.mu.Unlock()
	if res.Seq > c.v.agent.lastSeq.Load() {
		c.v.agent.lastSeq.Store(res.Seq)
	}
	c.v.agent.produced.Add(1)
	receipt, _ := json.Marshal(localapi.Receipt{Title: "KioskEdge 办事回执 Receipt", Cut: true, QR: res.ID,
		Lines: []localapi.Line{{Text: "业务 Service: SS-PRINT-CERT"}, {Text: "编号 No.: " + res.ID}, {Text: "谢谢 Thank you", Align: localapi.AlignCenter}}})
	if _, err := c.do(c.v.api+"/v1/print", string(receipt), nil, nil); err != nil {
		return fmt.Errorf("print: %w", err)
	}
	c.v.printed.Add(1)
	return nil
}

// do POSTs body (JSON) to url with the bearer token when url is the local
// API's, and decodes a 2xx answer into out.
func (c *client) do(url, body string, hdr map[string]string, out any) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if strings.HasPrefix(url, c.v.api) {
		req.Header.Set("Authorization", "Bearer "+c.v.token)
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode/100 != 2 {
		return res.StatusCode, fmt.Errorf("%s: %d %s", req.URL.Path, res.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return res.StatusCode, err
		}
	}
	return res.StatusCode, nil
}

// events opens GET /v1/events with the token as a subprotocol, as a
// browser must.
func (c *client) events() (*websocket.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{"kioskedge.v1", "bearer." + c.v.token}, HandshakeTimeout: 5 * time.Second}
	ws, res, err := d.Dial("ws"+strings.TrimPrefix(c.v.api, "http")+"/v1/events", nil)
	if res != nil && res.Body != nil {
		res.Body.Close()
	}
	if err != nil {
		return nil, errors.Join(errors.New("dial /v1/events"), err)
	}
	return ws, nil
}
