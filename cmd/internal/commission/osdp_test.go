package commission

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/testhw/osdpsim"
	"github.com/kioskedge/kioskedge/testhw/pty"
)

func TestOSDPReaderLEDAndBuzzer(t *testing.T) {
	dir := t.TempDir()
	pair, err := pty.New(filepath.Join(dir, "rs485"))
	if err != nil {
		t.Fatal(err)
	}
	pd := osdpsim.NewPD(osdpsim.Config{Address: 1})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	dev := pair.Device()
	wg.Go(func() { _ = osdpsim.NewBus(pd).Serve(ctx, dev) }) // ends with ctx
	defer func() { cancel(); pair.Close(); wg.Wait() }()

	bus := config.Device{Name: "bus", Kind: config.KindOSDP, Path: pair.Path(), Baud: 9600,
		OSDP: &config.OSDPBus{Readers: []config.OSDPReader{{Name: "gate-in", Address: 1}}}}
	tr := New(Options{Config: config.Config{Devices: []config.Device{bus}}, Timeout: 5 * time.Second})

	c, err := tr.Test(context.Background(), "gate-in")
	if err != nil || !c.OK || !strings.Contains(c.Detail, "acknowledged LED and buzzer") {
		t.Fatalf("gate-in: %v %+v", err, c)
	}
	if led, buz := pd.LED(0), pd.Buzzer(); !led.Set || led.TempOnColor != 2 || !buz.Set || buz.Tone != 2 {
		t.Errorf("the reader did not get the commands: LED %+v buzzer %+v", led, buz)
	}
	// Nothing answers at address 2.
	bus.OSDP.Readers = append(bus.OSDP.Readers, config.OSDPReader{Name: "gate-out", Address: 2})
	tr = New(Options{Config: config.Config{Devices: []config.Device{bus}}, Timeout: time.Second})
	c, err = tr.Test(context.Background(), "gate-out")
	if err != nil || c.OK || !strings.Contains(c.Reason, "no answer from the reader at address 2") {
		t.Fatalf("gate-out: %v %+v", err, c)
	}
	cs, err := tr.Probe(context.Background())
	if err != nil || len(cs) != 2 || !cs[0].OK || cs[1].OK || cs[0].Name != "device:gate-in" {
		t.Fatalf("probe: %v %+v", err, cs)
	}
}
