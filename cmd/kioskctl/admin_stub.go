package main

// TEMPORARY stub of the service engineer's admin.go (issue 6), coded to the
// signatures in the shared context, so test and selftest compile before
// admin.go lands. Delete this file when cmd/kioskctl/admin.go exists.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/sync/wire"
)

var errDaemonDown = errors.New("kioskd is not running: systemctl start kioskd")

type adminStatusResponse struct {
	Health   wire.Health `json:"health"`
	LastSync *time.Time  `json:"last_sync"`
}

func adminUp(ctx context.Context, c config.Config) error {
	if !c.Admin.Enabled {
		return errDaemonDown
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Admin.Listen)
	if err != nil {
		return fmt.Errorf("%w (%v)", errDaemonDown, err)
	}
	_ = conn.Close() // only probing
	return errors.New("kioskctl: the admin client is not built yet")
}

func adminStatus(ctx context.Context, c config.Config) (adminStatusResponse, error) {
	return adminStatusResponse{}, adminUp(ctx, c)
}

func adminPostRecord(ctx context.Context, c config.Config, kind string, body any) (uint64, error) {
	return 0, adminUp(ctx, c)
}
