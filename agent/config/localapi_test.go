package config

import (
	"strings"
	"testing"
)

func TestLocalAPIDefaults(t *testing.T) {
	c, err := Parse([]byte(good), "/etc/kioskedge")
	if err != nil {
		t.Fatal(err)
	}
	l := c.LocalAPI
	if !l.Enabled || l.Listen != "127.0.0.1:7788" || l.AllowNonLoopback || l.MaxBody != 64<<10 {
		t.Errorf("defaults: %+v", l)
	}
	if l.TokenFile != "/etc/kioskedge/data/localapi.token" {
		t.Errorf("token_file = %q", l.TokenFile)
	}
}

func TestLocalAPIConfig(t *testing.T) {
	cases := []struct {
		name, table string
		want        string // "" = valid
	}{
		{"ipv6 loopback", "[localapi]\nlisten = \"[::1]:9000\"\n", ""},
		{"localhost", "[localapi]\nlisten = \"localhost:9000\"\n", ""},
		{"all interfaces refused", "[localapi]\nlisten = \":7788\"\n", "localapi.listen:"},
		{"lan refused", "[localapi]\nlisten = \"192.168.1.5:7788\"\n", "allow_non_loopback"},
		{"lan allowed", "[localapi]\nlisten = \"192.168.1.5:7788\"\nallow_non_loopback = true\n", ""},
		{"no port", "[localapi]\nlisten = \"127.0.0.1\"\n", "localapi.listen:"},
		{"body too small", "[localapi]\nmax_body = 10\n", "localapi.max_body:"},
		{"body too big", "[localapi]\nmax_body = \"2MiB\"\n", "localapi.max_body:"},
		{"disabled skips checks", "[localapi]\nenabled = false\nlisten = \"0.0.0.0:1\"\n", ""},
		{"unknown key", "[localapi]\nlisen = \"x\"\n", "localapi.lisen: unknown key"},
		{"allowed origins", "[localapi]\nallowed_origins = [\"http://127.0.0.1:8080\", \"https://kiosk.local\"]\n", ""},
		{"origin with path", "[localapi]\nallowed_origins = [\"http://127.0.0.1:8080/\"]\n", "localapi.allowed_origins:"},
		{"origin without scheme", "[localapi]\nallowed_origins = [\"127.0.0.1:8080\"]\n", "localapi.allowed_origins:"},
		{"origin wildcard", "[localapi]\nallowed_origins = [\"*\"]\n", "localapi.allowed_origins:"},
		{"privacy", "[privacy]\nsite_key_file = \"site.key\"\nhub_public_key_file = \"hub.pub\"\n", ""},
		{"privacy unknown key", "[privacy]\nsite_key = \"x\"\n", "privacy.site_key: unknown key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(good+tc.table), "/etc/kioskedge")
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Privacy.SiteKeyFile != "" && c.Privacy.SiteKeyFile != "/etc/kioskedge/site.key" {
					t.Errorf("site_key_file not resolved: %q", c.Privacy.SiteKeyFile)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}
