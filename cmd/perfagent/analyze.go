package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/optiinfra/perfagent/agent"
	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/shard"
	"github.com/optiinfra/perfagent/signalstore"
)

// analysis is what `perfagent analyze` prints. Lists are empty, not
// null, when there is nothing in them.
type analysis struct {
	Time            time.Time                `json:"time" yaml:"time"`
	Instances       []*collector.Instance    `json:"instances" yaml:"instances"`
	Bottlenecks     []rules.Bottleneck       `json:"bottlenecks" yaml:"bottlenecks"`
	Recommendations []analyzedRecommendation `json:"recommendations" yaml:"recommendations"`
	Skipped         []recommender.Skip       `json:"skipped" yaml:"skipped"`
	// Notes say what limits the result, such as a window shorter than the
	// `for` of rules.
	Notes []string `json:"notes" yaml:"notes"`
}

// analyzedRecommendation is a recommendation and whether only pending
// bottlenecks asked for it.
type analyzedRecommendation struct {
	recommender.Recommendation `yaml:",inline"`
	FromPending                bool `json:"from_pending" yaml:"from_pending"`
}

// analyze runs one collection and evaluation against the configured
// source and prints what it found. In remote mode the rules are evaluated
// over backfilled history, so bottlenecks whose `for` has passed are
// firing at once; in embedded mode the agent first scrapes for one rate
// window and evaluates the rules once. Bottlenecks still pending get
// recommendations too, marked as such, and a note says which rules the
// window is too short for.
func analyze(ctx context.Context, configFile, format string, stdout, stderr io.Writer, now func() time.Time) int {
	cfg, err := config.LoadFile(configFile)
	if err != nil {
		fmt.Fprintf(stderr, "perfagent analyze: %v\n", err)
		return exitUsage
	}
	profs, errs := loadProfiles(configFile, cfg)
	if len(errs) > 0 {
		fmt.Fprintf(stderr, "perfagent analyze: %s\n", joinErrors(errs))
		return exitUsage
	}
	ruleFiles, err := ruleFiles(cfg, configFile)
	if err != nil {
		fmt.Fprintf(stderr, "perfagent analyze: %v\n", err)
		return exitUsage
	}
	out, err := runAnalysis(ctx, cfg, profs, ruleFiles, now, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "perfagent analyze: %v\n", err)
		return exitFailure
	}
	for _, n := range out.Notes {
		fmt.Fprintf(stderr, "perfagent analyze: note: %s\n", n)
	}
	switch format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(out)
	case "yaml":
		err = yaml.NewEncoder(stdout).Encode(out)
	default:
		err = writeAnalysisTable(stdout, out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "perfagent analyze: writing the result: %v\n", err)
		return exitFailure
	}
	return exitSuccess
}

func runAnalysis(ctx context.Context, cfg *config.Config, profs []*collector.Profile, ruleFiles []string, now func() time.Time, stderr io.Writer) (*analysis, error) {
	dir, err := os.MkdirTemp("", "perfagent-analyze-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	interval := time.Duration(cfg.Global.EvaluationInterval)
	store, err := signalstore.Open(signalstore.Options{Path: dir, Retention: 24 * time.Hour, EvaluationInterval: interval})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	metrics := collector.NewMetrics(prometheus.NewRegistry())

	var (
		src collector.Source
		// window is the history the rules are evaluated over, and why.
		window    time.Duration
		windowWhy string
	)
	if p := cfg.Source.Prometheus; p != nil {
		if src, err = collector.NewRemoteSource(*p, metrics); err != nil {
			return nil, err
		}
		window, windowWhy = time.Duration(p.Backfill), "source.prometheus.backfill"
	} else {
		scraper, err := collector.NewEmbeddedSource(store, nil, metrics, nil, shard.Shard{})
		if err != nil {
			return nil, err
		}
		if err := scraper.ApplyConfig(*cfg, profs); err != nil {
			return nil, err
		}
		go func() { _ = scraper.Run() }()
		defer scraper.Stop()
		wait := time.Duration(cfg.Collector.RateWindow) + 2*time.Duration(cfg.Global.ScrapeInterval)
		fmt.Fprintf(stderr, "Scraping %d targets for %s, so that rates have data...\n", len(cfg.Source.Targets), wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		src = scraper
		windowWhy = fmt.Sprintf("embedded mode evaluates the rules once, after scraping for %s", wait)
	}
	coll := collector.New(collector.Options{Metrics: metrics, Store: store})
	if err := coll.ApplyConfig(*cfg, src, profs); err != nil {
		return nil, err
	}
	mgr := rules.NewManager(rules.ManagerOptions{Queryable: store, Appendable: store.DB(), QueryFunc: store.QueryFunc(), EvaluationInterval: interval, Disabled: cfg.Rules.Disabled})
	if err := mgr.Update(ruleFiles); err != nil {
		return nil, err
	}
	rec, err := recommender.New(recommender.Options{Config: &cfg.Recommender})
	if err != nil {
		return nil, err
	}
	pipe, err := agent.New(agent.Options{Collector: coll, Store: store, Rules: mgr, Recommender: rec}, pipelineConfig(cfg))
	if err != nil {
		return nil, err
	}
	at := now()
	// Signal history, and rule state over it, from the remote source.
	if window > 0 {
		from := at.Add(-window).Truncate(interval)
		if err := pipe.EvaluateHistory(ctx, from, at); err != nil {
			return nil, err
		}
		// Truncating to the interval lengthens the window a little.
		window = at.Sub(from)
	}
	snap, err := pipe.Cycle(ctx, at)
	if err != nil {
		return nil, err
	}
	bs := pipe.Bottlenecks()
	rep, err := pipe.Recommend(ctx, at, agent.RecommendRequest{Pending: true})
	if err != nil {
		return nil, err
	}
	out := &analysis{Time: at, Instances: snap.Instances, Bottlenecks: bs, Skipped: rep.Skipped,
		Recommendations: []analyzedRecommendation{}}
	for _, r := range rep.Recommendations {
		out.Recommendations = append(out.Recommendations, analyzedRecommendation{Recommendation: r, FromPending: agent.FromPending(r, bs)})
	}
	if n := shortWindowNote(pipe.Rules(), window, windowWhy); n != "" {
		out.Notes = append(out.Notes, n)
	}
	out.Instances = nonNil(out.Instances)
	out.Bottlenecks = nonNil(out.Bottlenecks)
	out.Skipped = nonNil(out.Skipped)
	out.Notes = nonNil(out.Notes)
	return out, nil
}

// shortWindowNote names the rules whose `for` is longer than the window
// the rules were evaluated over: they can be pending, never firing.
func shortWindowNote(rs []agent.Rule, window time.Duration, why string) string {
	byFor := map[time.Duration][]string{}
	for _, r := range rs {
		if r.For > window && !slices.Contains(byFor[r.For], r.Name) {
			byFor[r.For] = append(byFor[r.For], r.Name)
		}
	}
	if len(byFor) == 0 {
		return ""
	}
	var parts []string
	for _, d := range slices.Sorted(maps.Keys(byFor)) {
		names := byFor[d]
		slices.Sort(names)
		parts = append(parts, fmt.Sprintf("%s (%s)", strings.Join(names, ", "), model.Duration(d)))
	}
	return fmt.Sprintf("window %s (%s) is shorter than the `for` of rules %s: they can only be pending; recommendations for pending bottlenecks are marked from_pending",
		model.Duration(window.Truncate(time.Second)), why, strings.Join(parts, "; "))
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeAnalysisTable(w io.Writer, a *analysis) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "INSTANCES (%d) at %s\n", len(a.Instances), a.Time.UTC().Format(time.RFC3339))
	fmt.Fprintln(tw, "INSTANCE\tENGINE\tMODEL\tSIGNALS")
	for _, in := range a.Instances {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", in.Instance, in.Engine, in.Model, len(in.Signals))
	}
	fmt.Fprintf(tw, "\nBOTTLENECKS (%d)\n", len(a.Bottlenecks))
	fmt.Fprintln(tw, "ID\tRULE\tSTATE\tSEVERITY\tINSTANCE\tSUMMARY")
	for _, b := range a.Bottlenecks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Rule, b.State, b.Severity, b.Instance, b.Summary)
	}
	fmt.Fprintf(tw, "\nRECOMMENDATIONS (%d)\n", len(a.Recommendations))
	fmt.Fprintln(tw, "RANK\tID\tINSTANCE\tACTION\tCONFIDENCE\tRATIONALE")
	for _, r := range a.Recommendations {
		rationale := r.Rationale
		if r.FromPending {
			rationale = "(from pending findings) " + rationale
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.2f\t%s\n", r.Rank, r.ID, r.Instance+strings.Join(r.Action.Instances, ","), actionText(r.Action), r.Confidence, rationale)
	}
	for _, s := range a.Skipped {
		fmt.Fprintf(tw, "-\t%s\t%s\tnot produced\t\t%s\n", s.ID, s.Instance, s.Reason)
	}
	if len(a.Notes) > 0 {
		fmt.Fprintf(tw, "\nNOTES\n")
		for _, n := range a.Notes {
			fmt.Fprintln(tw, n)
		}
	}
	return tw.Flush()
}

func actionText(a recommender.Action) string {
	switch a.Kind {
	case recommender.KindFlag:
		return fmt.Sprintf("%s %s → %s%s", a.Flag, orUnknown(a.Current), a.Proposed, a.Unit)
	case recommender.KindReplicas:
		return fmt.Sprintf("replicas %d → %d", a.From, a.To)
	default:
		return a.Note
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}
