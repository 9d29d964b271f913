package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// The flooders of -many-networks run in a child process (this program
// with -many-flood-worker), as those of -flood do: each network's minting
// goroutine is locked to a thread of its own, and thirty of them in this
// process would hold every P of the Go scheduler, which knows nothing of
// niceness, and starve the upstream's and the honest wallets' goroutines.

// manyFloodPlan is what the flooder process is told, as one JSON line on
// its standard input.
type manyFloodPlan struct {
	Addr     string
	Resource string
	IPs      []string      // one flooder network each
	Interval time.Duration // least time between two requests of one network
	Window   int
	Duration time.Duration // the flooders stop by themselves after this
}

// manyFloodLine is one line the flooder process writes: every second the
// flood's counts in the second that ended, then a last line with Final set.
type manyFloodLine struct {
	Second   int   `json:",omitempty"`
	Accepted int64 `json:",omitempty"`
	Refused  int64 `json:",omitempty"`
	Final    bool  `json:",omitempty"`
	// Seconds, Reasons and Err come with Final: the accepted and refused
	// lines per second of the flood, over every network; refusals by
	// reason; the first flooder's failure.
	Seconds []floodSecond    `json:",omitempty"`
	Reasons map[string]int64 `json:",omitempty"`
	Err     string           `json:",omitempty"`
}

// manyFloodWorker is the flooder process.
func manyFloodWorker(in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	raw, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading the flood plan: %w", err)
	}
	var plan manyFloodPlan
	if err := json.Unmarshal(raw, &plan); err != nil {
		return fmt.Errorf("decoding the flood plan: %w", err)
	}
	if plan.Duration <= 0 || len(plan.IPs) == 0 {
		return errors.New("the flood plan has no flooders or no time limit")
	}
	// One P per locked minting thread, and as many for the readers.
	runtime.GOMAXPROCS(2*len(plan.IPs) + 4)
	ctx, cancel := context.WithTimeout(context.Background(), plan.Duration)
	defer cancel()
	go func() {
		io.Copy(io.Discard, br) // the parent closes our input to stop us
		cancel()
	}()
	start := time.Now()
	var (
		wg       sync.WaitGroup
		flooders []*payingFlooder
	)
	for _, ip := range plan.IPs {
		f := &payingFlooder{addr: plan.Addr, ip: ip, resource: plan.Resource, start: start, reasons: map[string]int64{}, interval: plan.Interval}
		flooders = append(flooders, f)
		wg.Go(func() { f.run(ctx, plan.Window, nil) })
	}
	enc := json.NewEncoder(out)
	sum := func(k int) (s floodSecond) {
		for _, f := range flooders {
			f.mu.Lock()
			if k < len(f.seconds) {
				s.Accepted += f.seconds[k].Accepted
				s.Refused += f.seconds[k].Refused
			}
			f.mu.Unlock()
		}
		return s
	}
	tick := time.NewTicker(time.Second)
	for k := 0; ctx.Err() == nil; {
		select {
		case <-tick.C:
			s := sum(k)
			k++
			if err := enc.Encode(manyFloodLine{Second: k, Accepted: s.Accepted, Refused: s.Refused}); err != nil {
				cancel()
			}
		case <-ctx.Done():
		}
	}
	tick.Stop()
	wg.Wait()
	final := manyFloodLine{Final: true, Reasons: map[string]int64{}}
	for k := range int(plan.Duration / time.Second) {
		final.Seconds = append(final.Seconds, sum(k))
	}
	for _, f := range flooders {
		for r, n := range f.reasons {
			final.Reasons[r] += n
		}
		if f.err != nil && final.Err == "" {
			final.Err = fmt.Sprintf("flooder %s: %v", f.ip, f.err)
		}
	}
	return enc.Encode(final)
}

// manyFloodChild is a running flooder process.
type manyFloodChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	final chan manyFloodLine // the last line, or a zero line if none came
}

// startManyFlooders starts the flooder process with plan at niceness
// nice; each line it writes but the last goes to onSecond.
func startManyFlooders(plan *manyFloodPlan, nice int, onSecond func(manyFloodLine)) (*manyFloodChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program to start the flooders: %w", err)
	}
	cmd := exec.Command(exe, "-many-flood-worker")
	if nice != 0 {
		cmd = exec.Command("nice", "-n", strconv.Itoa(nice), exe, "-many-flood-worker")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the flooder process: %w", err)
	}
	c := &manyFloodChild{cmd: cmd, stdin: stdin, final: make(chan manyFloodLine, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var l manyFloodLine
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			if l.Final {
				c.final <- l
				return
			}
			onSecond(l)
		}
		c.final <- manyFloodLine{Err: "the flooder process wrote no report"}
	}()
	if _, err := stdin.Write(append(raw, '\n')); err != nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
		return nil, fmt.Errorf("sending the flood plan: %w", err)
	}
	return c, nil
}

// wait waits for the flooders to stop by themselves (at most timeout more)
// and returns their report.
func (c *manyFloodChild) wait(timeout time.Duration) (manyFloodLine, error) {
	var l manyFloodLine
	select {
	case l = <-c.final:
	case <-time.After(timeout):
		c.stdin.Close()
		select {
		case l = <-c.final:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			l = <-c.final
		}
	}
	c.stdin.Close()
	if err := c.cmd.Wait(); err != nil {
		return l, fmt.Errorf("the flooder process: %w", err)
	}
	if l.Err != "" {
		return l, errors.New(l.Err)
	}
	return l, nil
}
