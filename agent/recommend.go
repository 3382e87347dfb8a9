package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/cost"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
)

// historyWindow is how much signal history feeds the ITL fit.
const historyWindow = 30 * time.Minute

// RecommendRequest narrows a recommendation pass. It is also the body of
// the API's recommend endpoint.
type RecommendRequest struct {
	// Instance keeps the bottlenecks of one instance; empty keeps all.
	Instance string `json:"instance,omitempty"`
	// Bottleneck keeps the bottlenecks of one id (B1) or rule name; empty
	// keeps all.
	Bottleneck string `json:"bottleneck,omitempty"`
	// Objectives override the configured targets for this pass, field by
	// field; zero keeps the configured one.
	Objectives config.Objectives `json:"objectives"`
	// Pending also takes the bottlenecks that are pending (their
	// condition holds, the rule's `for` has not passed), for a window too
	// short for them to fire. Recommendations that only pending
	// bottlenecks asked for carry a note saying so.
	Pending bool `json:"-"`
}

func (r RecommendRequest) keeps(b rules.Bottleneck) bool {
	return (r.Bottleneck == "" || b.ID == r.Bottleneck || b.Rule == r.Bottleneck) && (r.Instance == "" || b.Instance == r.Instance)
}

// RequestError says what is wrong with a request, naming its field.
type RequestError struct {
	Field string
	Msg   string
}

func (e *RequestError) Error() string { return e.Field + ": " + e.Msg }

// Recommend runs one pass at now over the latest snapshot and the firing
// bottlenecks that req keeps. A request naming a bottleneck or an
// instance with nothing firing gets an empty report whose skipped entry
// says so.
func (p *Pipeline) Recommend(ctx context.Context, now time.Time, req RecommendRequest) (recommender.Report, error) {
	if p.rec == nil {
		return recommender.Report{}, errors.New("this pipeline computes no recommendations")
	}
	snap := p.coll.Latest()
	if snap == nil {
		return recommender.Report{}, errors.New("no collection has completed yet")
	}
	if err := p.checkBottleneck(req.Bottleneck); err != nil {
		return recommender.Report{}, err
	}
	cfg := p.config()
	prefer := req.Objectives.Prefer
	if prefer == "" {
		prefer = cfg.Prefer
	}
	if err := config.CheckPrefer(prefer); err != nil {
		return recommender.Report{}, &RequestError{Field: "objectives.prefer", Msg: err.Error()}
	}
	var firing, pending []rules.Bottleneck
	for _, b := range p.rules.Bottlenecks() {
		switch {
		case !req.keeps(b):
		case b.State == rules.StateFiring:
			firing = append(firing, b)
		case b.State == rules.StatePending:
			pending = append(pending, b)
		}
	}
	in := recommender.Input{Findings: recommender.Findings(firing), Objectives: req.Objectives}
	if req.Pending {
		for _, b := range pending {
			in.Findings = append(in.Findings, recommender.Finding{
				Bottleneck: b.ID, Rule: b.Rule, Instance: b.Instance, Engine: b.Engine, Model: b.Model,
				Recommend: slices.Clone(b.Recommendations), Since: b.ActiveAt, Value: b.Value,
			})
		}
	}
	if len(in.Findings) == 0 && (req.Bottleneck != "" || req.Instance != "") {
		return recommender.Report{Skipped: []recommender.Skip{nothingFiring(snap, req, pending)}}, nil
	}
	// Replica counts need every instance of a model, not only the
	// requested one.
	in.Instances = slices.Clone(snap.Instances)
	hist, err := recommender.ReadHistory(ctx, p.store, now, historyWindow, cfg.Interval)
	if err != nil {
		return recommender.Report{}, err
	}
	in.History = hist
	rep := p.rec.Analyze(now, in)
	if cfg.Pricing != nil {
		cfg.Pricing.Annotate(rep.Recommendations, cfg.Pricing.Instances(snap, p.underutilized()))
	}
	cost.Rank(rep.Recommendations, prefer)
	if req.Pending {
		for i, r := range rep.Recommendations {
			if FromPending(r, firing) {
				rep.Recommendations[i].Notes = append(r.Notes, fmt.Sprintf("from pending findings: %s has not held for its rule's `for` yet and may clear by itself", strings.Join(r.Bottlenecks, ", ")))
			}
		}
	}
	return rep, nil
}

// checkBottleneck accepts an empty name, a bottleneck id or a rule name
// of the loaded rules.
func (p *Pipeline) checkBottleneck(name string) error {
	if name == "" {
		return nil
	}
	var ids []string
	for _, r := range p.Rules() {
		if r.Name == name || r.Bottleneck == name {
			return nil
		}
		if r.Bottleneck != "" && !slices.Contains(ids, r.Bottleneck) {
			ids = append(ids, r.Bottleneck)
		}
	}
	// B2 before B10.
	slices.SortFunc(ids, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b)) })
	return &RequestError{Field: "bottleneck", Msg: fmt.Sprintf("%q is neither a bottleneck id nor a rule name of the loaded rules; the ids are %s", name, strings.Join(ids, ", "))}
}

// nothingFiring is the skipped entry of a request whose bottleneck or
// instance has nothing firing.
func nothingFiring(snap *collector.Snapshot, req RecommendRequest, pending []rules.Bottleneck) recommender.Skip {
	s := recommender.Skip{Instance: req.Instance}
	if in := snap.Instance(req.Instance); in != nil {
		s.Engine, s.Model = in.Engine, in.Model
	}
	what := "bottleneck"
	if req.Bottleneck != "" {
		what += " " + req.Bottleneck
	}
	where := " on any instance"
	if req.Instance != "" {
		where = " on instance " + req.Instance
	}
	if len(pending) == 0 {
		s.Reason = "no active " + what + where
		return s
	}
	var names []string
	for _, b := range pending {
		names = append(names, fmt.Sprintf("%s on %s", b.Rule, b.Instance))
	}
	s.Reason = fmt.Sprintf("no firing %s%s; pending, their rules' `for` not passed yet: %s", what, where, strings.Join(names, ", "))
	return s
}

// FromPending reports whether only pending bottlenecks asked for r: none
// of the bottlenecks it addresses is firing, among bs, on its instance (on
// any of its replicas, for a replica change).
func FromPending(r recommender.Recommendation, bs []rules.Bottleneck) bool {
	for _, b := range bs {
		if b.State == rules.StateFiring && slices.Contains(r.Bottlenecks, b.ID) &&
			(b.Instance == r.Instance || slices.Contains(r.Action.Instances, b.Instance)) {
			return false
		}
	}
	return true
}
