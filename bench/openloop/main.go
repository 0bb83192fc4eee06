// Command openloop is an open-loop HTTP/1.1 load generator: it sends GET
// requests at a fixed rate whatever the server's latency, and measures each
// request's latency from the moment it was due, not from when a connection
// was free to send it (no coordinated omission). It exists because vegeta,
// at about 300 µs of CPU per request, cannot offer 5,000 req/s on the same
// two cores as the server it measures; this client does the same job for a
// few µs per request, over keep-alive connections with a fixed request.
//
//	go run ./openloop -url http://127.0.0.1:18089/apps/hello/ -rate 5000 -duration 20s
//
// It reports requests, errors (anything but a 200 with a Content-Length
// body), the achieved rate and the latency distribution.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "openloop:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("openloop", flag.ContinueOnError)
	target := fs.String("url", "http://127.0.0.1:18089/apps/hello/", "URL to GET")
	rate := fs.Int("rate", 5000, "requests per second")
	duration := fs.Duration("duration", 20*time.Second, "how long to send")
	conns := fs.Int("conns", 64, "keep-alive connections (the most requests in flight)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("want an http:// URL, got %q", *target)
	}
	path := u.RequestURI()
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: jifu-openloop\r\nAccept: text/html\r\n\r\n")

	total := int(float64(*rate) * duration.Seconds())
	due := make(chan time.Time, total)
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var firstErr error
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{addr: u.Host, req: req}
			var mine []time.Duration
			bad := 0
			var werr error
			for t := range due {
				if d := time.Until(t); d > 0 {
					time.Sleep(d)
				}
				if err := w.do(); err != nil {
					bad++
					werr = err
					w.close()
					continue
				}
				mine = append(mine, time.Since(t))
			}
			w.close()
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			if firstErr == nil {
				firstErr = werr
			}
			mu.Unlock()
		}()
	}
	// The schedule: request i is due at start + i/rate. Requests are handed
	// out when due (checked every 200 µs); a request waiting for a free
	// connection keeps its due time.
	start := time.Now()
	interval := time.Second / time.Duration(*rate)
	for i := 0; i < total; {
		now := time.Now()
		for ; i < total; i++ {
			t := start.Add(time.Duration(i) * interval)
			if t.After(now) {
				break
			}
			due <- t
		}
		time.Sleep(200 * time.Microsecond)
	}
	close(due)
	wg.Wait()
	elapsed := time.Since(start)

	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	mean := time.Duration(0)
	if len(lat) > 0 {
		mean = sum / time.Duration(len(lat))
	}
	fmt.Printf("Requests      %d sent at %d/s for %v, %d ok, %d errors; completed in %v (%.0f req/s)\n",
		total, *rate, *duration, len(lat), errs, elapsed.Round(time.Millisecond), float64(len(lat))/elapsed.Seconds())
	fmt.Printf("Latencies     mean %v, 50%% %v, 90%% %v, 99%% %v, 99.9%% %v, max %v\n",
		r(mean), r(q(.5)), r(q(.9)), r(q(.99)), r(q(.999)), r(q(1)))
	if firstErr != nil {
		fmt.Printf("First error   %v\n", firstErr)
	}
	return nil
}

func r(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }

// worker is one keep-alive connection.
type worker struct {
	addr string
	req  []byte
	conn net.Conn
	br   *bufio.Reader
}

func (w *worker) close() {
	if w.conn != nil {
		_ = w.conn.Close()
		w.conn = nil
	}
}

var errStatus = errors.New("status is not 200")

// do sends the request and reads one response: a 200 with a Content-Length.
func (w *worker) do() error {
	if w.conn == nil {
		c, err := net.DialTimeout("tcp", w.addr, 5*time.Second)
		if err != nil {
			return err
		}
		w.conn, w.br = c, bufio.NewReaderSize(c, 8192)
	}
	_ = w.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := w.conn.Write(w.req); err != nil {
		return err
	}
	line, err := w.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	ok := bytes.HasPrefix(line, []byte("HTTP/1.1 200 "))
	length := -1
	for {
		h, err := w.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(h) <= 2 {
			break
		}
		if name, value, found := bytes.Cut(h, []byte(":")); found && bytes.EqualFold(name, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return fmt.Errorf("content-length: %w", err)
			}
		}
	}
	if length < 0 {
		return errors.New("response without Content-Length")
	}
	if _, err := w.br.Discard(length); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s", errStatus, bytes.TrimSpace(line))
	}
	return nil
}
