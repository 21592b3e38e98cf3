package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// TestKioskSuiteTiny runs the whole kiosk suite with tiny sizes: the three
// rows are present, positive and carry a baseline, and no file is left.
func TestKioskSuiteTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("serves a few hundred durable HTTP transactions")
	}
	dir := t.TempDir()
	sz := kioskSizes{requests: 640, baseRequests: 64, limit: 20 * time.Second}
	rows, err := kioskRows(context.Background(), Config{Quick: true, Dir: dir}, sz)
	if err != nil {
		t.Fatal(err)
	}
	checkSuiteRows(t, "kiosk", rows, []string{"kiosk/transactions", "kiosk/latency_p50_ms", "kiosk/latency_p99_ms"}, dir)
}

func TestKioskSuiteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sz := kioskSizes{requests: 640, baseRequests: 64, limit: 20 * time.Second}
	if _, err := kioskRows(ctx, Config{Dir: t.TempDir()}, sz); err == nil {
		t.Fatal("a cancelled run reported rows without error")
	}
}

func TestReadKioskResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		status     int
		body       string
		wantErr    bool
		leftToRead string
	}{
		{name: "created", in: "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\ncontent-length: 9\r\n\r\n{\"seq\":1}HTTP/1.1",
			status: 201, body: `{"seq":1}`, leftToRead: "HTTP/1.1"},
		{name: "error status", in: "HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}", status: 400, body: "{}"},
		{name: "empty body", in: "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", status: 204},
		{name: "chunked", in: "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", wantErr: true},
		{name: "closes", in: "HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", wantErr: true},
		{name: "no length", in: "HTTP/1.1 201 Created\r\n\r\n{}", wantErr: true},
		{name: "short body", in: "HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\n{}", wantErr: true},
		{name: "bad status line", in: "HTTX 201\r\n\r\n", wantErr: true},
		{name: "truncated headers", in: "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			status, body, err := readKioskResponse(br, nil)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error; status %d body %q", status, body)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.status || string(body) != tc.body {
				t.Fatalf("got %d %q, want %d %q", status, body, tc.status, tc.body)
			}
			if rest, _ := io.ReadAll(br); string(rest) != tc.leftToRead {
				t.Fatalf("left %q unread, want %q", rest, tc.leftToRead)
			}
		})
	}
}

// TestAppendKioskBody: the fmt-free body builder gives exactly the body
// fmt would (the same load as before), and it is valid JSON.
func TestAppendKioskBody(t *testing.T) {
	for _, i := range []int{0, 7, 12_345, 9_999_999_999, 10_000_000_001, 123_456_789_012} {
		want := fmt.Sprintf(`{"type":"social-security.certificate","service_code":"SS-CERT-07","outcome":"completed",`+
			`"started_at":"2026-05-01T09:30:00.123+08:00","ended_at":"2026-05-01T09:31:12.456+08:00",`+
			`"credential":{"kind":"idcard","number":"46010519%010d"},`+
			`"details":{"window":"kiosk-3","pages":2,"language":"zh-CN","receipt":true,"queue_ticket":"A%04d"}}`,
			i%10_000_000_000, i%10_000)
		got := appendKioskBody([]byte("x"), i)
		if string(got) != "x"+want {
			t.Fatalf("body %d:\n got %s\nwant x%s", i, got, want)
		}
		if !json.Valid(got[1:]) {
			t.Fatalf("body %d is not JSON", i)
		}
	}
}
