package allowpush_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/allowlist"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/cmd/internal/allowpush"
	"github.com/kioskedge/kioskedge/drivers/credential"
)

// Test credentials: made up, never printed.
const (
	cardA  = "wiegand:H10301:123-45678"
	idB    = "idcard:11010119900307001x"
	ssnC   = "sscard:ssn:A1234567890"
	ssnAlt = "sscard:A1234567890" // the same card, short form
)

func keyOf(t *testing.T, siteKey []byte, c credential.Credential) allowlist.Key {
	t.Helper()
	k, err := allowlist.ParseKey(privacy.KeyedHash(siteKey, c))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const schedulesCSV = `id,windows,holidays
1,Mon-Fri 07:00-22:00; Sat 09:00-12:00,2026-01-01;2026-10-01
2,Fri 22:00-06:30,
`

func TestParseSchedules(t *testing.T) {
	s, err := allowpush.ParseSchedules(strings.NewReader(schedulesCSV), "s.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 || len(s[0].Windows) != 2 || s[0].Windows[0] != (allowlist.Window{Days: 0x3e, From: 420, To: 1320}) ||
		s[0].Windows[1] != (allowlist.Window{Days: 0x40, From: 540, To: 720}) || len(s[0].Holidays) != 2 ||
		s[0].Holidays[0].String() != "2026-01-01" {
		t.Fatalf("%+v", s)
	}
	// Over midnight: Friday to 24:00, then Saturday from 00:00.
	if len(s[1].Windows) != 2 || s[1].Windows[0] != (allowlist.Window{Days: 1 << 5, From: 1320, To: 1440}) ||
		s[1].Windows[1] != (allowlist.Window{Days: 1 << 6, From: 0, To: 390}) {
		t.Fatalf("%+v", s[1])
	}
	for _, c := range []struct{ csv, want string }{
		{"id,windows\n", "header"},
		{"id,windows,holidays\n0,* 00:00-24:00,\n", "line 2 column id"},
		{"id,windows,holidays\n1,Funday 07:00-09:00,\n", "line 2 column windows"},
		{"id,windows,holidays\n1,* 07:00,\n", "line 2 column windows"},
		{"id,windows,holidays\n1,* 07:00-09:00,\n1,* 07:00-09:00,\n", "line 3 column id"},
		{"id,windows,holidays\n1,* 07:00-09:00,13/01/2026\n", "line 2 column holidays"},
	} {
		if _, err := allowpush.ParseSchedules(strings.NewReader(c.csv), "s.csv"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.csv, err, c.want)
		}
	}
}

func TestParseEntries(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	scheds, _ := allowpush.ParseSchedules(strings.NewReader(schedulesCSV), "s.csv")
	csvText := "credential,valid_from,valid_to,groups,schedule,staff,apb\n" +
		"# a comment\n" +
		cardA + ",2026-01-01,2026-12-31,3;1;3,1,yes,5\n" +
		idB + ",,,2,,,\n" +
		ssnC + ",2026-01-01T08:00:00+08:00,,,,no,\n"
	es, err := allowpush.ParseEntries(strings.NewReader(csvText), "l.csv", key, time.UTC, scheds)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries", len(es))
	}
	byKey := map[allowlist.Key]allowlist.Entry{}
	for i, e := range es {
		byKey[e.Key] = e
		if i > 0 && bytes.Compare(es[i-1].Key[:], e.Key[:]) >= 0 {
			t.Fatal("not sorted by key")
		}
	}
	a := byKey[keyOf(t, key, credential.Credential{Kind: credential.Wiegand, Encoding: "H10301", Number: "123-45678"})]
	wantGroups := []uint32{allowlist.GroupID("1"), allowlist.GroupID("3")}
	slices.Sort(wantGroups)
	if !a.Staff || a.Schedule != 1 || a.AntiPassback != allowlist.GroupID("5") || !slices.Equal(a.DoorGroups, wantGroups) ||
		!a.ValidFrom.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || !a.ValidTo.Equal(time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)) {
		t.Fatalf("card entry %+v", a)
	}
	// The ID number hashes like the card reader's read: upper-case X.
	if _, ok := byKey[keyOf(t, key, credential.Credential{Kind: credential.IDCard, Number: "11010119900307001X"})]; !ok {
		t.Fatal("id card entry not under the reader's hash")
	}
	if _, ok := byKey[keyOf(t, key, credential.Credential{Kind: credential.SSCard, Encoding: "ssn", Number: "A1234567890"})]; !ok {
		t.Fatal("ss card entry not under the reader's hash")
	}

	head := "credential,valid_from,valid_to,groups,schedule,staff,apb\n"
	for _, c := range []struct{ csv, want string }{
		{"credential,colour\n", "line 1 column 2: unknown column"},
		{"valid_from\n2026-01-01\n", "no credential column"},
		{head + "12345678901234,,,,,,\n", "line 2 column credential"},
		{head + "wiegand:12345678,,,,,,\n", "line 2 column credential"},
		{head + "idcard:,,,,,,\n", "line 2 column credential"},
		{head + cardA + ",yesterday,,,,,\n", "line 2 column valid_from"},
		{head + cardA + ",2026-02-01,2026-01-01,,,,\n", "line 2 column valid_to"},
		{head + cardA + ",,,1;;2,,,\n", "line 2 column groups"},
		{head + "wiegand:H10301:256-1,,,,,,\n", "line 2 column credential"},
		{head + cardA + ",,,,9,,\n", "line 2 column schedule: schedule 9 is not defined"},
		{head + cardA + ",,,,,maybe,\n", "line 2 column staff"},

		{head + ssnC + ",,,,,,\n" + ssnAlt + ",,,,,,\n", "line 3 column credential: same credential as line 2"},
		{head + cardA + ",,\n", "line 2"},
		{head + cardA + ",\"2026,,,,,\n", "line 2"},
	} {
		_, err := allowpush.ParseEntries(strings.NewReader(c.csv), "l.csv", key, time.UTC, scheds)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.csv, err, c.want)
			continue
		}
		for _, secret := range []string{"45678", "1234567890", "12345678901234", "119900307"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows a credential number: %v", err)
			}
		}
	}
}
