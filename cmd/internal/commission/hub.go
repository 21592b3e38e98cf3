package commission

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// MaxClockOffset is the largest offset from the hub's clock the clock
// check accepts: record times, schedules and command expiry rely on it.
const MaxClockOffset = 5 * time.Second

// CertWarning is how close to expiry a certificate fails the TLS check.
const CertWarning = 14 * 24 * time.Hour

// HubOptions configure HubChecks.
type HubOptions struct {
	Config config.Config
	// Timeout bounds the connection and each clock exchange; 0 means 5 s.
	Timeout time.Duration
	Now     func() time.Time // nil: time.Now
	// CertWarning is how close to expiry a certificate fails the TLS
	// check; 0 means CertWarning.
	CertWarning time.Duration
}

// HubChecks connects to the hub's broker with the box's own settings (an
// uplink.Session, client id "<agent>-selftest" so the running kioskd's
// session is not taken over) and returns three checks: "hub" (the MQTT
// session came up), "tls" (a TLS handshake with the box's CA and client
// certificate: version, the server certificate's subject and expiry, the
// client certificate's expiry) and "clock" (the offset from the hub's
// clock, NTP-style over wire.ClockRequest; not measured when the hub is
// unreachable or does not answer).
func HubChecks(ctx context.Context, o HubOptions) []Check {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CertWarning <= 0 {
		o.CertWarning = CertWarning
	}
	c := o.Config
	var tlsCheck Check
	var wg sync.WaitGroup
	wg.Go(func() { tlsCheck = tlsInfo(ctx, c, o.Timeout, o.Now, o.CertWarning) })
	hubCheck, clockCheck := mqttChecks(ctx, o)
	wg.Wait()
	return []Check{hubCheck, tlsCheck, clockCheck}
}

// lastError is a slog handler keeping the last "err" attribute the session
// logged, to say why a connection failed.
type lastError struct {
	mu  sync.Mutex
	err string
}

func (h *lastError) Enabled(context.Context, slog.Level) bool { return true }
func (h *lastError) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" || a.Key == "error" {
			h.mu.Lock()
			h.err = a.Value.String()
			h.mu.Unlock()
		}
		return true
	})
	return nil
}
func (h *lastError) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *lastError) WithGroup(string) slog.Handler      { return h }
func (h *lastError) get() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func mqttChecks(ctx context.Context, o HubOptions) (hubCheck, clockCheck Check) {
	c := o.Config
	password := ""
	if c.Hub.PasswordFile != "" {
		b, err := os.ReadFile(c.Hub.PasswordFile)
		if err != nil {
			return failed("hub", c.Hub.Broker, "hub.password_file: "+err.Error()), failed("clock", "not measured", "the hub was not reached")
		}
		password = strings.TrimSpace(string(b))
	}
	var files *uplink.TLSFiles
	if c.Hub.CertFile != "" || c.Hub.CAFile != "" {
		files = &uplink.TLSFiles{CAFile: c.Hub.CAFile, CertFile: c.Hub.CertFile, KeyFile: c.Hub.KeyFile}
	}
	logs := &lastError{}
	s, err := uplink.NewSession(uplink.SessionOptions{
		Broker: c.Hub.Broker, ClientID: c.Agent.ID + "-selftest", TLS: files, AllowPlaintext: c.Hub.Plaintext,
		Username: c.Hub.Username, Password: password, KeepAlive: c.Hub.KeepAlive.D(),
		Backoff: uplink.Backoff{Min: 200 * time.Millisecond, Max: time.Second, StableAfter: time.Minute},
		Logger:  slog.New(logs),
	})
	if err != nil {
		return failed("hub", c.Hub.Broker, err.Error()), Check{Name: "clock", OK: true, Detail: "not measured: the hub was not reached; system time " + o.Now().Format(time.RFC3339)}
	}
	topics := wire.Topics{Root: c.Hub.Root, Agent: c.Agent.ID}
	replies := make(chan []byte, 8)
	// Subscribe before Run: the session remembers it and subscribes on
	// connect, so there is no broker error to see yet.
	_ = s.Subscribe(topics.ClockReply(), 0, func(_ string, p []byte) {
		select {
		case replies <- p:
		default:
		}
	})
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(sctx) }) // ends with sctx
	defer func() {
		cancel()
		wg.Wait()
	}()
	start := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, o.Timeout)
	up := waitUntil(wctx, 20*time.Millisecond, s.Connected)
	wcancel()
	if !up {
		reason := "hub not reachable: check the network, the broker address and port, and the firewall"
		if e := logs.get(); e != "" {
			reason += " (" + e + ")"
		}
		return failed("hub", c.Hub.Broker, reason), Check{Name: "clock", OK: true, Detail: "not measured: the hub was not reached; system time " + o.Now().Format(time.RFC3339)}
	}
	hubCheck = pass("hub", "connected to %s as %s in %v", c.Hub.Broker, c.Agent.ID+"-selftest", time.Since(start).Round(time.Millisecond))
	return hubCheck, clockOffset(ctx, s, topics, replies, o)
}

// clockOffset asks the hub for its time up to three times within 2 s (or
// o.Timeout if shorter) and keeps the exchange with the shortest round trip
// (its offset error is at most half of it).
func clockOffset(ctx context.Context, s *uplink.Session, topics wire.Topics, replies chan []byte, o HubOptions) Check {
	var (
		best     time.Duration
		bestRTT  = time.Duration(-1)
		answered int
	)
	// One budget for all three exchanges keeps selftest's total bounded
	// when the hub does not answer.
	cctx, cancel := context.WithTimeout(ctx, min(o.Timeout, 2*time.Second))
	defer cancel()
	for range 3 {
		if cctx.Err() != nil {
			break
		}
		var idb [8]byte
		_, _ = rand.Read(idb[:]) // crypto/rand.Read never fails
		id := hex.EncodeToString(idb[:])
		req, _ := json.Marshal(wire.ClockRequest{ID: id, Sent: o.Now()}) // a string and a time always encode
		if err := s.Publish(cctx, uplink.Message{Topic: topics.ClockRequest(), QoS: 1, Payload: req}); err != nil {
			continue
		}
	wait:
		for {
			select {
			case p := <-replies:
				arrived := o.Now()
				rep, err := wire.DecodeClockReply(p)
				if err != nil || rep.ID != id {
					continue
				}
				off, rtt := wire.ClockOffset(rep, arrived)
				answered++
				if bestRTT < 0 || rtt < bestRTT {
					best, bestRTT = off, rtt
				}
				break wait
			case <-cctx.Done():
				if ctx.Err() != nil {
					return failed("clock", "not measured", ctx.Err().Error())
				}
				break wait
			}
		}
	}
	if answered == 0 {
		return failed("clock", "the hub did not answer the clock request", "the hub does not answer time/req: upgrade hubd, or check the box's clock by hand (timedatectl)")
	}
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	detail := fmt.Sprintf("offset %+v from the hub (±%v, round trip %v)", r(best), r(bestRTT/2), r(bestRTT))
	if best > MaxClockOffset || best < -MaxClockOffset {
		return failed("clock", detail, fmt.Sprintf("the clock is off by more than %v: enable NTP (timedatectl set-ntp true) or set the time", MaxClockOffset))
	}
	return pass("clock", "%s", detail)
}

// tlsInfo handshakes with the broker as the box would and reports what it
// saw. A plaintext broker passes with a note: config check already refuses
// it unless hub.plaintext is set.
func tlsInfo(ctx context.Context, c config.Config, timeout time.Duration, now func() time.Time, warn time.Duration) Check {
	u, err := url.Parse(c.Hub.Broker)
	if err != nil {
		return failed("tls", c.Hub.Broker, "hub.broker is not a URL")
	}
	switch u.Scheme {
	case "ssl", "tls", "mqtts":
	default:
		return pass("tls", "plaintext MQTT (hub.plaintext = true): lab only, no TLS to check")
	}
	cfg := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if c.Hub.CAFile != "" {
		pem, err := os.ReadFile(c.Hub.CAFile)
		if err != nil {
			return failed("tls", "hub.ca_file", err.Error())
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return failed("tls", "hub.ca_file", "no PEM certificate in "+c.Hub.CAFile)
		}
		cfg.RootCAs = pool
	}
	var client *x509.Certificate
	if c.Hub.CertFile != "" {
		kp, err := tls.LoadX509KeyPair(c.Hub.CertFile, c.Hub.KeyFile)
		if err != nil {
			return failed("tls", "hub.cert_file / hub.key_file", err.Error())
		}
		cfg.Certificates = []tls.Certificate{kp}
		client, err = x509.ParseCertificate(kp.Certificate[0])
		if err != nil {
			return failed("tls", "hub.cert_file", err.Error())
		}
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "8883")
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", host)
	if err != nil {
		return failed("tls", host, "TLS handshake failed: "+err.Error())
	}
	st := conn.(*tls.Conn).ConnectionState()
	// In TLS 1.3 a server refuses a client certificate after the client's
	// side of the handshake is done: its alert is the first thing read. A
	// broker that accepted the box waits for CONNECT, so the read times out.
	_ = conn.SetReadDeadline(time.Now().Add(min(timeout, time.Second))) // a failure shows in Read
	var one [1]byte
	_, rerr := conn.Read(one[:])
	// The handshake is all that was wanted; a close error changes nothing.
	_ = conn.Close()
	var ne net.Error
	if rerr != nil && !(errors.As(rerr, &ne) && ne.Timeout()) {
		return failed("tls", host, "the hub refused the box's certificate: "+rerr.Error())
	}
	t := now()
	srv := st.PeerCertificates[0]
	detail := fmt.Sprintf("%s; server %q expires %s (%d days)", tls.VersionName(st.Version), srv.Subject.String(), srv.NotAfter.Format("2006-01-02"), days(srv.NotAfter.Sub(t)))
	if client != nil {
		detail += fmt.Sprintf("; client %q expires %s (%d days)", client.Subject.CommonName, client.NotAfter.Format("2006-01-02"), days(client.NotAfter.Sub(t)))
	}
	switch {
	case client != nil && client.NotAfter.Sub(t) < warn:
		return failed("tls", detail, fmt.Sprintf("the box's client certificate expires within %v: issue a new one (kioskctl provision)", warn))
	case srv.NotAfter.Sub(t) < warn:
		return failed("tls", detail, fmt.Sprintf("the hub's certificate expires within %v: tell the hub operators", warn))
	}
	return pass("tls", "%s", detail)
}

func days(d time.Duration) int { return int(d / (24 * time.Hour)) }
