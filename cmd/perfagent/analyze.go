package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	apiv1 "github.com/optiinfra/perfagent/web/api/v1"
)

// analysis is what `perfagent analyze` prints.
type analysis struct {
	Time            time.Time                    `json:"time" yaml:"time"`
	Instances       []*collector.Instance        `json:"instances" yaml:"instances"`
	Bottlenecks     []rules.Bottleneck           `json:"bottlenecks" yaml:"bottlenecks"`
	Recommendations []recommender.Recommendation `json:"recommendations" yaml:"recommendations"`
	Skipped         []recommender.Skip           `json:"skipped" yaml:"skipped"`
}

// analyze runs one collection and evaluation against the configured
// source and prints what it found. In remote mode the rules are evaluated
// over backfilled history, so bottlenecks whose `for` has passed are
// firing at once; in embedded mode the agent first scrapes for one rate
// window.
func analyze(ctx context.Context, configFile, format string, stdout, stderr io.Writer, now func() time.Time) int {
	cfg, err := loadConfig(configFile)
	if err != nil {
		fmt.Fprintf(stderr, "perfagent analyze: %v\n", err)
		return exitUsage
	}
	profs, errs := loadProfiles(configFile, cfg)
	if len(errs) > 0 {
		fmt.Fprintf(stderr, "perfagent analyze: %s\n", joinErrors(errs))
		return exitUsage
	}
	ruleFiles, err := cfg.ruleFiles(configFile)
	if err != nil {
		fmt.Fprintf(stderr, "perfagent analyze: %v\n", err)
		return exitUsage
	}
	out, err := runAnalysis(ctx, cfg, profs, ruleFiles, now, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "perfagent analyze: %v\n", err)
		return exitFailure
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

func runAnalysis(ctx context.Context, cfg *Config, profs []*collector.Profile, ruleFiles []string, now func() time.Time, stderr io.Writer) (*analysis, error) {
	dir, err := os.MkdirTemp("", "perfagent-analyze-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store, err := collector.OpenStore(collector.StoreOptions{Path: dir, Retention: 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	metrics := collector.NewMetrics(prometheus.NewRegistry())
	interval := time.Duration(cfg.Global.EvaluationInterval)

	var src collector.Source
	if p := cfg.Source.Prometheus; p != nil {
		if src, err = collector.NewRemoteSource(*p, metrics); err != nil {
			return nil, err
		}
	} else {
		scraper, err := collector.NewEmbeddedSource(store, nil, metrics)
		if err != nil {
			return nil, err
		}
		if err := scraper.ApplyConfig(cfg.Config); err != nil {
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
	}
	coll := collector.New(collector.Options{Metrics: metrics, Store: store})
	if err := coll.ApplyConfig(cfg.Config, src, profs); err != nil {
		return nil, err
	}
	mgr := rules.NewManager(rules.ManagerOptions{Store: store, EvaluationInterval: interval, Disabled: cfg.Rules.Disabled})
	if err := mgr.Update(ruleFiles); err != nil {
		return nil, err
	}
	at := now()
	// Signal history, and rule state over it, from the remote source.
	if p := cfg.Source.Prometheus; p != nil && p.Backfill > 0 {
		from := at.Add(-time.Duration(p.Backfill)).Truncate(interval)
		if _, err := coll.Backfill(ctx, from, at.Add(-interval), interval); err != nil {
			return nil, err
		}
		for t := from; t.Before(at); t = t.Add(interval) {
			if err := appendSLOTargets(ctx, store, t, cfg.Rules.SLO); err != nil {
				return nil, err
			}
			mgr.Eval(ctx, t)
		}
	}
	snap, err := coll.Cycle(ctx, at)
	if err != nil {
		return nil, err
	}
	if err := appendSLOTargets(ctx, store, at, cfg.Rules.SLO); err != nil {
		return nil, err
	}
	mgr.Eval(ctx, at)
	rec, err := recommender.New(recommender.Options{Config: &cfg.Recommender})
	if err != nil {
		return nil, err
	}
	adv := &advisor{rec: rec, coll: coll, rules: mgr, store: store, step: func() time.Duration { return interval }}
	rep, err := adv.Recommend(ctx, at, apiv1.RecommendRequest{})
	if err != nil {
		return nil, err
	}
	return &analysis{Time: at, Instances: snap.Instances, Bottlenecks: mgr.Bottlenecks(), Recommendations: rep.Recommendations, Skipped: rep.Skipped}, nil
}

// appendSLOTargets writes the SLO target series at t.
func appendSLOTargets(ctx context.Context, store *collector.Store, t time.Time, targets []rules.SLOTarget) error {
	app := store.Appender(ctx)
	if err := rules.AppendSLOTargets(app, t.UnixMilli(), targets); err != nil {
		_ = app.Rollback()
		return fmt.Errorf("writing SLO targets: %w", err)
	}
	return app.Commit()
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
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.2f\t%s\n", r.Rank, r.ID, r.Instance+strings.Join(r.Action.Instances, ","), actionText(r.Action), r.Confidence, r.Rationale)
	}
	for _, s := range a.Skipped {
		fmt.Fprintf(tw, "-\t%s\t%s\tnot produced\t\t%s\n", s.ID, s.Instance, s.Reason)
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
