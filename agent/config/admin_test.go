package config

import (
	"strings"
	"testing"
)

func TestAdminAndRegion(t *testing.T) {
	c, err := Parse([]byte(good), "")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Admin.Enabled || c.Admin.Listen != DefaultAdminListen {
		t.Fatalf("admin defaults: %+v", c.Admin)
	}
	bad := strings.Replace(good, "[agent]", "[agent]\nregion = \"46010\"", 1) + "\n[admin]\nlisten = \"0.0.0.0:7789\"\n"
	_, err = Parse([]byte(bad), "")
	for _, want := range []string{"agent.region:", "admin.listen: \"0.0.0.0:7789\" is not a loopback address"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	ok := strings.Replace(good, "[agent]", "[agent]\nregion = \"460105001001\"\nsite = \"Haidian community centre\"", 1)
	if c, err = Parse([]byte(ok), ""); err != nil || c.Agent.Region != "460105001001" {
		t.Fatalf("12-digit region: %v %+v", err, c.Agent)
	}
}
