package main

// The client of kioskd's admin endpoint (cmd/internal/admin): the running
// daemon's status and posting a record through it. Commands call
// adminStatus and adminPostRecord; an error wrapping errDaemonDown means
// nothing listens, so the caller may fall back to working on the files
// itself or tell the technician to start kioskd.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/admin"
)

// errDaemonDown: nothing answers at the admin address.
var errDaemonDown = errors.New("kioskd is not running: systemctl start kioskd")

// errAdminDisabled: [admin] enabled = false, so the daemon cannot be asked.
var errAdminDisabled = errors.New("kioskd's admin endpoint is disabled ([admin] enabled = false); enable it and restart kioskd")

// adminStatusResponse is GET /v1/status: {"health": wire.Health,
// "last_sync": RFC 3339 or null}.
type adminStatusResponse = admin.StatusResponse

// adminTimeout bounds one request when ctx has no earlier deadline.
const adminTimeout = 10 * time.Second

// adminStatus asks the running kioskd what it is doing. Errors: one
// wrapping errDaemonDown when nothing listens at the admin address;
// errAdminDisabled; otherwise an error saying what to do (token file
// unreadable: run as root; token refused; kioskd's own error).
func adminStatus(ctx context.Context, c config.Config) (adminStatusResponse, error) {
	var st adminStatusResponse
	b, err := adminDo(ctx, c, http.MethodGet, "/v1/status", nil)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("kioskd's status is not what this kioskctl expects (versions differ?): %v", err)
	}
	return st, nil
}

// adminPostRecord has kioskd append a record (kind "commissioning.…", body
// marshalled to a JSON object) durably, class critical, and returns its
// sequence number. Errors as adminStatus's; kioskd refuses other kinds.
func adminPostRecord(ctx context.Context, c config.Config, kind string, body any) (uint64, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("kioskctl: record body: %w", err)
	}
	req, err := json.Marshal(admin.PostRecord{Kind: kind, Body: raw})
	if err != nil {
		return 0, fmt.Errorf("kioskctl: record: %w", err)
	}
	b, err := adminDo(ctx, c, http.MethodPost, "/v1/records", req)
	if err != nil {
		return 0, err
	}
	var r admin.PostRecordResponse
	if err := json.Unmarshal(b, &r); err != nil || r.Seq == 0 {
		return 0, fmt.Errorf("kioskd's answer %q has no record sequence", b)
	}
	return r.Seq, nil
}

// adminAddr is where kioskd's admin endpoint listens: admin.listen, or
// for port 0 (tests) the address kioskd wrote to <data_dir>/admin.addr.
// An unspecified host (0.0.0.0, ::) is reached through loopback.
func adminAddr(c config.Config) (string, error) {
	if !c.Admin.Enabled {
		return "", errAdminDisabled
	}
	host, port, err := net.SplitHostPort(c.Admin.Listen)
	if err != nil {
		return "", fmt.Errorf("admin.listen %q: %v (kioskctl config check says more)", c.Admin.Listen, err)
	}
	if port == "0" {
		b, err := os.ReadFile(admin.AddrPath(c.Agent.DataDir))
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%w (admin.listen has port 0 and there is no %s)", errDaemonDown, admin.AddrPath(c.Agent.DataDir))
		}
		if err != nil {
			return "", fmt.Errorf("reading kioskd's admin address: %v (run kioskctl as root or as the kioskedge user)", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// adminDo sends one request with the admin token and returns the body of
// a 2xx answer.
func adminDo(ctx context.Context, c config.Config, method, path string, body []byte) ([]byte, error) {
	addr, err := adminAddr(c)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, adminTimeout)
		defer cancel()
	}
	tokPath := admin.TokenPath(c.Agent.DataDir)
	tok, tokErr := os.ReadFile(tokPath)
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("kioskctl: %w", err)
	}
	if tokErr == nil {
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// No proxy: the endpoint is on this box.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (nothing listens on %s)", errDaemonDown, addr)
		}
		return nil, fmt.Errorf("kioskd's admin endpoint at %s did not answer: %v (is kioskd hung? systemctl status kioskd)", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("reading kioskd's answer: %v", err)
	}
	if resp.StatusCode/100 == 2 {
		return b, nil
	}
	if resp.StatusCode == http.StatusUnauthorized {
		if tokErr != nil {
			return nil, fmt.Errorf("cannot read kioskd's admin token %s: %v (run kioskctl as root or as the kioskedge user)", tokPath, tokErr)
		}
		return nil, fmt.Errorf("kioskd refused the admin token in %s (was it replaced while kioskd runs? systemctl restart kioskd)", tokPath)
	}
	var e struct{ Error string }
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	return nil, fmt.Errorf("kioskd answered %s: %s", resp.Status, e.Error)
}
