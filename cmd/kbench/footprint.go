package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/cmd/internal/admin"
	"github.com/kioskedge/kioskedge/sync/sealed"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/escpossim"
	"github.com/kioskedge/kioskedge/testhw/idcardsim"
	"github.com/kioskedge/kioskedge/testhw/osdpsim"
	"github.com/kioskedge/kioskedge/testhw/pty"
	"github.com/kioskedge/kioskedge/testhw/qrscansim"
	"github.com/kioskedge/kioskedge/testhw/sscardsim"
)

// The footprint suite (issue 6): how big kioskd is on the box and how much
// memory it holds while idle.
//
//   - footprint/kioskd_arm64_mb: the size of kioskd built as the packages
//     build it (CGO_ENABLED=0 GOOS=linux GOARCH=arm64, -trimpath,
//     -ldflags "-s -w"); baseline a minimal Go program (it prints a line
//     and waits for SIGTERM) built the same way in the same run.
//   - footprint/idle_rss_mb: the highest VmRSS of a real kioskd process
//     (built the same way for the host) sampled over an idle window after
//     every device it has is up; baseline the same minimal program's
//     VmRSS sampled the same way.
//   - footprint/idle_rss_anon_mb: RssAnon over the same windows (the heap
//     and stacks, without the mapped binary).
//
// kioskd runs with every serial driver kind configured on a simulator over
// a pty (ID-card reader, social security card reader, QR scanner, receipt
// printer, an OSDP bus with one reader in install mode), the local API, the
// admin endpoint, a site key and a hub sealing key, and an in-process
// broker; no hub acknowledges, so the few health records it writes stay in
// its outbox. The GPIO gate ([[door]], [[wiegand]]) is not configured: it
// needs the kernel's GPIO character devices (gpiochip), which simulated
// lines in this process cannot provide to another process.
//
// MB here is MiB (2^20 bytes), as in the other suites' memory rows.

// footprintIdle is how long kioskd idles, after its devices are up, while
// its RSS is sampled.
func footprintIdle(cfg Config) time.Duration {
	if cfg.Quick {
		return 3 * time.Second
	}
	return 10 * time.Second
}

// footprintUpTimeout bounds kioskd's start-up until every device is up.
const footprintUpTimeout = 60 * time.Second

// footprintDevices is the number of device_up samples kioskd reports with
// footprintConfig: four serial devices and the OSDP bus's one reader.
const footprintDevices = 5

const kioskdPkg = "github.com/kioskedge/kioskedge/cmd/kioskd"

// minimalProgram is the baseline: a Go program that does nothing but say
// it is ready and wait to be stopped.
const minimalProgram = `package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("ready")
	<-c
}
`

func footprintSuite(ctx context.Context, cfg Config) ([]Row, error) {
	return footprintRows(ctx, cfg, "arm64")
}

// footprintRows runs the footprint suite, measuring the size of kioskd
// built for sizeArch (a GOARCH; "" is the host's, which spares two builds).
func footprintRows(ctx context.Context, cfg Config, sizeArch string) ([]Row, error) {
	if sizeArch == "" {
		sizeArch = runtime.GOARCH
	}
	dir, err := cfg.tempDir("footprint")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the footprint suite builds kioskd: %w (put the go command on PATH)", err)
	}
	minimalDir := filepath.Join(dir, "minimal-src")
	if err := os.MkdirAll(minimalDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(minimalDir, "main.go"), []byte(minimalProgram), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(minimalDir, "go.mod"), []byte("module minimal\n\ngo 1.26\n"), 0o600); err != nil {
		return nil, err
	}

	type build struct {
		what, pkg, dir, arch, out string
	}
	hostKioskd := build{"kioskd for this host", kioskdPkg, "", "", filepath.Join(dir, "kioskd-host")}
	hostMinimal := build{"minimal program for this host", ".", minimalDir, "", filepath.Join(dir, "minimal-host")}
	sizeKioskd, sizeMinimal := hostKioskd, hostMinimal
	builds := []build{hostKioskd, hostMinimal}
	if sizeArch != runtime.GOARCH {
		sizeKioskd = build{"kioskd linux/" + sizeArch, kioskdPkg, "", sizeArch, filepath.Join(dir, "kioskd-"+sizeArch)}
		sizeMinimal = build{"minimal program linux/" + sizeArch, ".", minimalDir, sizeArch, filepath.Join(dir, "minimal-"+sizeArch)}
		builds = append(builds, sizeKioskd, sizeMinimal)
	}
	for _, b := range builds {
		cfg.progressf("footprint: building %s", b.what)
		if err := goBuild(ctx, goCmd, b.pkg, b.dir, b.arch, b.out); err != nil {
			return nil, err
		}
	}
	kioskdSize, err := fileMB(sizeKioskd.out)
	if err != nil {
		return nil, err
	}
	minimalSize, err := fileMB(sizeMinimal.out)
	if err != nil {
		return nil, err
	}

	idle := footprintIdle(cfg)
	cfg.progressf("footprint: minimal program's RSS over %v", idle)
	base, err := measureMinimal(ctx, hostMinimal.out, idle)
	if err != nil {
		return nil, fmt.Errorf("minimal program: %w", err)
	}
	cfg.progressf("footprint: kioskd with %d simulated devices, idle %v after they are up", footprintDevices, idle)
	kd, err := measureKioskd(ctx, hostKioskd.out, filepath.Join(dir, "kioskd-run"), idle)
	if err != nil {
		return nil, fmt.Errorf("kioskd: %w", err)
	}

	const s = "footprint"
	minimal := "a minimal Go program (print, wait for SIGTERM) built and run the same way"
	return []Row{
		newRow(s, "kioskd_"+sizeArch+"_mb", kioskdSize, "MB", minimalSize, minimal),
		newRow(s, "idle_rss_mb", kd.rss, "MB", base.rss, minimal),
		newRow(s, "idle_rss_anon_mb", kd.anon, "MB", base.anon, minimal),
	}, nil
}

// goBuild builds pkg (in dir, "" for the current directory) the way the
// packages are built: static, trimmed paths, no symbol or DWARF tables.
// arch "" is the host's; GOOS is always linux.
func goBuild(ctx context.Context, goCmd, pkg, dir, arch, out string) error {
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if arch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+arch)
		if arch == "arm" {
			cmd.Env = append(cmd.Env, "GOARM=7")
		}
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (GOARCH=%q): %w\n%s", pkg, arch, err, msg)
	}
	return nil
}

// fileMB returns the size of the file at path in MiB.
func fileMB(path string) (float64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return float64(fi.Size()) / (1 << 20), nil
}

// rssSample is the highest VmRSS and RssAnon seen over a window, in MiB.
type rssSample struct {
	rss, anon float64
}

// sampleRSS reads pid's VmRSS and RssAnon every 100 ms for d and returns
// the highest of each; it fails when the process goes away.
func sampleRSS(ctx context.Context, pid int, d time.Duration) (rssSample, error) {
	var s rssSample
	end := time.Now().Add(d)
	for {
		rss, anon, err := procRSS(pid)
		if err != nil {
			return s, err
		}
		s.rss, s.anon = max(s.rss, rss), max(s.anon, anon)
		if !time.Now().Before(end) {
			return s, nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return s, err
		}
	}
}

// procRSS returns VmRSS and RssAnon from /proc/pid/status, in MiB.
func procRSS(pid int) (rss, anon float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	var haveRSS, haveAnon bool
	for l := range strings.Lines(string(b)) {
		key, v, ok := strings.Cut(l, ":")
		if !ok || (key != "VmRSS" && key != "RssAnon") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %w", pid, key, err)
		}
		if key == "VmRSS" {
			rss, haveRSS = kb/1024, true
		} else {
			anon, haveAnon = kb/1024, true
		}
	}
	if !haveRSS || !haveAnon {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmRSS or RssAnon (a zombie?)", pid)
	}
	return rss, anon, nil
}

// stopChild sends SIGTERM and waits up to 20 s for cmd to exit, then kills
// it. The exit status says nothing about the figures, so it is not returned.
func stopChild(cmd *exec.Cmd, exited <-chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGTERM) // a child already gone is fine
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill() // it did not stop in time; the wait below reaps it
		<-exited
	}
}

// measureMinimal starts the minimal program, waits for its "ready" line and
// samples its RSS for idle.
func measureMinimal(ctx context.Context, exe string, idle time.Duration) (rssSample, error) {
	cmd := exec.Command(exe)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return rssSample{}, err
	}
	if err := cmd.Start(); err != nil {
		return rssSample{}, err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the status is irrelevant; we stop it ourselves
		close(exited)
	}()
	defer stopChild(cmd, exited)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return rssSample{}, fmt.Errorf("said %q (%v)", line, err)
	}
	return sampleRSS(ctx, cmd.Process.Pid, idle)
}

// simulators holds the pty pairs and the simulators serving them.
type simulators struct {
	pairs  []*pty.Pair
	paths  map[string]string // device name → the tty a driver opens
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startSimulators makes a pty per serial device under dir and serves each
// with its simulator. The ID-card reader and the card reader have no card
// in them and no one scans or prints: the kiosk is idle.
func startSimulators(dir string) (*simulators, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &simulators{paths: map[string]string{}, cancel: cancel}
	for _, n := range []string{"idcard", "sscard", "qrscan", "printer", "osdp"} {
		p, err := pty.New(filepath.Join(dir, "tty-"+n))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("pty: %w", err)
		}
		s.pairs = append(s.pairs, p)
		s.paths[n] = p.Path()
	}
	id, ss, qr, pr, bus := s.pairs[0].Device(), s.pairs[1].Device(), s.pairs[2].Device(), s.pairs[3].Device(), s.pairs[4].Device()
	// Each Serve ends with ctx or with its device's close error at the end,
	// which is expected.
	s.wg.Go(func() { _ = idcardsim.New().Serve(id) })
	s.wg.Go(func() { _ = sscardsim.New().Serve(ss) })
	s.wg.Go(func() { _ = qrscansim.New(qrscansim.Options{}).Serve(ctx, qr) })
	s.wg.Go(func() { _ = escpossim.New().Serve(ctx, pr) })
	pd := osdpsim.NewPD(osdpsim.Config{Address: 1, Install: true})
	s.wg.Go(func() { _ = osdpsim.NewBus(pd).Serve(ctx, bus) })
	return s, nil
}

func (s *simulators) close() {
	s.cancel()
	for _, p := range s.pairs {
		p.Close()
	}
	s.wg.Wait()
}

// footprintConfig is kioskd's configuration: every serial driver kind, the
// local API, the admin endpoint, both privacy keys; no GPIO gate.
func footprintConfig(dataDir, brokerURL string, paths map[string]string) string {
	return fmt.Sprintf(`[agent]
id = "footprint-kiosk"
data_dir = %q

[hub]
broker = %q
root = "kbench/footprint"
plaintext = true

[log]
level = "warn"

[localapi]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"

[privacy]
site_key_file = "site.key"
hub_public_key_file = "hub.pub"

[[device]]
name = "idcard"
kind = "idcard"
path = %q

[[device]]
name = "sscard"
kind = "sscard"
path = %q

[[device]]
name = "qrscan"
kind = "qrscan"
path = %q

[[device]]
name = "printer"
kind = "escpos"
path = %q

[[device]]
name = "bus"
kind = "osdp"
path = %q
[device.osdp]
readers = [{ address = 1, name = "gate-in", key_file = "gate-in.key", install_mode = true, require_secure = true }]
`, dataDir, brokerURL, paths["idcard"], paths["sscard"], paths["qrscan"], paths["printer"], paths["osdp"])
}

// writeFootprintKeys writes the site key, the hub's sealing public key and
// the OSDP reader's key into dir.
func writeFootprintKeys(dir string) error {
	key, err := privacy.NewSiteKey()
	if err != nil {
		return err
	}
	if err := privacy.WriteSiteKey(filepath.Join(dir, "site.key"), key); err != nil {
		return err
	}
	_, pub, err := sealed.GenerateKeyPair()
	if err != nil {
		return err
	}
	if err := sealed.WritePublicKey(filepath.Join(dir, "hub.pub"), pub); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "gate-in.key"), []byte("0102030405060708090a0b0c0d0e0f10\n"), 0o600)
}

// tailBuffer keeps the last bytes written to it, for an error message.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// measureKioskd runs kioskd (the binary exe) in dir against simulators and
// an in-process broker, waits until its admin endpoint reports every device
// up, and samples its RSS for idle.
func measureKioskd(ctx context.Context, exe, dir string, idle time.Duration) (rssSample, error) {
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return rssSample{}, err
	}
	if err := writeFootprintKeys(dir); err != nil {
		return rssSample{}, err
	}
	sims, err := startSimulators(dir)
	if err != nil {
		return rssSample{}, err
	}
	defer sims.close()
	b, err := broker.Start(broker.Options{Kind: broker.Mochi})
	if err != nil {
		return rssSample{}, err
	}
	defer b.Close()
	cfgPath := filepath.Join(dir, "kioskd.toml")
	if err := os.WriteFile(cfgPath, []byte(footprintConfig(dataDir, b.URL(), sims.paths)), 0o600); err != nil {
		return rssSample{}, err
	}

	cmd := exec.Command(exe, "-config", cfgPath)
	logs := &tailBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return rssSample{}, err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // an early exit is reported by waitDevicesUp; the status adds nothing
		close(exited)
	}()
	defer stopChild(cmd, exited)

	if err := waitDevicesUp(ctx, dataDir, exited); err != nil {
		return rssSample{}, fmt.Errorf("%w; its log ends:\n%s", err, logs.String())
	}
	s, err := sampleRSS(ctx, cmd.Process.Pid, idle)
	if err != nil {
		return s, fmt.Errorf("%w; its log ends:\n%s", err, logs.String())
	}
	return s, nil
}

// errFootprintNotUp is waitDevicesUp's timeout.
var errFootprintNotUp = errors.New("kbench: kioskd's devices did not all come up")

// waitDevicesUp polls kioskd's /metrics (the address from its admin.addr
// file) until footprintDevices device_up samples are all 1. It fails when
// kioskd exits, ctx ends or footprintUpTimeout passes.
func waitDevicesUp(ctx context.Context, dataDir string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, footprintUpTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no admin address yet"
	for {
		select {
		case <-exited:
			return errors.New("kbench: kioskd exited before its devices were up")
		default:
		}
		if up, total, err := devicesUp(ctx, client, dataDir); err != nil {
			last = err.Error()
		} else if total == footprintDevices && up == total {
			return nil
		} else {
			last = fmt.Sprintf("%d of %d devices up", up, total)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("%w within %v (%s)", errFootprintNotUp, footprintUpTimeout, last)
			}
			return err
		}
	}
}

// devicesUp reads kioskd's /metrics once and counts its
// kioskedge_device_up samples and those equal to 1.
func devicesUp(ctx context.Context, client *http.Client, dataDir string) (up, total int, err error) {
	addr, err := os.ReadFile(admin.AddrPath(dataDir))
	if err != nil {
		return 0, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+strings.TrimSpace(string(addr))+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	for l := range bytes.Lines(body) {
		if !bytes.HasPrefix(l, []byte("kioskedge_device_up{")) {
			continue
		}
		total++
		if f := bytes.Fields(l); len(f) >= 2 && string(f[len(f)-1]) == "1" {
			up++
		}
	}
	return up, total, nil
}
