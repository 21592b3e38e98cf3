// Package kiosk wires a kiosk agent: the node (outbox, uplink, devices,
// Monitor; cmd/internal/node) plus the kiosk UI's local API
// (agent/localapi) fed by the configured ID-card and social security card
// readers, the first receipt printer, the Monitor's health and the
// devices' events. The adapters from the drivers' types to localapi's
// interfaces live here because wiring concrete parts is cmd's job
// (DESIGN.md §3). kioskdemo and kbench keep using node alone, so several
// nodes in one process do not compete for the API's port.
package kiosk

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/agent/localapi"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/cmd/internal/devices"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/sync/sealed"
)

// Kiosk is a node with its local API.
type Kiosk struct {
	Node *node.Node
	// API is the local API, nil when [localapi] enabled = false.
	API *localapi.Server
}

// Open opens the node (see node.Open) and, when enabled, the local API:
// it loads or creates the token file, loads the [privacy] keys and listens.
// A token file with wider permissions than 0600, an unreadable or invalid
// key file, or a listen failure is an error, and everything opened so far
// is closed. o.OnDeviceEvent is replaced by the API's event feed.
func Open(o node.Options) (*Kiosk, error) {
	c := o.Config
	if !c.LocalAPI.Enabled {
		n, err := node.Open(o)
		if err != nil {
			return nil, err
		}
		return &Kiosk{Node: n}, nil
	}
	// Everything that can be checked without the node is checked first.
	token, err := localapi.LoadOrCreateToken(c.LocalAPI.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("kiosk: localapi.token_file: %w", err)
	}
	prot, err := protector(c.Privacy)
	if err != nil {
		return nil, err
	}
	events := localapi.NewBroadcaster()
	o.OnDeviceEvent = func(e devices.Event) { events.Publish(uiEvent(e)) }
	n, err := node.Open(o)
	if err != nil {
		return nil, err
	}
	readers := map[string]localapi.CardReader{}
	for name, r := range n.Devices.IDCardReaders() {
		readers[name] = idcardReader{r}
	}
	for name, r := range n.Devices.SSCardReaders() {
		readers[name] = sscardReader{r}
	}
	var pr localapi.Printer
	for _, d := range c.Devices { // the first configured printer
		if p, ok := n.Devices.Printers()[d.Name]; ok && d.Kind == config.KindESCPOS {
			pr = printer{p}
			break
		}
	}
	opts := localapi.Options{
		Listen: c.LocalAPI.Listen, AllowNonLoopback: c.LocalAPI.AllowNonLoopback,
		Token: token, IDSecret: []byte(token), MaxBody: int64(c.LocalAPI.MaxBody),
		// The outbox itself, not the node: it is a localapi.OnceAppender,
		// so Idempotency-Keys hold across restarts (localapi's doc).
		Outbox: n.Outbox, Readers: readers, Printer: pr, Health: n.Monitor,
		AgentID: c.Agent.ID, Version: o.Version, Events: events, Now: o.Now, Logger: o.Logger,
		AllowedOrigins: c.LocalAPI.AllowedOrigins,
	}
	if prot != nil {
		opts.Protector = prot
	}
	api, err := localapi.New(opts)
	if err != nil {
		_ = n.Close() // the API error is the one worth returning
		return nil, fmt.Errorf("kiosk: localapi: %w", err)
	}
	return &Kiosk{Node: n, API: api}, nil
}

// protector loads [privacy]: nil without a site key (transactions with a
// credential are then refused by the API), else privacy.Protector with
// the hub key when one is configured.
func protector(p config.Privacy) (*privacy.Protector, error) {
	if p.SiteKeyFile == "" {
		if p.HubPublicKeyFile != "" {
			return nil, errors.New("kiosk: privacy.hub_public_key_file needs privacy.site_key_file")
		}
		return nil, nil
	}
	key, err := privacy.LoadSiteKey(p.SiteKeyFile)
	if err != nil {
		return nil, fmt.Errorf("kiosk: privacy.site_key_file: %w", err)
	}
	var pub *sealed.PublicKey
	if p.HubPublicKeyFile != "" {
		if pub, err = sealed.LoadPublicKey(p.HubPublicKeyFile); err != nil {
			return nil, fmt.Errorf("kiosk: privacy.hub_public_key_file: %w", err)
		}
	}
	prot, err := privacy.NewProtector(key, pub)
	if err != nil {
		return nil, fmt.Errorf("kiosk: privacy.site_key_file: %w", err)
	}
	return prot, nil
}

// uiEvent maps a device event to a /v1/events message; a scanned code's
// payload goes in data.data (localapi's doc).
func uiEvent(e devices.Event) localapi.Event {
	data := maps.Clone(e.Fields)
	if e.Name == "code.scanned" {
		data = map[string]any{"data": e.Payload}
	}
	return localapi.Event{Type: e.Name, Device: e.Device, Time: e.Time, Data: data}
}

// Run runs the node and the local API until ctx ends (see node.Run and
// localapi.Server.Run). If the API fails, the node is stopped too and the
// API's error returned; the node's error is returned otherwise.
func (k *Kiosk) Run(ctx context.Context) error {
	if k.API == nil {
		return k.Node.Run(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var apiErr error
	wg.Go(func() {
		apiErr = k.API.Run(ctx)
		cancel()
	})
	nodeErr := k.Node.Run(ctx)
	cancel()
	wg.Wait()
	if apiErr != nil {
		return apiErr
	}
	return nodeErr
}

// Close closes the API's listener and the node; call it after Run
// returned. It is idempotent.
func (k *Kiosk) Close() error {
	var err error
	if k.API != nil {
		err = k.API.Close()
	}
	return errors.Join(err, k.Node.Close())
}
