package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
)

// Exit codes, as promtool has them.
const (
	exitSuccess = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	if version.Version == "" {
		// Set by the Makefile from VERSION; plain go build gets this.
		version.Version = "dev"
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// daemonFlags are the flags of the agent's main job.
type daemonFlags struct {
	configFile       string
	listenAddress    string
	webConfigFile    string
	storagePath      string
	storageRetention string
	enableLifecycle  bool
	readTimeout      time.Duration
	writeTimeout     time.Duration
	maxConnections   int
	log              promslog.Config
	// resendDelay and queueCapacity are Prometheus's
	// --rules.alert.resend-delay and
	// --alertmanager.notification-queue-capacity.
	resendDelay   time.Duration
	queueCapacity int
	// gogc, autoMemLimit and memLimitRatio set the Go runtime's garbage
	// collection (runtime.go).
	gogc          int
	autoMemLimit  bool
	memLimitRatio float64
	// shardIndex of shardCount is the agent's share of the fleet.
	shardIndex int
	shardCount int
}

func run(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New(filepath.Base("perfagent"), "Performance agent for LLM inference fleets: reads vLLM, SGLang, TGI, TensorRT-LLM (Triton) and llama.cpp metrics, normalizes them into signals, and serves them.")
	app.Version(version.Print("perfagent"))
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	// --help and --version end the command here, not the process, so
	// run stays testable.
	terminated := -1
	app.Terminate(func(code int) {
		if terminated < 0 {
			terminated = code
		}
	})

	var f daemonFlags
	promslogflag.AddFlags(app, &f.log)
	serveCmd := app.Command("run", "Run the agent (the default command).").Default()
	serveCmd.Flag("config.file", "perfagent configuration file.").Default("perfagent.yml").StringVar(&f.configFile)
	serveCmd.Flag("web.listen-address", "Address to listen on for the API, the web page and /metrics.").Default(":8002").StringVar(&f.listenAddress)
	serveCmd.Flag("web.config.file", "Path to a web configuration file (TLS and basic auth), as exporter-toolkit reads it.").Default("").StringVar(&f.webConfigFile)
	serveCmd.Flag("web.enable-lifecycle", "Enable shutdown and reload via HTTP request (/-/quit, /-/reload).").Default("false").BoolVar(&f.enableLifecycle)
	serveCmd.Flag("web.read-timeout", "Maximum duration before timing out read of the request, and closing idle connections.").Default("1m").DurationVar(&f.readTimeout)
	serveCmd.Flag("web.write-timeout", "Maximum duration from the end of a request's headers to the end of its answer; it bounds clients that do not read. 0 means no limit.").Default("5m").DurationVar(&f.writeTimeout)
	serveCmd.Flag("web.max-connections", "Maximum number of simultaneous connections. 0 means no limit.").Default("512").IntVar(&f.maxConnections)
	serveCmd.Flag("storage.path", "Directory of the local TSDB of signals.").Default("data/").StringVar(&f.storagePath)
	serveCmd.Flag("storage.retention", "How long to keep signal history.").Default("1d").StringVar(&f.storageRetention)
	serveCmd.Flag("rules.alert.resend-delay", "How often an alert is sent again to Alertmanager while it lasts (bottlenecks and approval requests); a delivery that failed is made good by the next.").Default("1m").DurationVar(&f.resendDelay)
	serveCmd.Flag("shard.index", "This agent's shard of the fleet, from 0 to --shard.count minus 1: it reads, evaluates and changes only the instances whose hash of the instance label modulo --shard.count is this number (Prometheus's hashmod relabelling).").Default("0").IntVar(&f.shardIndex)
	serveCmd.Flag("shard.count", "How many agents share the fleet, each started with its own --shard.index.").Default("1").IntVar(&f.shardCount)
	serveCmd.Flag("alertmanager.notification-queue-capacity", "How many alerts wait for each Alertmanager before the oldest are dropped (and counted).").Default("10000").IntVar(&f.queueCapacity)

	serveCmd.Flag("runtime.gogc", "The Go garbage collector's target (GOGC) unless the GOGC environment variable sets it: lower holds less memory for more CPU.").Default("50").IntVar(&f.gogc)
	serveCmd.Flag("auto-gomemlimit", "Set the Go runtime's soft memory limit (GOMEMLIMIT) from the container's memory limit, unless GOMEMLIMIT is set.").Default("true").BoolVar(&f.autoMemLimit)
	serveCmd.Flag("auto-gomemlimit.ratio", "The share of the container's memory limit that GOMEMLIMIT is set to, in (0, 1].").Default("0.9").Float64Var(&f.memLimitRatio)

	checkCmd := app.Command("check", "Check files for errors.")
	checkConfigCmd := checkCmd.Command("config", "Check configuration files, and the profiles they name, for errors.")
	checkConfigFiles := checkConfigCmd.Arg("config-files", "The configuration files to check.").Required().ExistingFiles()

	checkRulesCmd := checkCmd.Command("rules", "Check bottleneck rule files: rulefmt, PromQL, perfagent's labels and annotations, and that every metric read is a signal.")
	checkRulesFiles := checkRulesCmd.Arg("rule-files", "The rule files to check; builtin:bottlenecks.yml names the built-in pack.").Required().Strings()
	checkRulesStrict := checkRulesCmd.Flag("strict", "Treat warnings (unknown metric names) as errors.").Bool()

	analyzeCmd := app.Command("analyze", "Run one collection and evaluation against the configured source, print bottlenecks and recommendations, and exit.")
	analyzeConfig := analyzeCmd.Flag("config.file", "perfagent configuration file.").Default("perfagent.yml").String()
	analyzeFormat := analyzeCmd.Flag("output", "Output format: table, json or yaml.").Short('o').Default("table").Enum("table", "json", "yaml")

	testCmd := app.Command("test", "Unit testing.")
	testRulesCmd := testCmd.Command("rules", "Unit test bottleneck rules, in the format of promtool test rules.")
	testRulesFiles := testRulesCmd.Arg("test-rule-file", "The unit test files.").Required().ExistingFiles()

	cmd, err := app.Parse(args)
	if terminated >= 0 {
		return terminated
	}
	if err != nil {
		fmt.Fprintf(stderr, "perfagent: %v; see perfagent --help\n", err)
		return exitUsage
	}
	switch cmd {
	case checkConfigCmd.FullCommand():
		return checkConfig(*checkConfigFiles, stdout, stderr)
	case checkRulesCmd.FullCommand():
		return checkRules(*checkRulesFiles, *checkRulesStrict, stdout, stderr)
	case testRulesCmd.FullCommand():
		if rules.UnitTest(*testRulesFiles, stdout) {
			return exitFailure
		}
		return exitSuccess
	case analyzeCmd.FullCommand():
		return analyze(context.Background(), *analyzeConfig, *analyzeFormat, stdout, stderr, time.Now)
	case serveCmd.FullCommand():
		return serve(context.Background(), f, stderr)
	}
	return exitSuccess
}

// checkConfig validates each file and the profiles it names.
func checkConfig(files []string, stdout, stderr io.Writer) int {
	code := exitSuccess
	for _, file := range files {
		fmt.Fprintf(stdout, "Checking %s\n", file)
		cfg, err := config.LoadFile(file)
		if err != nil {
			fmt.Fprintf(stderr, "  FAILED:\n%s\n", indent(err.Error()))
			code = exitFailure
			continue
		}
		profiles, errs := loadProfiles(file, cfg)
		if len(errs) > 0 {
			fmt.Fprintf(stderr, "  FAILED:\n%s\n", indent(joinErrors(errs)))
			code = exitFailure
			continue
		}
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stderr, "  WARNING:\n%s\n", indent(w))
		}
		fmt.Fprintf(stdout, "  SUCCESS: %s mode, %d engine profiles, %d Alertmanager configurations\n", cfg.Mode(), len(profiles), len(cfg.Alerting.AlertmanagerConfigs))
	}
	return code
}

// checkRules checks rule files as promtool check rules does, with
// perfagent's conventions on top and every recommendation id checked
// against the catalog. It exits 1 on errors; --strict makes warnings
// (metrics that are not signals) errors.
func checkRules(files []string, strict bool, stdout, stderr io.Writer) int {
	catalog, err := recommender.EmbeddedCatalog()
	if err != nil {
		fmt.Fprintf(stderr, "perfagent: %v\n", err)
		return exitFailure
	}
	known := map[string]bool{}
	for _, d := range catalog.Definitions {
		known[d.ID] = true
	}
	code := exitSuccess
	for _, f := range files {
		fmt.Fprintf(stdout, "Checking %s\n", f)
		warnings, errs := rules.Check([]string{f}, known, strict)
		for _, w := range warnings {
			fmt.Fprintf(stderr, "  WARNING: %v\n", w)
		}
		if len(errs) > 0 {
			fmt.Fprintf(stderr, "  FAILED:\n%s\n", indent(joinErrors(errs)))
			code = exitFailure
			continue
		}
		fmt.Fprintln(stdout, "  SUCCESS")
	}
	return code
}
