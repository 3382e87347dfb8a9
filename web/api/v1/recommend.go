package v1

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/optiinfra/perfagent/agent"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/recommender"
)

// Recommendations is what the API needs of the pipeline.
type Recommendations interface {
	// Latest is the report of the last pass after a collection.
	Latest() recommender.Report
	// Recommend runs a pass now, narrowed by the request.
	Recommend(ctx context.Context, now time.Time, req RecommendRequest) (recommender.Report, error)
}

// RecommendRequest is the body of POST /api/v1/optimization/recommend:
// instance, bottleneck (an id such as B1, or a rule name) and objectives,
// each optional.
type RecommendRequest = agent.RecommendRequest

func (a *API) recommendations(r *http.Request) (any, *apiError) {
	q := r.URL.Query()
	instance, engine, model := q.Get("instance"), q.Get("engine"), q.Get("model")
	rep := a.o.Recommendations.Latest()
	out := []recommender.Recommendation{}
	for _, rec := range rep.Recommendations {
		if (instance == "" || concerns(rec, instance)) &&
			(engine == "" || rec.Engine == engine) &&
			(model == "" || rec.Model == model) &&
			(q.Get("id") == "" || rec.ID == q.Get("id")) {
			out = append(out, rec)
		}
	}
	items, next, apiErr := page(out, q)
	if apiErr != nil {
		return nil, apiErr
	}
	skipped := []recommender.Skip{}
	for _, s := range rep.Skipped {
		if (instance == "" || s.Instance == instance) && (engine == "" || s.Engine == engine) && (model == "" || s.Model == model) {
			skipped = append(skipped, s)
		}
	}
	return RecommendationsResponse{Recommendations: items, Skipped: skipped, NextPageToken: next}, nil
}

// RecommendationsResponse is the answer of GET /api/v1/recommendations: the
// last pass's recommendations that match the filters, a page of them, and
// the bottlenecks of the same instance, engine and model it could not
// address, with why.
type RecommendationsResponse struct {
	Recommendations []recommender.Recommendation `json:"recommendations"`
	Skipped         []recommender.Skip           `json:"skipped"`
	// NextPageToken, as page_token, asks for the next page of
	// recommendations; it is left out on the last.
	NextPageToken string `json:"next_page_token,omitempty"`
}

// concerns reports whether rec changes instance, itself or as a replica.
func concerns(rec recommender.Recommendation, instance string) bool {
	return rec.Instance == instance || slices.Contains(rec.Action.Instances, instance)
}

func (a *API) recommend(r *http.Request) (any, *apiError) {
	var req RecommendRequest
	if apiErr := a.decode(r, &req); apiErr != nil {
		return nil, apiErr
	}
	for _, o := range []struct {
		field string
		v     float64
	}{
		{"objectives.ttft_p95_seconds", req.Objectives.TTFTP95Seconds},
		{"objectives.itl_p95_seconds", req.Objectives.ITLP95Seconds},
		{"objectives.queue_wait_p95_seconds", req.Objectives.QueueWaitP95Seconds},
	} {
		if o.v < 0 {
			return nil, badData(o.field, "must not be negative")
		}
	}
	if err := config.CheckPrefer(req.Objectives.Prefer); err != nil {
		return nil, badData("objectives.prefer", "%v", err)
	}
	if req.Instance != "" {
		if snap := a.o.Collector.Latest(); snap == nil || snap.Instance(req.Instance) == nil {
			return nil, notFound("instance: %q is not known; GET /api/v1/instances lists the instances", req.Instance)
		}
	}
	rep, err := a.o.Recommendations.Recommend(r.Context(), a.o.Now(), req)
	var reqErr *agent.RequestError
	if errors.As(err, &reqErr) {
		return nil, badData(reqErr.Field, "%s", reqErr.Msg)
	}
	if err != nil {
		return nil, &apiError{typ: ErrUnavailable, status: http.StatusServiceUnavailable, err: err}
	}
	rep.Recommendations = nonNil(rep.Recommendations)
	rep.Skipped = nonNil(rep.Skipped)
	return rep, nil
}
