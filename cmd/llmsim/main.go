// Command llmsim serves a fleet of simulated vLLM, SGLang and TGI servers, or replays one
// into OpenMetrics text for backfilling a TSDB.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/oklog/run"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"

	"github.com/optiinfra/perfagent/simulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMain parses args and runs the chosen command; it returns the exit code
// (0 success, 1 runtime failure, 2 bad flags or configuration).
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("llmsim", "Simulated LLM inference servers (vLLM, SGLang, TGI) with real Prometheus expositions.")
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	helped := false
	app.Terminate(func(int) { helped = true })
	configFile := app.Flag("config.file", "Fleet file (YAML).").String()
	scenario := app.Flag("scenario", "Use an embedded scenario instead of --config.file (see the scenarios command).").String()
	var logConfig promslog.Config
	promslogflag.AddFlags(app, &logConfig)

	serve := app.Command("serve", "Serve the fleet on the listen addresses of its servers until interrupted.").Default()
	speed := serve.Flag("speed", "Simulated seconds per wall-clock second.").Default("1").Float64()
	tick := serve.Flag("tick", "How often the simulation catches up with the clock.").Default("200ms").Duration()
	webhookListen := serve.Flag("webhook.listen-address", "Also accept the agent's signed change requests (its webhook executor) at http://ADDRESS/webhook; empty turns it off.").Default("").String()
	webhookSecretFile := serve.Flag("webhook.secret-file", "File holding the secret the change requests are signed with.").Default("").String()

	replay := app.Command("replay", "Simulate the fleet and write OpenMetrics text with timestamps to stdout.")
	duration := replay.Flag("duration", "Simulated time span (default: the fleet file's duration, else 1h).").Duration()
	step := replay.Flag("step", "Sample interval.").Default("15s").Duration()
	start := replay.Flag("start", "Simulated start time, RFC 3339 (default: now minus the duration, aligned to the step).").String()
	job := replay.Flag("job", "job label of every sample.").Default("llmsim").String()
	output := replay.Flag("output", "Output file; - for stdout.").Short('o').Default("-").String()

	list := app.Command("scenarios", "List the embedded scenarios and their ground truth.")

	cmd, err := app.Parse(args)
	if helped {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "llmsim: %v\n", err)
		return 2
	}
	logConfig.Writer = stderr
	logger := promslog.New(&logConfig)
	if cmd == list.FullCommand() {
		return listScenarios(stdout, logger)
	}
	cfg, err := loadConfig(*configFile, *scenario)
	if err != nil {
		logger.Error("Invalid fleet file", "err", err)
		return 2
	}
	switch cmd {
	case replay.FullCommand():
		if *duration == 0 {
			*duration = time.Duration(cfg.Duration)
		}
		if *duration == 0 {
			*duration = time.Hour
		}
		if *step <= 0 {
			logger.Error("Invalid --step", "step", *step)
			return 2
		}
		t0 := time.Now().Add(-*duration).Truncate(*step)
		if *start != "" {
			t0, err = time.Parse(time.RFC3339, *start)
			if err != nil {
				logger.Error("Invalid --start", "err", err)
				return 2
			}
		}
		return doReplay(ctx, logger, cfg, simulator.ReplayOptions{Start: t0, Duration: *duration, Step: *step, Job: *job}, *output, stdout)
	default:
		if *speed <= 0 || *tick <= 0 {
			logger.Error("--speed and --tick must be positive")
			return 2
		}
		var secret []byte
		if *webhookListen != "" {
			b, err := os.ReadFile(*webhookSecretFile)
			if err != nil || len(strings.TrimSpace(string(b))) == 0 {
				logger.Error("--webhook.listen-address needs --webhook.secret-file with the signing secret", "err", err)
				return 2
			}
			secret = []byte(strings.TrimSpace(string(b)))
		}
		if err := serveFleet(ctx, logger, cfg, *speed, *tick, *webhookListen, secret); err != nil {
			logger.Error("Serving failed", "err", err)
			return 1
		}
		return 0
	}
}

// loadConfig reads the fleet from exactly one of a file and an embedded scenario.
func loadConfig(file, scenario string) (*simulator.FleetConfig, error) {
	switch {
	case file != "" && scenario != "":
		return nil, errors.New("give --config.file or --scenario, not both")
	case scenario != "":
		sc, err := simulator.LoadScenario(scenario)
		if err != nil {
			return nil, err
		}
		return sc.Fleet, nil
	case file != "":
		return simulator.LoadFleet(file)
	}
	return nil, errors.New("--config.file or --scenario is required")
}

func listScenarios(w io.Writer, logger *slog.Logger) int {
	scs, err := simulator.Scenarios()
	if err != nil {
		logger.Error("Reading scenarios", "err", err)
		return 1
	}
	for _, sc := range scs {
		fmt.Fprintf(w, "%s\t%v\t", sc.Name, time.Duration(sc.Fleet.Duration))
		if len(sc.Fleet.Truth) == 0 {
			fmt.Fprint(w, "healthy")
		}
		for i, t := range sc.Fleet.Truth {
			if i > 0 {
				fmt.Fprint(w, ", ")
			}
			fmt.Fprintf(w, "%s on %s %v-%v", t.Bottleneck, t.Server, time.Duration(t.From), time.Duration(t.To))
		}
		fmt.Fprintln(w)
	}
	return 0
}

func doReplay(ctx context.Context, logger *slog.Logger, cfg *simulator.FleetConfig, opts simulator.ReplayOptions, output string, stdout io.Writer) int {
	w := stdout
	if output != "-" {
		f, err := os.Create(output)
		if err != nil {
			logger.Error("Cannot create output", "err", err)
			return 1
		}
		defer f.Close()
		w = f
	}
	began := time.Now()
	if err := simulator.Replay(ctx, cfg, opts, w); err != nil {
		logger.Error("Replay failed", "err", err)
		return 1
	}
	logger.Info("Replay done", "servers", len(cfg.Servers), "duration", opts.Duration, "step", opts.Step, "took", time.Since(began))
	return 0
}

// serveFleet listens on every server's address and advances the simulation with the wall
// clock times speed until ctx ends.
func serveFleet(ctx context.Context, logger *slog.Logger, cfg *simulator.FleetConfig, speed float64, tick time.Duration, webhookListen string, secret []byte) error {
	wallStart := time.Now()
	fleet, err := simulator.NewFleet(cfg, wallStart)
	if err != nil {
		return err
	}
	var g run.Group
	{
		// Termination.
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			<-ctx.Done()
			return nil
		}, func(error) { cancel() })
	}
	{
		// Simulation clock.
		done := make(chan struct{})
		g.Add(func() error {
			t := time.NewTicker(tick)
			defer t.Stop()
			for {
				select {
				case <-done:
					return nil
				case now := <-t.C:
					elapsed := float64(now.Sub(wallStart)) * speed
					fleet.Advance(wallStart.Add(time.Duration(elapsed)))
				}
			}
		}, func(error) { close(done) })
	}
	type endpoint struct {
		name, listen string
		handler      http.Handler
	}
	var endpoints []endpoint
	for _, s := range fleet.Servers() {
		endpoints = append(endpoints, endpoint{s.Name() + " (" + string(s.Engine()) + ")", s.Listen(), s.Handler()})
	}
	if webhookListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/webhook", fleet.WebhookHandler(secret, time.Now))
		endpoints = append(endpoints, endpoint{"change webhook", webhookListen, mux})
	}
	for _, e := range endpoints {
		ln, err := net.Listen("tcp", e.listen)
		if err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		srv := &http.Server{Handler: e.handler, ReadHeaderTimeout: 10 * time.Second}
		name := e.name
		g.Add(func() error {
			logger.Info("Serving", "what", name, "listen", ln.Addr().String())
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("server %s: %w", name, err)
			}
			return nil
		}, func(error) {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		})
	}
	return g.Run()
}
